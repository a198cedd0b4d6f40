// The office side of the kiosk: procedures, fees, appointment rules and dossiers.
//
// The kiosk talks to the office only through this interface (OfficeBackend):
//   procedures()                 -> [{id, name: {vi, en}, fee, workingDays, documents: {vi: [], en: []}}]
//   office()                     -> {vi, en} the office's name, printed on slips
//   lookup(code)                 -> {kind: "draft", procedure}
//                                 | {kind: "appointment", procedure, status: "ready", compartment}
//                                 | {kind: "appointment", procedure, status: "processing", appointmentDate}
//                                 | null (unknown code)
//   submit({procedure, idNumber, documents, photos, payment})
//                                -> {dossierCode, submittedAt, appointmentDate, counter: {vi, en}}
//   mayCollect(code, idNumber)   -> true when this card's holder owns the dossier
//   collected(code)              -> the results were taken from their compartment
//   transferReference({procedure, amount})
//                                -> a new bank transfer reference: letters and digits,
//                                   at most 25 (the VietQR code's bill number and purpose)
//   awaitTransfer({reference, amount, signal, onTransfer})
//                                -> {amount, bankTransactionId, paidAt} once the office's
//                                   bank has credited `amount` VND under `reference`;
//                                   onTransfer(total, bankTransactionId) after a part; rejects when `signal` aborts
// Every method returns a promise.  DemoOffice implements it over a small JSON file
// of invented data; a real office system (a REST client, say) implements the same.
// The daemon never talks to a bank: the office backend learns of a transfer from its
// bank (a notification or the statement) and tells the kiosk (docs/payments.md).

function pad(n, width = 2) {
  return String(n).padStart(width, "0");
}

/** Local calendar date `YYYY-MM-DD`. */
export function isoDate(d) {
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}`;
}

/** Local date-time `YYYY-MM-DDTHH:MM:SS` (the printer templates' format). */
export function isoDateTime(d) {
  return `${isoDate(d)}T${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
}

/** SHA-256 of a text, hex (WebCrypto: available on http://127.0.0.1, a secure context). */
export async function sha256Hex(text) {
  const digest = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(text));
  return Array.from(new Uint8Array(digest), (b) => b.toString(16).padStart(2, "0")).join("");
}

/** The date `workingDays` working days after `from` (weekends and `holidays` skipped). */
export function addWorkingDays(from, workingDays, holidays) {
  const day = new Date(from.getFullYear(), from.getMonth(), from.getDate());
  let left = workingDays;
  while (left > 0) {
    day.setDate(day.getDate() + 1);
    const weekend = day.getDay() === 0 || day.getDay() === 6;
    if (!weekend && !holidays.has(isoDate(day))) left -= 1;
  }
  return day;
}

/**
 * The demo's bank: a BroadcastChannel between the kiosk page and the technician page
 * (same origin).  The kiosk announces {type: "pending", reference, amount} while it
 * waits and {type: "closed", reference} after; the technician page answers a pending
 * transfer with {type: "transfer", reference, amount, bankTransactionId, paidAt}, as a
 * bank's notification would reach a real office backend; {type: "who"} asks for the
 * pending ones again.
 */
export const DEMO_BANK_CHANNEL = "kioskd-demo-bank";
const REFERENCE_LETTERS = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789";

export class DemoOffice {
  constructor(data, now = () => new Date()) {
    this.data = data;
    this.now = now;
    this.holidays = new Set(data.holidays);
    this.filed = new Map();
    this.serial = 0;
  }

  static async load(url) {
    const response = await fetch(url, { cache: "no-cache" });
    if (!response.ok) throw new Error(`office data: HTTP ${response.status}`);
    return new DemoOffice(await response.json());
  }

  async office() {
    return this.data.office;
  }

  async procedures() {
    return this.data.procedures;
  }

  _procedure(id) {
    return this.data.procedures.find((p) => p.id === id) ?? null;
  }

  async lookup(code) {
    const key = code.trim().toUpperCase();
    const entry = this.filed.get(key) ?? this.data.dossiers[key];
    if (!entry) return null;
    const procedure = this._procedure(entry.procedureId);
    if (!procedure) return null;
    return { ...entry, code: key, procedure };
  }

  async submit({ procedure }) {
    const now = this.now();
    this.serial += 1;
    const dossierCode = `HS-${isoDate(now).replaceAll("-", "")}-${pad(this.serial, 4)}`;
    const appointment = addWorkingDays(now, procedure.workingDays, this.holidays);
    // A new dossier is processed until its appointment date: not collectable today.
    this.filed.set(dossierCode, {
      kind: "appointment",
      procedureId: procedure.id,
      status: "processing",
      appointmentDate: isoDate(appointment),
    });
    return {
      dossierCode,
      submittedAt: isoDateTime(now),
      appointmentDate: isoDate(appointment),
      counter: this.data.counter,
    };
  }

  async mayCollect(code, idNumber) {
    const entry = this.data.dossiers[code];
    if (!entry?.ownerIdSha256) return false;
    return entry.ownerIdSha256 === (await sha256Hex(idNumber));
  }

  async collected(code) {
    const entry = this.data.dossiers[code];
    if (entry) entry.status = "collected";
  }

  async transferReference() {
    // "HS", the date and 8 random letters/digits (no 0/O, 1/I): unique, typed back easily.
    const random = crypto.getRandomValues(new Uint8Array(8));
    const tail = Array.from(random, (b) => REFERENCE_LETTERS[b % REFERENCE_LETTERS.length]).join("");
    return `HS${isoDate(this.now()).slice(2).replaceAll("-", "")}${tail}`;
  }

  awaitTransfer({ reference, amount, signal, onTransfer }) {
    return new Promise((resolve, reject) => {
      const bank = new BroadcastChannel(DEMO_BANK_CHANNEL);
      let total = 0;
      const announce = () => bank.postMessage({ type: "pending", reference, amount: amount - total });
      const finish = (settle, value) => {
        signal?.removeEventListener("abort", onAbort);
        bank.postMessage({ type: "closed", reference });
        bank.close();
        settle(value);
      };
      const onAbort = () => finish(reject, signal.reason);
      bank.onmessage = ({ data }) => {
        if (data?.type === "who") announce();
        if (data?.type !== "transfer" || data.reference !== reference || !(data.amount > 0)) return;
        total += data.amount;
        if (total >= amount) finish(resolve, { amount: total, bankTransactionId: data.bankTransactionId, paidAt: data.paidAt });
        else {
          onTransfer?.(total, data.bankTransactionId);
          announce();
        }
      };
      if (signal?.aborted) return onAbort();
      signal?.addEventListener("abort", onAbort, { once: true });
      announce();
    });
  }
}
