// One citizen's visit: every command it sends, every light it switches on, an open
// deposit, a document held in the slot.  Aborting it (cancel, idle timeout, a fatal
// error) cancels its running commands on the daemon; the kiosk then runs cleanup().
import { AbortedError } from "./wire.js";

/** A command that completed with anything but success. */
export class CommandError extends Error {
  constructor(cls, command, completion) {
    super(`${cls}.${command}: ${completion.completionCode}`);
    this.name = "CommandError";
    this.cls = cls;
    this.command = command;
    this.code = completion.completionCode;
    this.description = completion.errorDescription ?? "";
    this.lost = Boolean(completion.lost);
  }
}

/** The class has no device on this kiosk. */
export class MissingDevice extends Error {
  constructor(cls) {
    super(`no ${cls} device`);
    this.name = "MissingDevice";
    this.cls = cls;
    this.code = "deviceNotReady";
  }
}

export class Session {
  constructor(kiosk, kind) {
    this.kiosk = kiosk;
    this.link = kiosk.link;
    this.kind = kind;
    this.controller = new AbortController();
    this.lights = new Set();
    /** {transactionId, amountDue, total, ended, receiptPrinted, startedAt} while money is involved. */
    this.deposit = null;
    /** A document was taken into the slot's escrow and not yet passed to the bin. */
    this.documentHeld = false;
    this.identity = null;
    this.photos = [];
    this.urls = [];
    /** What the closing screen says about money when the visit ended early. */
    this.endNote = null;
  }

  get signal() {
    return this.controller.signal;
  }

  get aborted() {
    return this.signal.aborted;
  }

  abort(reason) {
    if (!this.aborted) this.controller.abort(reason);
  }

  check() {
    if (this.aborted) throw new AbortedError(this.signal.reason);
  }

  deviceId(cls) {
    const info = this.link.deviceOf(cls);
    if (!info) throw new MissingDevice(cls);
    return info.id;
  }

  /**
   * Run a device command for this session and return its result; throws CommandError
   * on any other completion, AbortedError once the session is aborted.
   */
  async cmd(cls, command, params = {}, { onEvent, onAck, requestId, signal } = {}) {
    this.check();
    const id = this.deviceId(cls);
    const done = await this.link.request(id, command, params, {
      signal: signal ?? this.signal,
      onEvent,
      onAck,
      requestId,
    });
    this.check();
    if (done.completionCode !== "success") throw new CommandError(cls, command, done);
    return done.result ?? {};
  }

  /**
   * Set a guide light; failures are not the citizen's problem (logged, not shown).
   * `color` goes only to a position whose `capabilities.positionColors` lists it: a
   * single-colour light refuses any colour (unsupportedCommand) and shows its own.
   */
  async light(position, mode, color) {
    const info = this.link.deviceOf("lights");
    if (!info || !(info.capabilities?.positions ?? []).includes(position)) return;
    if (mode === "off") this.lights.delete(position);
    else this.lights.add(position);
    const colors = info.capabilities.positionColors?.[position] ?? [];
    const params = color && colors.includes(color) ? { position, mode, color } : { position, mode };
    const done = await this.link.request(info.id, "set", params);
    if (done.completionCode !== "success") console.warn("light", position, done.completionCode);
  }

  async lightsOff() {
    await Promise.all([...this.lights].map((p) => this.light(p, "off")));
  }

  /** Resolve after `ms`, or reject when the session is aborted. */
  sleep(ms) {
    return new Promise((resolve, reject) => {
      if (this.aborted) return reject(new AbortedError(this.signal.reason));
      const timer = setTimeout(resolve, ms);
      this.signal.addEventListener(
        "abort",
        () => {
          clearTimeout(timer);
          reject(new AbortedError(this.signal.reason));
        },
        { once: true },
      );
    });
  }

  /**
   * Wait for a broadcast event (or state change) of a class, or of any of several classes
   * (an array): `match(kind, name, message, cls)` returns a value to resolve with, or
   * undefined to keep waiting.
   */
  watch(classes, match) {
    return new Promise((resolve, reject) => {
      const byId = new Map([classes].flat().map((c) => [this.deviceId(c), c]));
      const onEvent = (e) => {
        if (!byId.has(e.detail.device)) return;
        const value = match("event", e.detail.event, e.detail.message, byId.get(e.detail.device));
        if (value !== undefined) finish(resolve, value);
      };
      const onState = (e) => {
        if (!byId.has(e.detail.device) || !e.detail.message) return;
        const value = match("state", null, e.detail.message, byId.get(e.detail.device));
        if (value !== undefined) finish(resolve, value);
      };
      const onAbort = () => finish(reject, new AbortedError(this.signal.reason));
      const finish = (fn, value) => {
        this.link.removeEventListener("event", onEvent);
        this.link.removeEventListener("state", onState);
        this.signal.removeEventListener("abort", onAbort);
        fn(value);
      };
      if (this.aborted) return onAbort();
      this.link.addEventListener("event", onEvent);
      this.link.addEventListener("state", onState);
      this.signal.addEventListener("abort", onAbort, { once: true });
      for (const [id, cls] of byId) {
        const now = this.link.states.get(id);
        if (!now) continue;
        const value = match("state", null, now, cls);
        if (value !== undefined) return finish(resolve, value);
      }
    });
  }

  /** Wait until the citizen picks one of the screen's choices (`render(choose)`). */
  ask(screen, render) {
    return new Promise((resolve, reject) => {
      if (this.aborted) return reject(new AbortedError(this.signal.reason));
      const onAbort = () => reject(new AbortedError(this.signal.reason));
      this.signal.addEventListener("abort", onAbort, { once: true });
      this.kiosk.stage.show(screen, () =>
        render((value) => {
          this.signal.removeEventListener("abort", onAbort);
          resolve(value);
        }),
      );
    });
  }

  /** A blob: URL for image bytes, revoked when the session ends. */
  imageUrl(bytes, mime = "image/jpeg") {
    const url = URL.createObjectURL(new Blob([bytes], { type: mime }));
    this.urls.push(url);
    return url;
  }

  /** Forget everything about the citizen. */
  forget() {
    for (const url of this.urls) URL.revokeObjectURL(url);
    this.urls = [];
    this.identity = null;
    this.photos = [];
  }
}
