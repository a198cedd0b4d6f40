// The citizen's flows over the daemon's devices: filing a dossier and collecting
// results, with the identification, photo, document, payment and printing steps
// they share, and what the kiosk does when a visit ends however it ends.
import { displayToIso, expectedExpiry, isoToDisplay, parseCardQr, validIdNumber } from "./cccd.js";
import { date, money, pick, t } from "./i18n.js";
import { CommandError } from "./session.js";
import { button, h, pictogram, progress, qrCode, spinner } from "./ui.js";
import { AbortedError } from "./wire.js";

/** The visit cannot go on (the reason is shown already); the kiosk cleans up. */
export class VisitEnded extends Error {
  constructor(reason) {
    super(`visit ended: ${reason}`);
    this.name = "VisitEnded";
    this.reason = reason;
  }
}

/** Files of a citizen card in the order a read reports them (readProgress). */
const CARD_FILES = ["COM", "SOD", "DG1", "DG2", "DG13"];
const SCAN_TIMEOUT_MS = 120000;
const CARD_TIMEOUT_MS = 60000;
const ACCEPT_TIMEOUT_MS = 120000;
/**
 * Picture sizes asked of the camera (px, JPEG quality): an ID side 1280 px across its
 * 85.6 mm (about 380 dpi), so a case officer can read its print; a face at the camera's
 * 720 x 960 portrait. The page's MQTT goes through the UI server's bridge to the broker's
 * TCP listener, which delivers such a picture (~270 KB) in milliseconds (docs/ui.md).
 */
const PICTURE = {
  face: { width: 720, quality: 85 },
  idFront: { width: 1280, quality: 85 },
  idBack: { width: 1280, quality: 85 },
};

function heading(text) {
  return h("h1", { tabindex: -1 }, text);
}

function para(text, cls) {
  return h("p", { class: cls }, text);
}

function actions(...buttons) {
  return h("div", { class: "actions" }, ...buttons);
}

// ---------------------------------------------------------------- errors

function detailOf(s, cls) {
  return s.link.stateOf(cls)?.detail ?? {};
}

/** What to tell the citizen about a failed command: {text, retry}. */
export function explain(s, err) {
  const device = t(`device_${err.cls}`);
  if (err.code === "deviceNotReady") return { text: t("errDeviceNotReady", { device }), retry: true };
  if (err.code === "timeOut") return { text: t("errTimeout"), retry: true };
  if (err.cls === "printer") {
    const { paper, cover } = detailOf(s, "printer");
    if (paper === "jammed" || /jam/i.test(err.description)) return { text: t("errPrinterJam"), retry: true };
    if (paper === "out" || /paper/i.test(err.description)) return { text: t("errPaperOut"), retry: true };
    if (cover === "open" || /cover/i.test(err.description)) return { text: t("errCoverOpen"), retry: true };
  }
  if (err.cls === "documentSlot" && (detailOf(s, "documentSlot").media === "jammed" || /jam/i.test(err.description))) {
    return { text: t("errSlotJam"), retry: false };
  }
  if (err.cls === "coinAcceptor" && detailOf(s, "coinAcceptor").cashBox === "full") {
    return { text: t("errCashBoxFull"), retry: false };
  }
  if (err.cls === "cashAcceptor" && ["full", "removed"].includes(detailOf(s, "cashAcceptor").stacker)) {
    return { text: t("errStackerFull"), retry: false };
  }
  if (err.code === "hardwareError") return { text: t("errHardware", { device }), retry: true };
  return { text: t("errOther", { code: err.code }), retry: true };
}

/** A refused locker open: not opened in time, a code the compartment does not take, a lockout. */
function explainLocker(s, err) {
  if (err.code === "timeOut") return { text: t("errLockerTimeout"), retry: true };
  if (err.code === "userError" && /code/i.test(err.description)) return { text: t("errLockerCode"), retry: false };
  if (err.code === "fraudAttempt") return { text: t("errLockerLockedOut"), retry: false };
  return explain(s, err);
}

/** Show a problem; resolves "retry" or "cancel" (the latter ends the visit). */
async function problem(s, text, { retry = true, extra = null } = {}) {
  const choice = await s.ask("problem", (choose) => [
    heading(t("errorTitle")),
    para(text, "problem"),
    extra,
    retry ? null : para(t("contactStaff")),
    actions(
      retry ? button(t("retry"), () => choose("retry"), { id: "retry" }) : null,
      button(retry ? t("cancel") : t("home"), () => choose("cancel"), { kind: "secondary", id: "give-up" }),
    ),
  ]);
  if (choice === "cancel") throw new VisitEnded("problem");
  return choice;
}

/** Run `fn` until it succeeds, offering the citizen a retry after each failure. */
async function withRetry(s, fn, { explainErr = explain, extra } = {}) {
  for (;;) {
    try {
      return await fn();
    } catch (err) {
      if (!(err instanceof CommandError) && err?.name !== "MissingDevice") throw err;
      const { text, retry } = explainErr(s, err);
      await problem(s, text, { retry, extra: extra?.() });
    }
  }
}

// ---------------------------------------------------------------- scanning

/**
 * Show `render(choose)` while the scanner reads; resolves {text} for a scan or
 * {choice} for a tap.  A scanner that cannot read leaves the taps (the screen
 * gets `scannerDown`).
 */
