// A minimal MQTT 3.1.1 client over the browser's own WebSocket, evaluated in a page by
// the bridge test and the browser bench (Playwright page.evaluate): it installs
// window.Mqtt311. CONNECT (with a login), SUBSCRIBE, PUBLISH at QoS 0, PUBACK for
// QoS 1 deliveries; each packet is parsed from the byte stream, whatever the websocket
// message boundaries are. Nothing here is the daemon's code: the bytes are the spec's.
() => {
  const enc = new TextEncoder();
  const str = (s) => { const b = enc.encode(s); return [b.length >> 8, b.length & 255, ...b]; };
  const varint = (n) => {
    const out = [];
    do { let d = n % 128; n = Math.floor(n / 128); if (n) d |= 128; out.push(d); } while (n);
    return out;
  };
  const packet = (type, body) => new Uint8Array([type, ...varint(body.length), ...body]);

  class Mqtt311 {
    /** Connect; resolves {client, code}: code is the CONNACK return code, -1 if closed first. */
    static open(url, { clientId = "page", username = null, password = null } = {}) {
      const client = new Mqtt311(url);
      return new Promise((resolve) => {
        client._onConnack = (code) => resolve({ client, code });
        client.ws.onopen = () => {
          let flags = 0x02;
          const payload = [...str(clientId)];
          if (username !== null) { flags |= 0x80; payload.push(...str(username)); }
          if (password !== null) { flags |= 0x40; payload.push(...str(password)); }
          client.ws.send(packet(0x10, [...str("MQTT"), 4, flags, 0, 60, ...payload]));
        };
      });
    }

    constructor(url) {
      this.ws = new WebSocket(url, ["mqtt"]);
      this.ws.binaryType = "arraybuffer";
      this.buf = new Uint8Array(0);
      this.messages = [];
      this.waiters = [];
      this.subacks = [];
      this.closed = false;
      this._onConnack = null;
      this.ws.onmessage = (ev) => this._feed(new Uint8Array(ev.data));
      this.ws.onclose = () => {
        this.closed = true;
        this._onConnack?.(-1);
        for (const w of this.waiters.splice(0)) w(null);
      };
    }

    _feed(bytes) {
      const joined = new Uint8Array(this.buf.length + bytes.length);
      joined.set(this.buf);
      joined.set(bytes, this.buf.length);
      this.buf = joined;
      for (;;) {
        let length = 0, mult = 1, at = 1;
        for (;;) {
          if (at >= this.buf.length) return;
          const d = this.buf[at++];
          length += (d & 127) * mult;
          mult *= 128;
          if (!(d & 128)) break;
        }
        if (this.buf.length < at + length) return;
        this._packet(this.buf[0], this.buf.subarray(at, at + length));
        this.buf = this.buf.slice(at + length);
      }
    }

    _packet(first, body) {
      switch (first >> 4) {
        case 2: { const f = this._onConnack; this._onConnack = null; f?.(body[1]); break; }
        case 9: this.subacks.shift()?.(Array.from(body.subarray(2))); break;
        case 3: {
          const qos = (first >> 1) & 3;
          const topicLength = (body[0] << 8) | body[1];
          const topic = new TextDecoder().decode(body.subarray(2, 2 + topicLength));
          let at = 2 + topicLength;
          if (qos > 0) { this.ws.send(packet(0x40, [body[at], body[at + 1]])); at += 2; }
          const message = { topic, bytes: body.length - at, text: new TextDecoder().decode(body.subarray(at, at + 2000)), at: performance.now() };
          const w = this.waiters.shift();
          if (w) w(message); else this.messages.push(message);
          break;
        }
        default: break;
      }
    }

    /** Subscribe at QoS 1; resolves the SUBACK's return codes (0x80: refused). */
    subscribe(topic) {
      return new Promise((resolve) => {
        this.subacks.push(resolve);
        this.ws.send(packet(0x82, [0, 1, ...str(topic), 1]));
      });
    }

    publish(topic, text) {
      this.ws.send(packet(0x30, [...str(topic), ...enc.encode(text)]));
    }

    /** The next message, or null after timeoutMs or when the connection closed. */
    next(timeoutMs) {
      if (this.messages.length) return Promise.resolve(this.messages.shift());
      if (this.closed) return Promise.resolve(null);
      return new Promise((resolve) => {
        const timer = setTimeout(() => { this.waiters = this.waiters.filter((w) => w !== done); resolve(null); }, timeoutMs);
        const done = (m) => { clearTimeout(timer); resolve(m); };
        this.waiters.push(done);
      });
    }

    close() { this.ws.close(); }
  }
  window.Mqtt311 = Mqtt311;
  window.__mq = {};
}
