// The kioskd MQTT API v1 as a browser sees it: one MQTT 5 connection over
// websockets, requests with a response topic in this client's own reply
// subtree, retained status/description/state, live events and sim outputs.
// Only public API topics are used (docs/api.md).
import mqtt from "mqtt";
import { decode, encode } from "@msgpack/msgpack";

const MSGPACK = "application/msgpack";
/** Extra time past a command's deadline before a missing completion counts as lost, ms. */
const REPLY_GRACE_MS = 5000;
/** Deadline of a command whose description is unknown, ms. */
const FALLBACK_TIMEOUT_MS = 30000;

export class AbortedError extends Error {
  constructor(reason) {
    super(`aborted: ${reason}`);
    this.name = "AbortedError";
    this.reason = reason;
  }
}

function randomId(bytes = 6) {
  const buf = new Uint8Array(bytes);
  crypto.getRandomValues(buf);
  return Array.from(buf, (b) => b.toString(16).padStart(2, "0")).join("");
}

/**
 * The page's broker login, from its own server: {username, password}, both null on an
 * anonymous broker.  The server hands it out only to a same-origin request carrying
 * this header (docs/ui.md), and the browser must not keep it: `no-store`.
 */
export async function fetchCredential() {
  const response = await fetch("credential.json", { cache: "no-store", headers: { "X-Kioskd-UI": "1" } });
  if (!response.ok) throw new Error(`credential.json: HTTP ${response.status}`);
  return response.json();
}

/**
 * One UI's link to the daemon.  Events (EventTarget):
 * `connection` {connected}, `status` {status}, `description` {description},
 * `state` {device, message}, `event` {device, event, message},
 * `simout` {device, what, data}.
 */
export class KioskLink extends EventTarget {
  constructor({ url, board, clientPrefix = "ui", credential = null }) {
    super();
    this.url = url;
    this.credential = credential;
    this.board = board;
    // The requester: on a broker with users the broker makes the client id the user
    // name (use_username_as_clientid), and the ACL lets it publish requests only under
    // req/{user}/ and read replies only under reply/{user}/ (docs/api.md).
    this.clientId = credential?.username ?? `${clientPrefix}-${randomId()}`;
    // Request ids must not repeat across page loads of the same user: a repeated id of a
    // print or deposit within 10 min would be answered from the idempotency store, not run.
    this._instance = randomId(4);
    this.root = `kiosk/v1/${board}`;
    this.replyTopic = `${this.root}/reply/${this.clientId}/r`;
    this.status = null;
    this.description = null;
    /** device id -> latest DeviceStateMessage */
    this.states = new Map();
    this.connected = false;
    this._pending = new Map();
    this._counter = 0;
    this._session = null;
    this._seq = null;
    this._watchSim = false;
  }

  /** Connect; resolves at the first successful connection (MQTT.js reconnects by itself). */
  connect({ watchSim = false } = {}) {
    this._watchSim = watchSim;
    this.client = mqtt.connect(this.url, {
      protocolVersion: 5,
      clientId: this.clientId,
      clean: true,
      reconnectPeriod: 1000,
      connectTimeout: 5000,
      keepalive: 30,
      ...(this.credential?.username ? { username: this.credential.username, password: this.credential.password ?? "" } : {}),
    });
    this.client.on("message", (topic, payload, packet) => this._onMessage(topic, payload, packet));
    this.client.on("close", () => this._setConnected(false));
    return new Promise((resolve) => {
      this.client.on("connect", () => {
        const topics = [
          `${this.root}/status`,
          `${this.root}/description`,
          `${this.root}/dev/+/state`,
          `${this.root}/dev/+/evt/+`,
          `${this.root}/reply/${this.clientId}/#`,
        ];
        if (this._watchSim) topics.push(`${this.root}/sim/+/out/+`);
        this.client.subscribe(topics, { qos: 1 }, () => {
          this._setConnected(true);
          resolve();
        });
      });
    });
  }

  _setConnected(connected) {
    if (this.connected === connected) return;
    this.connected = connected;
    this._emit("connection", { connected });
  }

  _emit(type, detail) {
    this.dispatchEvent(new CustomEvent(type, { detail }));
  }

  /** Device info (from the retained description) of the first device of a class. */
  deviceOf(cls) {
    const devices = this.description?.devices ?? [];
    return devices.find((d) => d.class === cls) ?? null;
  }

  deviceInfo(id) {
    return (this.description?.devices ?? []).find((d) => d.id === id) ?? null;
  }

  /** Latest state message of the first device of a class, or null. */
  stateOf(cls) {
    const info = this.deviceOf(cls);
    return info ? this.states.get(info.id) ?? null : null;
  }