export async function scanOrTap(s, screen, render) {
  s.light("scanner", "slowFlash", "green");
  try {
    for (;;) {
      const local = new AbortController();
      let tapped;
      const tap = new Promise((resolve) => {
        tapped = resolve;
      });
      let scannerDown = false;
      s.kiosk.stage.show(screen, () => render((choice) => tapped({ choice }), scannerDown));
      const main = s.kiosk.stage.main;
      // data-scanner says the read is queued: what tests and the demo wait for before scanning.
      const onAck = () => (main.dataset.scanner = "reading");
      const scan = s
        .cmd("scanner", "read", { timeoutMs: SCAN_TIMEOUT_MS }, { signal: AbortSignal.any([s.signal, local.signal]), onAck })
        .finally(() => delete main.dataset.scanner)
        .then(
          (result) => ({ text: result.text }),
          (err) => {
            if (s.aborted) throw err;
            if (err instanceof AbortedError) return null;
            if (err.code === "timeOut") return { again: true };
            scannerDown = true;
            s.kiosk.stage.refresh();
            return new Promise(() => {}); // only a tap now
          },
        );
      const aborted = new Promise((_, reject) => {
        if (s.aborted) reject(new AbortedError(s.signal.reason));
        s.signal.addEventListener("abort", () => reject(new AbortedError(s.signal.reason)), { once: true });
      });
      aborted.catch(() => {});
      const first = await Promise.race([scan, tap, aborted]);
      local.abort("answered");
      if (first?.again) continue;
      return first;
    }
  } finally {
    if (!s.aborted) s.light("scanner", "off");
  }
}

// ---------------------------------------------------------------- identification

async function askTyped(s, known = {}) {
  let errors = {};
  const values = {
    idNumber: known.idNumber ?? "",
    dateOfBirth: isoToDisplay(known.dateOfBirth),
    dateOfExpiry: isoToDisplay(known.dateOfExpiry),
  };
  for (;;) {
    const typed = await s.ask("identify-typed", (choose) => {
      const field = (name, label) =>
        h(
          "label",
          { class: "field" },
          h("span", {}, label),
          h("input", {
            id: `in-${name}`,
            name,
            inputmode: "numeric",
            autocomplete: "off",
            value: values[name],
            "aria-invalid": errors[name] ? "true" : null,
            "aria-describedby": errors[name] ? `err-${name}` : null,
          }),
          errors[name] ? h("span", { class: "field-error", id: `err-${name}` }, errors[name]) : null,
        );
      const submit = () => {
        const form = s.kiosk.stage.main;
        choose(Object.fromEntries(["idNumber", "dateOfBirth", "dateOfExpiry"].map((n) => [n, form.querySelector(`#in-${n}`).value])));
      };
      return [
        heading(t("typedTitle")),
        h(
          "form",
          { class: "typed", onsubmit: (e) => (e.preventDefault(), submit()) },
          field("idNumber", t("idNumber")),
          field("dateOfBirth", t("dateOfBirth")),
          field("dateOfExpiry", t("dateOfExpiry")),
        ),
        actions(button(t("continue"), submit, { id: "typed-ok" })),
      ];
    });
    Object.assign(values, typed);
    const key = {
      idNumber: typed.idNumber.replace(/\s/g, ""),
      dateOfBirth: displayToIso(typed.dateOfBirth),
      dateOfExpiry: displayToIso(typed.dateOfExpiry),
    };
    errors = {};
    if (!validIdNumber(key.idNumber)) errors.idNumber = t("badIdNumber");
    if (!key.dateOfBirth) errors.dateOfBirth = t("badDate");
    if (!key.dateOfExpiry) errors.dateOfExpiry = t("badDate");
    if (Object.keys(errors).length === 0) return key;
  }
}

async function confirmExpiry(s, card) {
  const suggested = expectedExpiry(card.dateOfBirth, card.dateOfIssue);
  if (!suggested) return askTyped(s, card);
  const answer = await s.ask("identify-expiry", (choose) => [
    heading(t("expiryTitle")),
    para(t("expiryText")),
    h("p", { class: "big-date", id: "expiry" }, isoToDisplay(suggested)),
    actions(
      button(t("expiryYes"), () => choose("yes"), { id: "expiry-yes" }),
      button(t("expiryNo"), () => choose("no"), { kind: "secondary", id: "expiry-no" }),
    ),
  ]);
  if (answer === "yes") return { ...card, dateOfExpiry: suggested };
  return askTyped(s, { ...card, dateOfExpiry: suggested });
}

/** Access key from the card's QR code (plus the confirmed expiry) or typed. */
async function askAccessKey(s) {
  let note = null;
  for (;;) {
    const got = await scanOrTap(s, "identify-key", (choose, scannerDown) => [
      heading(t("keyTitle")),
      para(scannerDown ? t("keyScannerDown") : t("keyScan")),
      note ? para(note, "problem") : null,
      pictogram("qr"),
      actions(button(t("keyType"), () => choose("type"), { kind: "secondary", id: "key-type" })),
    ]);
    if (got.choice === "type") return askTyped(s);
    const card = parseCardQr(got.text);
    if (card) return confirmExpiry(s, card);
    note = t("keyNotCard");
  }
}

async function waitForCard(s) {
  s.light("cardReader", "slowFlash", "green");
  s.kiosk.stage.show("identify-card", () => [
    heading(t("cardTitle")),
    para(t("cardText")),
    pictogram("card"),
    spinner(t("cardTitle")),
  ]);
  await withRetry(s, () => s.cmd("cardReader", "waitForCard", { timeoutMs: CARD_TIMEOUT_MS }), {
    explainErr: (_s, err) => (err.code === "timeOut" ? { text: t("errCardTimeout"), retry: true } : explain(s, err)),
  });
}

