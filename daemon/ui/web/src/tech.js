// The technician page: live retained device states, the broadcast event log (never
// identity data: a scanned code's text is hidden), the simulator controls and the
// demo office's bank (it reports a VietQR transfer as paid, as a bank notification would).
import { DEMO_BANK_CHANNEL, isoDateTime } from "./office.js";
import { button, h } from "./ui.js";
import { KioskLink, fetchCredential } from "./wire.js";

const MAX_LOG = 200;
/** Event data keys that may hold what a citizen showed the kiosk; never displayed. */
const HIDDEN_KEYS = new Set(["text"]);

function compact(value) {
  return JSON.stringify(value, (key, v) => {
    if (HIDDEN_KEYS.has(key)) return "(hidden)";
    if (v instanceof Uint8Array) return `(${v.length} bytes)`;
    return v;
  });
}

function clock(ts) {
  return new Date(ts ?? Date.now()).toLocaleTimeString("en-GB");
}

/** Controls for the contract's sim actions of a class (wire-api-v1.md, "Simulators"). */
function controls(link, info, report) {
  const run = (action, params) => async () => {
    const done = await link.sim(info.id, action, params());
    report(`${info.id}/${action}: ${done.completionCode}${done.errorDescription ? ` (${done.errorDescription})` : ""}`);
  };
  const has = (action) => info.simActions.includes(action);
  const items = [];
  const field = (attrs) => h("input", { ...attrs, "aria-label": attrs.placeholder });
  switch (info.class) {
    case "scanner": {
      const text = field({ placeholder: "code text", value: "HS-DEMO-0002" });
      if (has("scan")) items.push(text, button("scan", run("scan", () => ({ text: text.value }))));
      break;
    }
    case "cardReader": {
      const card = h("select", { "aria-label": "specimen card" }, ...["default", "female", "expired", "noDg13", "garbledDg13", "jp2Portrait"].map((c) => h("option", {}, c)));
      if (has("presentCard")) items.push(card, button("present card", run("presentCard", () => ({ card: card.value }))));
      if (has("removeCard")) items.push(button("remove card", run("removeCard", () => ({})), { kind: "secondary" }));
      break;
    }
    case "printer":
      for (const level of ["full", "low", "out"]) if (has("paper")) items.push(button(`paper ${level}`, run("paper", () => ({ level })), { kind: "secondary" }));
      if (has("cover")) items.push(button("cover open", run("cover", () => ({ open: true })), { kind: "secondary" }), button("cover closed", run("cover", () => ({ open: false })), { kind: "secondary" }));
      break;
    case "coinAcceptor":
      for (const value of [...(info.capabilities?.coins ?? []), 3000]) {
        if (has("insertCoin")) items.push(button(`coin ${value}`, run("insertCoin", () => ({ value }))));
      }
      break;
    case "cashAcceptor":
      for (const value of [...(info.capabilities?.notes ?? []), 3000]) {
        if (has("insertNote")) items.push(button(`note ${value}`, run("insertNote", () => ({ value }))));
      }
      if (has("stacker")) {
        for (const state of ["removed", "ok", "full"]) items.push(button(`stacker ${state}`, run("stacker", () => ({ state })), { kind: "secondary" }));
      }
      break;
    case "documentSlot":
      if (has("insertDocument")) items.push(button("insert document", run("insertDocument", () => ({}))));
      if (has("takeDocument")) items.push(button("take document", run("takeDocument", () => ({})), { kind: "secondary" }));
      break;
    case "lockers": {
      const n = field({ placeholder: "compartment", value: "3", inputmode: "numeric", size: 3 });
      if (has("openCompartment")) items.push(n, button("pull door", run("openCompartment", () => ({ compartment: Number(n.value) }))));
      if (has("closeCompartment")) items.push(button("shut door", run("closeCompartment", () => ({ compartment: Number(n.value) })), { kind: "secondary" }));
      break;
    }
    case "sensors":
      if (has("door")) items.push(button("door open", run("door", () => ({ open: true })), { kind: "secondary" }), button("door closed", run("door", () => ({ open: false })), { kind: "secondary" }));
      if (has("tamper")) items.push(button("tamper", run("tamper", () => ({})), { kind: "danger" }));
      break;
    default:
      break;
  }
  if (has("fault")) {
    const kind = h("select", { "aria-label": `${info.id} fault` }, ...["clear", "disconnect", "hardwareError", "jam", "slow", "garbage"].map((k) => h("option", {}, k)));
    items.push(kind, button("fault", run("fault", () => ({ kind: kind.value })), { kind: "secondary" }));
  }
  return h("div", { class: "device-sim", id: `sim-${info.id}` }, h("strong", {}, info.id), ...items);
}

/**
 * The demo bank's side of DemoOffice.awaitTransfer: the kiosk's pending VietQR transfers,
 * each with a button that reports it paid; `redraw` after any change.
 */
