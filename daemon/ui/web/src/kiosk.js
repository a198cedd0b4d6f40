// The kiosk page: connects to the daemon, shows the idle screen, runs one visit at a
// time (file a dossier, or collect results) and cleans up after each, however it ends.
import { cleanup, runCollect, runSubmit, scanOrTap, VisitEnded } from "./flow.js";
import { lang, money, pick, setLang, t } from "./i18n.js";
import { DemoOffice } from "./office.js";
import { Session } from "./session.js";
import { Stage, button, h, spinner } from "./ui.js";
import { AbortedError, KioskLink, fetchCredential } from "./wire.js";

/**
 * Timings, seconds, overridable in the page URL (?idle=30&warn=10&pay=60&vietqr=300&done=10)
 * for demos and tests; `vietqr` is how long a VietQR code is shown before it expires.
 */
function readSettings() {
  const q = new URLSearchParams(location.search);
  const seconds = (name, fallback) => {
    const v = Number(q.get(name));
    return (Number.isFinite(v) && v > 0 ? v : fallback) * 1000;
  };
  return {
    idleMs: seconds("idle", 90),
    warnMs: seconds("warn", 20),
    payMs: seconds("pay", 120),
    transferMs: seconds("vietqr", 300),
    doneMs: seconds("done", 20),
    lang: q.get("lang") === "en" ? "en" : "vi",
  };
}

class Kiosk {
  constructor() {
    this.settings = readSettings();
    this.stage = new Stage(document.querySelector("main"));
    this.session = null;
    this.lastPoke = performance.now();
    this.warning = document.querySelector("#idle-warning");
    this.outage = document.querySelector("#outage");
  }

  /** The citizen did something (a tap, a coin, a card): the idle clock starts again. */
  poke() {
    this.lastPoke = performance.now();
    if (!this.warning.hidden) this.warning.hidden = true;
  }

  async start() {
    setLang(this.settings.lang);
    this._header();
    this.stage.show("connecting", () => [h("h1", { tabindex: -1 }, t("connecting")), spinner(t("connecting"))]);
    const config = await (await fetch("config.json", { cache: "no-cache" })).json();
    this.office = await DemoOffice.load("office-demo.json");
    const credential = await fetchCredential();
    this.link = new KioskLink({ url: config.wsUrl, board: config.board, clientPrefix: "kiosk", credential });
    for (const type of ["status", "connection"]) this.link.addEventListener(type, () => this._outage());
    this.link.addEventListener("event", () => {
      if (this.session) this.poke();
    });
    for (const type of ["pointerdown", "keydown", "input"]) {
      document.addEventListener(type, () => this.poke(), { capture: true, passive: true });
    }
    await this.link.connect();
    await this._described();
    setInterval(() => this._idleTick(), 500);
    for (;;) await this._visit();
  }

  _described() {
    if (this.link.description) return Promise.resolve();
    return new Promise((resolve) => this.link.addEventListener("description", resolve, { once: true }));
  }

  _header() {
    const toggle = document.querySelector("#lang");
    const cancel = document.querySelector("#cancel");
    const draw = () => {
      toggle.textContent = t("langToggle");
      toggle.setAttribute("aria-label", t("langToggleLabel"));
      toggle.lang = lang() === "vi" ? "en" : "vi";
      cancel.textContent = t("cancel");
      document.querySelector("#title").textContent = t("title");
      this.warning.querySelector("h2").textContent = t("idleWarnTitle");
      this.warning.querySelector("button").textContent = t("idleWarnStay");
      this.outage.querySelector("h2").textContent = t("outOfService");
      this.outage.querySelector("p").textContent = t("outOfServiceText");
    };
    toggle.addEventListener("click", () => {
      setLang(lang() === "vi" ? "en" : "vi");
      draw();
      this.stage.refresh();
    });
    cancel.addEventListener("click", () => this.session?.abort("cancel"));
    this.warning.querySelector("button").addEventListener("click", () => this.poke());
    draw();
  }

  _showCancel(visible) {
    document.querySelector("#cancel").hidden = !visible;
  }