async function readCard(s, key) {
  const seen = { file: null, fraction: 0 };
  s.kiosk.stage.show("identify-read", () => [
    heading(t("readTitle")),
    para(t("readText")),
    progress(seen.fraction, t("readProgress")),
  ]);
  const accessKey = { documentNumber: key.idNumber, dateOfBirth: key.dateOfBirth, dateOfExpiry: key.dateOfExpiry };
  const onEvent = (name, data) => {
    if (name !== "readProgress") return;
    const index = Math.max(0, CARD_FILES.indexOf(data.file));
    seen.fraction = (index + (data.total ? data.bytes / data.total : 1)) / CARD_FILES.length;
    s.kiosk.stage.refresh();
  };
  const result = await s.cmd("cardReader", "readIdentity", { accessKey, timeoutMs: 30000 }, { onEvent });
  seen.fraction = 1;
  s.kiosk.stage.refresh();
  return result;
}

/** Passive authentication's verdicts of the read for each subject an `unknown` issue may explain. */
const VERDICTS = { hashesValid: "EF.SOD hashes", signatureValid: "EF.SOD signature", chainValid: "CSCA chain" };

/**
 * Whether passive authentication found the chip's data forged: a false verdict, unless an
 * `unknown` issue on its subject says it could not be checked (docs/api.md).
 */
function forged(auth, issues) {
  return Object.entries(VERDICTS).some(
    ([verdict, subject]) => auth[verdict] === false && !issues.some((i) => i.status === "unknown" && i.subject === subject),
  );
}

/** A data group's or check's name for the citizen (the daemon's own name when not translated). */
function subjectName(subject) {
  const key = `subject_${subject}`;
  const text = t(key);
  return text === key ? subject : text;
}

/** Identify the citizen with the chip card; returns {name, idNumber, faceUrl}. */
export async function identify(s) {
  let key = await askAccessKey(s);
  for (;;) {
    await waitForCard(s);
    let result;
    try {
      result = await readCard(s, key);
    } catch (err) {
      if (!(err instanceof CommandError)) throw err;
      if (err.code === "userError" || err.code === "invalidData") {
        if (detailOf(s, "cardReader").media !== "present" || /remov|no card/i.test(err.description)) {
          await problem(s, t("errCardRemoved"));
          continue;
        }
        await problem(s, t("errWrongKey"));
        key = await askTyped(s, key);
        continue;
      }
      await problem(s, explain(s, err).text);
      continue;
    } finally {
      s.light("cardReader", "off");
    }
    const issues = result.issues ?? []; // absent from daemons older than the field: none
    if (forged(result.passiveAuth ?? {}, issues)) {
      await problem(s, t("errCardInvalid"), { retry: false });
    }
    if (result.mrz.dateOfExpiry && result.mrz.dateOfExpiry < new Date().toISOString().slice(0, 10)) {
      await problem(s, t("errCardExpired"), { retry: false });
    }
    // DG13 named in issues is null or not vouched for by EF.SOD: the MRZ decides (docs/api.md).
    const dg13 = issues.some((i) => i.subject === "DG13") ? null : result.dg13;
    const face = result.face;
    s.identity = {
      name: dg13?.fullName ?? result.mrz.name,
      idNumber: dg13?.idNumber ?? result.mrz.optionalData ?? key.idNumber,
      faceUrl: face?.displayJpeg
        ? s.imageUrl(face.displayJpeg, "image/jpeg")
        : face?.data
          ? s.imageUrl(face.data, face.mime)
          : null,
    };
    const shown = issues.filter((i) => ["unverified", "unreadable", "unknown"].includes(i.status));
    await s.ask("identify-ok", (choose) => [
      heading(`${t("helloTitle")}, ${s.identity.name}`),
      shown.length ? para(t("helloPartial"), "notice") : para(t("helloText")),
      shown.length
        ? h("ul", { id: "read-issues", class: "notice" }, ...shown.map((i) => h("li", { "data-subject": i.subject, "data-status": i.status }, `${subjectName(i.subject)}: ${t(`issue_${i.status}`)}`)))
        : null,
      s.identity.faceUrl ? h("img", { class: "portrait", src: s.identity.faceUrl, alt: t("chipPhoto") }) : null,
      actions(button(t("continue"), () => choose(), { id: "hello-ok" })),
    ]);
    return s.identity;
  }
}

// ---------------------------------------------------------------- photos

async function capture(s, purpose) {
  for (;;) {
    await s.ask(`capture-${purpose}`, (choose) => [
      heading(t(`capture_${purpose}`)),
      para(t(`capture_${purpose}Text`)),
      actions(button(t("takePicture"), () => choose(), { id: "take" })),
    ]);
    s.light("camera", "on", "white");
    s.kiosk.stage.show(`capture-${purpose}-busy`, () => [heading(t(`capture_${purpose}`)), spinner(t("taking")), para(t("taking"))]);
    const picture = await withRetry(s, () => s.cmd("camera", "takePicture", { purpose, ...PICTURE[purpose] }));
    s.light("camera", "off");
    const url = s.imageUrl(picture.data, picture.mime ?? "image/jpeg");
    const answer = await s.ask(`capture-${purpose}-check`, (choose) => [
      heading(t(`capture_${purpose}`)),
      h(
        "div",
        { class: "pictures" },
        h("img", { class: "photo", src: url, alt: t(`capture_${purpose}`) }),
        purpose === "face" && s.identity?.faceUrl ? h("img", { class: "photo", src: s.identity.faceUrl, alt: t("chipPhoto") }) : null,
      ),
      actions(
        button(t("usePicture"), () => choose("use"), { id: "use-picture" }),
        button(t("retake"), () => choose("again"), { kind: "secondary", id: "retake" }),
      ),
    ]);
    if (answer === "use") {
      s.photos.push({ purpose, data: picture.data });
      return;
    }
  }
}