function demoBank(redraw, report) {
  const channel = new BroadcastChannel(DEMO_BANK_CHANNEL);
  const pending = new Map();
  let serial = 0;
  channel.onmessage = ({ data }) => {
    if (data?.type === "pending") pending.set(data.reference, data.amount);
    else if (data?.type === "closed") pending.delete(data.reference);
    else return;
    redraw();
  };
  channel.postMessage({ type: "who" });
  const pay = (reference, amount) => () => {
    serial += 1;
    const now = new Date();
    const bankTransactionId = `FT${isoDateTime(now).replace(/\D/g, "").slice(2, 12)}${String(serial).padStart(4, "0")}`;
    const paidAt = isoDateTime(now);
    channel.postMessage({ type: "transfer", reference, amount, bankTransactionId, paidAt });
    report(`demo bank: ${amount} VND under ${reference} (${bankTransactionId}, ${paidAt})`, { reference, amount, bankTransactionId, paidAt });
  };
  return () =>
    h(
      "div",
      { class: "demo-bank", id: "demo-bank" },
      h("strong", {}, "demo bank"),
      ...(pending.size
        ? [...pending].map(([reference, amount]) => button(`transfer received: ${amount} VND, ${reference}`, pay(reference, amount), { id: `bank-pay-${reference}` }))
        : [h("span", {}, "no VietQR transfer pending")]),
    );
}

async function main() {
  const config = await (await fetch("config.json", { cache: "no-cache" })).json();
  document.querySelector("#board").textContent = config.board;
  const credential = await fetchCredential();
  const link = new KioskLink({ url: config.wsUrl, board: config.board, clientPrefix: "tech", credential });
  const tbody = document.querySelector("#devices tbody");
  const badge = document.querySelector("#daemon-status");
  const events = document.querySelector("#events");
  const outputs = document.querySelector("#outputs");
  const report = (text, sent) => {
    const result = document.querySelector("#sim-result");
    result.textContent = text;
    // What the demo bank reported last, for tests and the curious.
    if (sent) Object.assign(result.dataset, sent);
  };
  let slipUrl = null;

  const drawDevices = () => {
    const rows = (link.description?.devices ?? []).map((info) => {
      const state = link.states.get(info.id);
      return h(
        "tr",
        { id: `dev-${info.id}` },
        h("td", {}, info.id),
        h("td", {}, `${info.class} / ${info.driver}${info.simulated ? " (simulated)" : ""}`),
        h("td", { class: `state-${state?.state}` }, state?.state ?? "?"),
        h("td", {}, h("code", {}, state ? compact(state.detail) : "")),
      );
    });
    tbody.replaceChildren(...rows);
  };
  const drawStatus = () => {
    const s = link.status;
    badge.textContent = link.connected ? s?.state ?? "?" : "disconnected";
    document.querySelector("#reasons").textContent = s?.reasons?.length ? `reasons: ${s.reasons.join(", ")}` : "";
  };
  // The demo bank redraws on its own, so typed sim inputs are not reset by a transfer.
  const bankBox = h("div", {});
  const bank = demoBank(() => bankBox.replaceChildren(bank()), report);
  bankBox.replaceChildren(bank());
  const drawSim = () => {
    const simulated = (link.description?.devices ?? []).filter((d) => d.simulated);
    const transfers = (link.description?.daemonCommands ?? []).includes("vietqrPayload") ? [bankBox] : [];
    document.querySelector("#sim").replaceChildren(...simulated.map((info) => controls(link, info, report)), ...transfers);
  };
  const log = (list, text) => {
    list.prepend(h("li", {}, text));
    while (list.children.length > MAX_LOG) list.lastChild.remove();
  };

  link.addEventListener("description", () => {
    drawDevices();
    drawSim();
  });
  link.addEventListener("state", drawDevices);
  link.addEventListener("status", drawStatus);
  link.addEventListener("connection", drawStatus);
  link.addEventListener("event", (e) => {
    const { device, event, message } = e.detail;
    log(events, `${clock(message.ts)} ${device} ${event} ${compact(message.data ?? {})}`);
  });
  link.addEventListener("simout", (e) => {
    const { device, what, data } = e.detail;
    if (what === "slip" && data?.png) {
      if (slipUrl) URL.revokeObjectURL(slipUrl);
      slipUrl = URL.createObjectURL(new Blob([data.png], { type: "image/png" }));
      document.querySelector("#slip").src = slipUrl;
      document.querySelector("#slip-figure").hidden = false;
      log(outputs, `${clock()} ${device} slip printed (${data.widthDots} dots wide)`);
    } else {
      log(outputs, `${clock()} ${device} ${what} ${compact(data)}`);
    }
  });
  await link.connect({ watchSim: true });
}

main();