  _outage() {
    const status = this.link.status?.state;
    this.outage.hidden = this.link.connected && status !== "offline" && status !== "stopping";
  }

  _idleTick() {
    const s = this.session;
    if (!s || s.aborted) return;
    const quiet = performance.now() - this.lastPoke;
    if (quiet >= this.settings.idleMs) {
      this.warning.hidden = true;
      s.abort("idle");
    } else if (quiet >= this.settings.idleMs - this.settings.warnMs) {
      const seconds = Math.ceil((this.settings.idleMs - quiet) / 1000);
      this.warning.querySelector("p").textContent = t("idleWarnText", { seconds });
      this.warning.hidden = false;
    }
  }

  /** The idle screen; resolves what starts a visit: {kind: "submit"|"collect"} or a scanned {code}. */
  async _idle() {
    const s = new Session(this, "idle");
    try {
      for (;;) {
        const got = await scanOrTap(s, "idle", (choose) => [
          h("h1", { tabindex: -1 }, t("idleTitle")),
          this.link.status?.state === "degraded" ? h("p", { class: "notice" }, t("degraded")) : null,
          h(
            "div",
            { class: "choices" },
            h(
              "button",
              { class: "btn choice", type: "button", id: "start-submit", onclick: () => choose("submit") },
              h("strong", {}, t("idleSubmit")),
              h("span", {}, t("idleSubmitHint")),
            ),
            h(
              "button",
              { class: "btn choice", type: "button", id: "start-collect", onclick: () => choose("collect") },
              h("strong", {}, t("idleCollect")),
              h("span", {}, t("idleCollectHint")),
            ),
          ),
          h("p", { class: "hint" }, t("idleScanHint")),
        ]);
        if (got.choice) return { kind: got.choice };
        const dossier = await this.office.lookup(got.text);
        if (dossier) return { kind: dossier.kind === "draft" ? "submit" : "collect", dossier };
        await Promise.race([
          s.ask("idle-unknown", (choose) => [
            h("h1", { tabindex: -1 }, t("unknownCode")),
            h("div", { class: "actions" }, button(t("ok"), () => choose(), { id: "ok" })),
          ]),
          s.sleep(5000),
        ]);
      }
    } finally {
      s.abort("visit");
      s.lightsOff();
    }
  }

  async _chooseProcedure(s) {
    const procedures = await this.office.procedures();
    return s.ask("choose", (choose) => [
      h("h1", { tabindex: -1 }, t("chooseTitle")),
      h(
        "ul",
        { class: "procedures" },
        ...procedures.map((p) =>
          h(
            "li",
            {},
            h(
              "button",
              { class: "btn choice", type: "button", id: `proc-${p.id}`, onclick: () => choose(p) },
              h("strong", {}, pick(p.name)),
              h("span", {}, p.fee ? t("fee", { amount: money(p.fee) }) : t("free")),
              h("span", {}, t("workingDays", { days: p.workingDays })),
            ),
          ),
        ),
      ),
      h("div", { class: "actions" }, button(t("back"), () => choose(null), { kind: "secondary", id: "back" })),
    ]);
  }

  async _visit() {
    const start = await this._idle();
    const s = new Session(this, start.kind);
    this.session = s;
    this.poke();
    this._showCancel(true);
    try {
      if (start.kind === "submit") {
        const procedure = start.dossier?.procedure ?? (await this._chooseProcedure(s));
        if (procedure) await runSubmit(s, procedure);
      } else {
        await runCollect(s, start.dossier?.code);
      }
    } catch (err) {
      if (err instanceof VisitEnded) {
        // Giving up at a problem is a cancel: documents held in the slot are handed back.
        s.abort(err.reason === "problem" ? "cancel" : err.reason);
      } else if (!(err instanceof AbortedError)) {
        console.error("visit failed:", err?.name, err?.code ?? "");
      }
    } finally {
      this._showCancel(false);
      s.abort(s.aborted ? s.signal.reason : "done");
      this.warning.hidden = true;
      try {
        await cleanup(this, s);
      } catch (err) {
        console.error("cleanup failed:", err?.name, err?.code ?? "");
      }
      this.session = null;
    }
  }
}

new Kiosk().start();