// ---------------------------------------------------------------- documents

async function acceptOnce(s, procedure) {
  const view = { feeding: false };
  s.kiosk.stage.show("documents", () => [
    heading(t("docsTitle")),
    para(view.feeding ? t("docsFeeding") : t("docsText")),
    h("p", {}, t("docsNeeded")),
    h("ul", { class: "docs" }, ...pick(procedure.documents).map((d) => h("li", {}, d))),
    view.feeding ? spinner(t("docsFeeding")) : pictogram("slot"),
  ]);
  s.light("documentSlot", "slowFlash", "green");
  const inserted = s.watch("documentSlot", (kind, name) => (name === "documentInserted" ? true : undefined));
  inserted.then(() => {
    view.feeding = true;
    s.kiosk.stage.refresh();
  }, () => {});
  try {
    await s.cmd("documentSlot", "accept", { timeoutMs: ACCEPT_TIMEOUT_MS });
  } finally {
    if (!s.aborted) s.light("documentSlot", "off");
  }
  s.documentHeld = true;
  await s.cmd("documentSlot", "retract");
  s.documentHeld = false;
}

async function documents(s, procedure) {
  if (!pick(procedure.documents).length) return 0;
  let count = 0;
  for (;;) {
    await withRetry(s, () => acceptOnce(s, procedure), {
      explainErr: (_s, err) => (err.code === "timeOut" && err.command === "accept" ? { text: t("errNoDocument"), retry: true } : explain(s, err)),
    });
    count += 1;
    const more = await s.ask("documents-more", (choose) => [
      heading(t("docsMoreTitle")),
      para(t("docsCount", { count })),
      actions(
        button(t("continue"), () => choose(false), { id: "docs-done" }),
        button(t("docsMore"), () => choose(true), { kind: "secondary", id: "docs-more" }),
      ),
    ]);
    if (!more) return count;
  }
}

// ---------------------------------------------------------------- payment

/** How a payment was made, as the (Vietnamese) receipt prints it. */
const RECEIPT_METHOD = { cash: "Tiền xu", notes: "Tiền giấy", mixed: "Tiền xu và tiền giấy", vietqr: "Chuyển khoản VietQR" };

/**
 * The cash devices by payment method: both take the same deposit commands (docs/api.md).
 * A deposit is the board's: started on one acceptor, the daemon opens it on the other too
 * (docs/payments.md "One payment, several devices"), and its one depositEnded comes from
 * the device it was started on with what each device took.  `mixed` starts it on the coin
 * acceptor and invites both; `cash` and `notes` invite one (a coin or note fed to the
 * other is taken, shown and printed all the same).
 */
const CASH = {
  cash: { cls: "coinAcceptor", classes: ["coinAcceptor"], button: "payByCoins", text: "payText" },
  notes: { cls: "cashAcceptor", classes: ["cashAcceptor"], button: "payByNotes", text: "payNotesText" },
  mixed: { cls: "coinAcceptor", classes: ["coinAcceptor", "cashAcceptor"], button: "payByMixed", text: "payMixedText" },
};

/** The cash methods this board offers: each whose devices are all described. */
function cashOffered(s) {
  return Object.keys(CASH).filter((m) => CASH[m].classes.every((cls) => s.link.deviceOf(cls)));
}

/** How a cash payment is printed: by the devices that took money (depositEnded's `devices`). */
function paidWith(s, method, ended) {
  const took = new Set((ended.devices ?? []).filter((d) => d.items > 0).map((d) => d.deviceId));
  const has = (cls) => Boolean(s.link.deviceOf(cls)) && took.has(s.deviceId(cls));
  const coins = has(CASH.cash.cls);
  const notes = has(CASH.notes.cls);
  if (coins && notes) return "mixed";
  if (coins || notes) return coins ? "cash" : "notes";
  return method;
}

/** The daemon makes VietQR codes ([vietqr] configured) and the office confirms transfers. */
function transferOffered(s) {
  const commands = s.link.description?.daemonCommands ?? [];
  return commands.includes("vietqrPayload") && typeof s.kiosk.office.awaitTransfer === "function";
}

/** The cash payment offered first: coins when the board has a coin acceptor, else notes. */
function firstCash(s) {
  return s.link.deviceOf("coinAcceptor") || !s.link.deviceOf("cashAcceptor") ? "cash" : "notes";
}

/** Take the fee in coins, notes or by VietQR transfer, as the citizen chooses; sets s.deposit. */
async function pay(s, procedure) {
  const due = procedure.fee;
  if (!due) return;
  let method = firstCash(s);
  while (method) {
    if (method === "vietqr") {
      const next = await payTransfer(s, procedure, due);
      method = next === "cash" ? firstCash(s) : next;
    } else {
      method = await payCash(s, due, method);
    }
  }
}