  _onMessage(topic, payload, packet) {
    let body = null;
    try {
      body = payload.length ? decode(payload) : null;
    } catch {
      return; // not a kioskd message
    }
    const rest = topic.slice(this.root.length + 1).split("/");
    if (rest[0] === "reply") {
      this._onReply(body);
    } else if (rest[0] === "status") {
      this.status = body;
      this._emit("status", { status: body });
    } else if (rest[0] === "description") {
      this.description = body;
      this._emit("description", { description: body });
    } else if (rest[0] === "dev" && rest[2] === "state") {
      if (body === null) {
        this.states.delete(rest[1]);
      } else {
        if (!packet.retain) this._checkSeq(body);
        this.states.set(rest[1], body);
      }
      this._emit("state", { device: rest[1], message: body });
    } else if (rest[0] === "dev" && rest[2] === "evt" && body) {
      this._checkSeq(body);
      this._emit("event", { device: rest[1], event: rest[3], message: body });
    } else if (rest[0] === "sim" && rest[2] === "out") {
      this._emit("simout", { device: rest[1], what: rest[3], data: body });
    }
  }

  /** Live messages of one daemon session are numbered without gaps; a gap asks for a snapshot. */
  _checkSeq(body) {
    if (body.session !== this._session) {
      this._session = body.session;
      this._seq = body.seq;
      return;
    }
    if (this._seq !== null && body.seq > this._seq + 1) this.resync();
    this._seq = Math.max(this._seq ?? body.seq, body.seq);
  }

  async resync() {
    const done = await this.request(null, "resync", {});
    const snap = done.result;
    if (done.completionCode !== "success" || !snap) return;
    this._session = snap.session;
    this._seq = snap.seq;
    this.status = snap.status;
    this._emit("status", { status: snap.status });
    for (const [id, message] of Object.entries(snap.states)) {
      this.states.set(id, message);
      this._emit("state", { device: id, message });
    }
  }

  _onReply(body) {
    if (!body || typeof body.requestId !== "string") return;
    const pending = this._pending.get(body.requestId);
    if (!pending) return;
    if (body.type === "event") {
      pending.onEvent?.(body.event, body.data);
    } else if (body.type === "ack") {
      pending.onAck?.();
    } else if (body.type === "completion") {
      this._settle(body.requestId, body);
    }
  }

  _settle(requestId, completion) {
    const pending = this._pending.get(requestId);
    if (!pending) return;
    this._pending.delete(requestId);
    clearTimeout(pending.timer);
    pending.signal?.removeEventListener("abort", pending.onAbort);
    if (completion instanceof Error) pending.reject(completion);
    else pending.resolve(completion);
  }

  newRequestId() {
    this._counter += 1;
    return `${this.clientId}-${this._instance}-${this._counter}`;
  }

  _deadlineMs(deviceId, command, params) {
    if (params.timeoutMs) return params.timeoutMs;
    const info = deviceId ? this.deviceInfo(deviceId) : null;
    return info?.commands?.[command]?.defaultTimeoutMs ?? FALLBACK_TIMEOUT_MS;
  }

  /**
   * Send a command (deviceId null: a daemon-level command) and resolve with its
   * completion `{completionCode, errorDescription?, result?}`.  `onEvent(name, data)`
   * receives intermediate events.  Aborting `signal` cancels the request on the
   * daemon and rejects with AbortedError at once.  A completion that never comes
   * (connection lost) resolves as `{completionCode: "timeOut", lost: true}`.
   */
  request(deviceId, command, params = {}, { signal, onEvent, onAck, requestId } = {}) {
    const id = requestId ?? this.newRequestId();
    const base = `${this.root}/req/${this.clientId}`;
    const topic = deviceId ? `${base}/dev/${deviceId}/cmd/${command}` : `${base}/cmd/${command}`;
    return this._send(topic, id, params, {
      signal,
      onEvent,
      onAck,
      waitMs: this._deadlineMs(deviceId, command, params) + REPLY_GRACE_MS,
    });
  }

  /** Run a simulator action (`sim/{d}/{action}`); resolves with its completion. */
  sim(deviceId, action, params = {}) {
    return this._send(`${this.root}/sim/${deviceId}/${action}`, this.newRequestId(), params, {
      waitMs: FALLBACK_TIMEOUT_MS,
    });
  }

  /** Cancel this client's running and queued requests (all of them without ids). */
  cancel(requestIds) {
    return this.request(null, "cancel", requestIds ? { requestIds } : {});
  }

  _send(topic, requestId, params, { signal, onEvent, onAck, waitMs }) {
    if (signal?.aborted) return Promise.reject(new AbortedError(signal.reason));
    return new Promise((resolve, reject) => {
      const pending = { resolve, reject, onEvent, onAck, signal };
      pending.timer = setTimeout(
        () => this._settle(requestId, { requestId, completionCode: "timeOut", lost: true }),
        waitMs,
      );
      if (signal) {
        pending.onAbort = () => {
          this.cancel([requestId]);
          this._settle(requestId, new AbortedError(signal.reason));
        };
        signal.addEventListener("abort", pending.onAbort, { once: true });
      }
      this._pending.set(requestId, pending);
      const payload = encode({ requestId, ...params });
      this.client.publish(topic, payload, {
        qos: 1,
        properties: {
          contentType: MSGPACK,
          responseTopic: this.replyTopic,
          correlationData: new TextEncoder().encode(requestId),
        },
      });
    });
  }
}