/** What became of each note fed during a deposit, newest last: escrowed, then stacked or returned. */
function noteSeen(notes, value, state, reason) {
  const held = notes.findLast((n) => n.state === "escrowed" && (value === undefined || n.value === value));
  if (state !== "escrowed" && held) Object.assign(held, { state, reason });
  else if (value !== undefined) notes.push({ value, state, reason });
}

/** Why a note came back, for the citizen. */
function returnedText(note) {
  const key = { overpayment: "noteReturnedOver", notAccepted: "noteReturnedNotTaken" }[note.reason] ?? "noteReturnedOther";
  return t(key, { value: money(note.value) });
}

/**
 * A deposit on the coin (`cash`) or note (`notes`) acceptor; resolves null when paid, or
 * the method the citizen switched to before anything was paid ("cash", "notes", "vietqr").
 */
async function payCash(s, due, method) {
  const { cls, classes, text } = CASH[method];
  const values = (which, items) => (s.link.deviceOf(which)?.capabilities?.[items] ?? []).map((c) => money(c)).join(", ");
  const coins = values("coinAcceptor", "coins");
  const notes = values("cashAcceptor", "notes");
  const offered = cashOffered(s);
  const others = offered.filter((m) => m !== method);
  // Events of every acceptor the deposit may take money on.
  const watched = offered.includes("mixed") ? CASH.mixed.classes : classes;
  const started = await withRetry(s, () =>
    s.cmd(cls, "depositStart", { currency: "VND", amountDue: due, timeoutMs: s.kiosk.settings.payMs }),
  );
  const deposit = {
    method,
    cls,
    transactionId: started.transactionId,
    amountDue: due,
    total: 0,
    ended: false,
    receiptPrinted: false,
    endsAt: performance.now() + started.timeoutMs,
    rejected: false,
    notes: [],
    switching: null,
  };
  s.deposit = deposit;
  for (const c of classes) s.light(c, "slowFlash", "green");
  // Switching ends the deposit; its depositEnded then ends the wait below.
  const switchTo = (next) => () => {
    if (deposit.switching) return;
    deposit.switching = next;
    s.kiosk.stage.refresh();
    s.cmd(cls, "depositEnd", { transactionId: deposit.transactionId }).catch((err) => console.warn("depositEnd", err?.code ?? err?.name));
  };
  const noteItem = (note) =>
    h(
      "li",
      { class: note.state === "returned" ? "problem" : undefined, "data-state": note.state, "data-value": String(note.value) },
      note.state === "returned" ? returnedText(note) : t(`note_${note.state}`, { value: money(note.value) }),
    );
  const render = () => {
    const left = Math.max(0, Math.ceil((deposit.endsAt - performance.now()) / 1000));
    const switches = [
      ...others.map((other) => button(t(CASH[other].button), switchTo(other), { kind: "secondary", id: `pay-${other}`, disabled: Boolean(deposit.switching) })),
      transferOffered(s) ? button(t("payByTransfer"), switchTo("vietqr"), { kind: "secondary", id: "pay-vietqr", disabled: Boolean(deposit.switching) }) : null,
    ].filter(Boolean);
    return [
      heading(t("payTitle")),
      para(t(text, { coins, notes })),
      h(
        "dl",
        { class: "money" },
        h("dt", {}, t("payDue")),
        h("dd", { id: "pay-due" }, money(due)),
        h("dt", {}, t("payPaid")),
        h("dd", { id: "pay-paid" }, money(deposit.total)),
        h("dt", {}, t("payLeft")),
        h("dd", { id: "pay-left" }, money(Math.max(0, due - deposit.total))),
      ),
      progress(deposit.total / due, t("payPaid")),
      h("p", { class: "countdown", id: "pay-time", "aria-live": "off" }, t("payTime", { seconds: left })),
      deposit.rejected ? para(t(deposit.rejected === "coinRejected" ? "payRejected" : "payNoteRejected"), "problem") : null,
      deposit.notes.length ? h("ul", { class: "notes", id: "pay-notes", "aria-live": "polite" }, ...deposit.notes.map(noteItem)) : null,
      deposit.total === 0 && switches.length ? actions(...switches) : null,
    ];
  };
  s.kiosk.stage.show("payment", render);
  const ticker = setInterval(() => s.kiosk.stage.refresh(), 1000);
  const seen = () => {
    s.kiosk.poke();
    s.kiosk.stage.refresh();
  };
  let ended;
  try {
    ended = await s.watch(watched, (kind, name, message) => {
      const data = message.data ?? {};
      if (kind === "state") {
        if (message.detail?.transactionId === deposit.transactionId && typeof message.detail.total === "number") {
          deposit.total = Math.max(deposit.total, message.detail.total);
          s.kiosk.stage.refresh();
        }
        return undefined;
      }
      if ((name === "coinAccepted" || name === "noteStacked") && data.transactionId === deposit.transactionId) {
        deposit.total = Math.max(deposit.total, data.total);
        deposit.rejected = false;
        if (name === "noteStacked") noteSeen(deposit.notes, data.value, "stacked");
        seen();
      } else if (name === "noteEscrowed") {
        deposit.rejected = false;
        noteSeen(deposit.notes, data.value, "escrowed");
        seen();
      } else if (name === "noteReturned") {
        noteSeen(deposit.notes, data.value, "returned", data.reason);
        seen();
      } else if (name === "coinRejected" || name === "noteRejected") {
        deposit.rejected = name;
        seen();
      } else if (name === "depositEnded" && data.transactionId === deposit.transactionId) {
        return data;
      }
      return undefined;
    });
  } finally {
    clearInterval(ticker);
    if (!s.aborted) for (const c of classes) s.light(c, "off");
  }
  deposit.ended = true;
  deposit.total = ended.total;
  deposit.paidWith = paidWith(s, method, ended);
  if (ended.total >= due) {
    deposit.overpayment = ended.overpaymentAmount ?? ended.overpayment ?? ended.total - due;
    return null;
  }
  if (deposit.switching && ended.total === 0) {
    s.deposit = null;
    return deposit.switching;
  }
  // Out of time short of the fee (or money landed as the citizen switched): the visit ends
  // with a receipt for what was paid.
  s.endNote = { title: "payTimeoutTitle", text: t("payTimeoutText", { paid: money(ended.total), due: money(due) }) };
  throw new VisitEnded("paymentTimeout");
}

function minutes(ms) {
  const seconds = Math.max(0, Math.ceil(ms / 1000));
  return `${Math.floor(seconds / 60)}:${String(seconds % 60).padStart(2, "0")}`;
}

/**
 * A VietQR transfer: the daemon makes the code (vietqrPayload), the office backend says
 * when the bank credited it.  Resolves null when paid, "cash" when the citizen switched;
 * an expired code offers a new one.
 */
async function payTransfer(s, procedure, due) {
  const office = s.kiosk.office;
  const reference = await office.transferReference({ procedure, amount: due });
  s.check();
  const done = await s.link.request(null, "vietqrPayload", { amount: due, reference }, { signal: s.signal });
  s.check();
  if (done.completionCode !== "success") {
    console.warn("vietqrPayload", done.completionCode);
    await problem(s, t("transferFailed"));
    return "vietqr";
  }
  const code = done.result;
  const transfer = { reference, received: 0, lastTransactionId: null, endsAt: performance.now() + s.kiosk.settings.transferMs };
  let toCash;
  const cash = new Promise((resolve) => {
    toCash = resolve;
  });
  const render = () => [
    heading(t("transferTitle")),
    h(
      "div",
      { class: "transfer" },
      qrCode(code.qr, t("transferQrLabel", { amount: money(due), reference })),
      h(
        "div",
        {},
        para(t("transferText")),
        h(
          "dl",
          { class: "money" },
          h("dt", {}, t("transferAmount")),
          h("dd", { id: "pay-due" }, money(due)),
          h("dt", {}, t("transferReference")),
          h("dd", { id: "transfer-reference" }, reference),
          code.accountName ? h("dt", {}, t("transferTo")) : null,
          code.accountName ? h("dd", { id: "transfer-to" }, code.accountName) : null,
          transfer.received ? h("dt", {}, t("transferReceived")) : null,
          transfer.received ? h("dd", { id: "pay-paid" }, money(transfer.received)) : null,
        ),
        h("p", { class: "countdown", id: "pay-time", "aria-live": "off" }, t("transferTime", { time: minutes(transfer.endsAt - performance.now()) })),
        para(t("transferWaiting")),
        transfer.received ? null : actions(button(t(firstCash(s) === "notes" ? "payByNotes" : "transferCash"), () => toCash(), { kind: "secondary", id: "pay-cash" })),
      ),
    ),
  ];
  s.kiosk.stage.show("payment-vietqr", render);
  // The citizen is busy with a phone, not the screen: the code's validity bounds the wait.
  const ticker = setInterval(() => {
    s.kiosk.poke();
    s.kiosk.stage.refresh();
  }, 1000);
  const local = new AbortController();
  const onTransfer = (total, bankTransactionId) => {
    transfer.received = total;
    transfer.lastTransactionId = bankTransactionId;
    s.kiosk.stage.refresh();
  };
  const paid = office.awaitTransfer({ reference, amount: due, signal: AbortSignal.any([s.signal, local.signal]), onTransfer });
  paid.catch(() => {});
  const expired = s.sleep(s.kiosk.settings.transferMs);
  expired.catch(() => {});
  let outcome;
  try {
    outcome = await Promise.race([
      paid.then((result) => ({ result })),
      expired.then(() => ({ expired: true })),
      cash.then(() => ({ cash: true })),
    ]);
  } finally {
    clearInterval(ticker);
    local.abort("payment step over");
  }
  if (outcome.cash) return "cash";
  const deposit = {
    method: "vietqr",
    reference,
    transactionId: outcome.result?.bankTransactionId ?? transfer.lastTransactionId ?? reference,
    amountDue: due,
    total: outcome.result?.amount ?? transfer.received,
    paidAt: outcome.result?.paidAt ?? null,
    ended: true,
    receiptPrinted: false,
  };
  if (outcome.result) {
    s.deposit = deposit;
    deposit.overpayment = Math.max(0, deposit.total - due);
    return null;
  }
  if (transfer.received > 0) {
    s.deposit = deposit;
    s.endNote = { title: "payTimeoutTitle", text: t("payTimeoutText", { paid: money(transfer.received), due: money(due) }) };
    throw new VisitEnded("paymentTimeout");
  }
  await problem(s, t("transferExpired"));
  return "vietqr";
}

// ---------------------------------------------------------------- printing

async function print(s, template, fields, whatKey, { code } = {}) {
  const requestId = s.link.newRequestId();
  let lost = false;
  for (;;) {
    s.light("printer", "slowFlash", "green");
    s.kiosk.stage.show("printing", () => [heading(t("printing")), para(t(whatKey)), spinner(t(whatKey))]);
    try {
      // A retry after a lost reply reuses the request id: the daemon never prints twice.
      await s.cmd("printer", "printSlip", { template, fields }, { requestId: lost ? requestId : undefined });
      return true;
    } catch (err) {
      if (!(err instanceof CommandError)) throw err;
      lost = err.lost;
      const choice = await s.ask("print-problem", (choose) => [
        heading(t("printFailedTitle")),
        para(explain(s, err).text, "problem"),
        code ? para(t("writeDownCode", { code }), "code") : null,
        para(t("contactStaff")),
        actions(
          button(t("retry"), () => choose("retry"), { id: "retry" }),
          button(t("printSkip"), () => choose("skip"), { kind: "secondary", id: "print-skip" }),
        ),
      ]);
      if (choice === "skip") return false;
    } finally {
      if (!s.aborted) s.light("printer", "off");
    }
  }
}

function receiptFields(s, office, procedure, dossierCode) {
  const d = s.deposit;
  const fields = {
    office: office.vi,
    dossierCode: dossierCode ?? "-",
    amountPaid: d.total,
    amountDue: d.amountDue,
    // A transfer was paid when the bank says; coins when the deposit ended (now).
    paidAt: d.paidAt ?? new Date(Date.now() - new Date().getTimezoneOffset() * 60000).toISOString().slice(0, 19),
    transactionId: d.transactionId,
    paymentMethod: RECEIPT_METHOD[d.paidWith ?? d.method],
  };
  if (d.reference) fields.transferReference = d.reference;
  if (procedure) fields.procedure = procedure.name.vi;
  if (s.identity) fields.payerName = s.identity.name;
  return fields;
}

/** Print the receipt of what was paid, once; resolves true when it came out. */
export async function printReceipt(s, { procedure, dossierCode } = {}) {
  if (!s.deposit || s.deposit.total <= 0 || s.deposit.receiptPrinted) return s.deposit?.receiptPrinted ?? false;
  const office = await s.kiosk.office.office();
  const fields = receiptFields(s, office, procedure, dossierCode);
  const ok = await print(s, "receipt", fields, "printReceipt", { code: dossierCode });
  s.deposit.receiptPrinted = ok;
  return ok;
}

// ---------------------------------------------------------------- flows

function cardReminder(s) {
  return detailOf(s, "cardReader").media === "present" ? para(t("takeCard"), "reminder") : null;
}

async function finish(s, screen, render) {
  await Promise.race([s.ask(screen, render), s.sleep(s.kiosk.settings.doneMs)]);
}

/** File a dossier for `procedure`: identify, photos, documents, fee, slip. */
export async function runSubmit(s, procedure) {
  s.procedure = procedure;
  await identify(s);
  for (const purpose of ["face", "idFront", "idBack"]) await capture(s, purpose);
  const count = await documents(s, procedure);
  await pay(s, procedure);
  s.kiosk.stage.show("submitting", () => [heading(t("submitting")), spinner(t("submitting"))]);
  const filed = await s.kiosk.office.submit({
    procedure,
    idNumber: s.identity.idNumber,
    documents: count,
    photos: s.photos,
    payment: s.deposit
      ? { method: s.deposit.method, transactionId: s.deposit.transactionId, total: s.deposit.total, reference: s.deposit.reference }
      : null,
  });
  s.filed = filed;
  const office = await s.kiosk.office.office();
  if (s.deposit) await printReceipt(s, { procedure, dossierCode: filed.dossierCode });
  const printed = await print(
    s,
    "appointment",
    {
      office: office.vi,
      procedure: procedure.name.vi,
      dossierCode: filed.dossierCode,
      citizenName: s.identity.name,
      submittedAt: filed.submittedAt,
      appointmentDate: filed.appointmentDate,
      counter: filed.counter.vi,
      qr: filed.dossierCode,
    },
    "printAppointment",
    { code: filed.dossierCode },
  );
  await finish(s, "done", (choose) => [
    heading(t("doneTitle")),
    para(t("doneText", { date: date(filed.appointmentDate) })),
    h("p", { class: "code", id: "dossier-code" }, t("dossierCode", { code: filed.dossierCode })),
    printed ? para(t("doneTake")) : para(t("writeDownCode", { code: filed.dossierCode }), "problem"),
    s.deposit?.overpayment ? para(t("payOver", { amount: money(s.deposit.overpayment) })) : null,
    cardReminder(s),
    actions(button(t("home"), () => choose(), { id: "home" })),
  ]);
}

async function info(s, screen, text) {
  await finish(s, screen, (choose) => [
    heading(t("collectTitle")),
    para(text, "problem"),
    cardReminder(s),
    actions(button(t("home"), () => choose(), { id: "home" })),
  ]);
}

/** Collect results: the slip's QR (given, or scanned now), the card, the compartment. */
export async function runCollect(s, code) {
  let dossierCode = code;
  if (!dossierCode) {
    const got = await scanOrTap(s, "collect-scan", (choose) => [
      heading(t("collectTitle")),
      para(t("collectScan")),
      pictogram("qr"),
      actions(button(t("back"), () => choose("back"), { kind: "secondary", id: "back" })),
    ]);
    if (got.choice) throw new VisitEnded("back");
    dossierCode = got.text.trim();
  }
  const dossier = await s.kiosk.office.lookup(dossierCode);
  if (!dossier || dossier.kind !== "appointment") return info(s, "collect-unknown", t("unknownCode"));
  if (dossier.status === "processing") {
    return info(s, "collect-not-ready", t("collectNotReady", { code: dossier.code, date: date(dossier.appointmentDate) }));
  }
  if (dossier.status !== "ready") return info(s, "collect-done-already", t("collectDoneAlready", { code: dossier.code }));
  const who = await identify(s);
  if (!(await s.kiosk.office.mayCollect(dossier.code, who.idNumber))) {
    return info(s, "collect-not-owner", t("notOwner", { code: dossier.code }));
  }
  const n = dossier.compartment;
  const view = { open: false, leftOpen: false };
  const render = () => [
    heading(t("collectTitle")),
    para(view.open ? t("lockerTake", { n }) : t("lockerOpening", { n }), "big"),
    view.leftOpen ? para(t("lockerLeftOpen", { n }), "problem") : null,
    pictogram("locker", n),
  ];
  s.light("lockers", "quickFlash", "green");
  try {
    await withRetry(
      s,
      async () => {
        view.open = false;
        s.kiosk.stage.show("collect-open", render);
        // The daemon opens the compartment only with the code staff assigned it: the slip's.
        await s.cmd("lockers", "open", { compartment: n, code: dossierCode });
      },
      { explainErr: (_s, err) => explainLocker(s, err) },
    );
    view.open = true;
    s.kiosk.stage.show("collect-take", render);
    await s.watch("lockers", (kind, name, message) => {
      if (kind === "event" && message.data?.compartment === n) {
        if (name === "compartmentLeftOpen") {
          view.leftOpen = true;
          s.kiosk.stage.refresh();
        }
        if (name === "compartmentClosed") return true;
      }
      return undefined;
    });
  } finally {
    if (!s.aborted) s.light("lockers", "off");
  }
  await s.kiosk.office.collected(dossier.code);
  await finish(s, "collect-done", (choose) => [
    heading(t("doneTitle")),
    para(t("collectDone")),
    cardReminder(s),
    actions(button(t("home"), () => choose(), { id: "home" })),
  ]);
}

/**
 * After a visit, however it ended: stop its commands, end an open deposit, print a
 * receipt for money taken without one, hand back or bin a held document, lights off.
 * Runs outside the (aborted) visit: its own requests have no abort signal.
 */
export async function cleanup(kiosk, s) {
  const link = kiosk.link;
  const reason = s.signal.reason;
  kiosk.stage.show("closing", () => [heading(t("closing")), spinner(t("closing"))]);
  await link.cancel();
  const tail = new s.constructor(kiosk, "cleanup");
  tail.identity = s.identity;
  tail.deposit = s.deposit;
  tail.lights = s.lights;
  const deposit = s.deposit;
  if (deposit && !deposit.ended) {
    const acceptor = link.deviceOf(deposit.cls);
    const done = acceptor ? await link.request(acceptor.id, "depositEnd", { transactionId: deposit.transactionId }) : null;
    if (done?.completionCode === "success") {
      deposit.total = done.result.total;
      deposit.ended = true;
    } else {
      console.warn("depositEnd", done?.completionCode);
    }
  }
  if (s.documentHeld) {
    const slot = link.deviceOf("documentSlot");
    // The citizen asked to stop: hand the documents back; a citizen who left: keep them safe.
    if (slot) await link.request(slot.id, reason === "cancel" ? "eject" : "retract", {});
  }
  let printed = false;
  if (deposit && deposit.total > 0 && !deposit.receiptPrinted) {
    try {
      printed = await printReceiptUnattended(tail, s);
    } catch (err) {
      if (!(err instanceof AbortedError)) console.warn("receipt", err?.code ?? err?.name);
    }
  }
  await tail.lightsOff();
  if (deposit && deposit.total > 0 && (printed || !deposit.receiptPrinted)) {
    const text = deposit.receiptPrinted
      ? t("moneyText", { paid: money(deposit.total), tx: deposit.transactionId })
      : t("moneyNoReceipt", { paid: money(deposit.total), tx: deposit.transactionId });
    await Promise.race([
      tail.ask("money", (choose) => [
        heading(t(s.endNote?.title ?? "moneyTitle")),
        s.endNote ? para(s.endNote.text, "problem") : null,
        para(text, "big"),
        para(t("contactStaff")),
        actions(button(t("home"), () => choose(), { id: "home" })),
      ]),
      tail.sleep(kiosk.settings.doneMs),
    ]);
  }
  tail.abort("done");
  s.forget();
  tail.forget();
}

/** A receipt after the visit: no citizen may be there to answer, so one try, no questions. */
async function printReceiptUnattended(tail, s) {
  const office = await tail.kiosk.office.office();
  tail.kiosk.stage.show("printing", () => [heading(t("printing")), para(t("printReceipt")), spinner(t("printReceipt"))]);
  try {
    await tail.cmd("printer", "printSlip", {
      template: "receipt",
      fields: receiptFields(tail, office, s.procedure, s.filed?.dossierCode),
    });
    tail.deposit.receiptPrinted = true;
    return true;
  } catch (err) {
    if (err instanceof CommandError) return false;
    throw err;
  }
}
