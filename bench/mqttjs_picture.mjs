// The browser bench's Node baseline: MQTT.js (the reference UI's own locked copy, 5.16) over
// TCP, timing requests for a picture until the whole message has arrived.
//
//   node bench/mqttjs_picture.mjs WEB_DIR PORT COUNT WARMUP NODELAY
//
// WEB_DIR: daemon/ui/web, whose node_modules holds mqtt; NODELAY: "1" sets TCP_NODELAY on the
// socket (MQTT.js does not by default), "0" leaves Node's default (Nagle on). Prints one JSON
// line: {"ms": [one number per timed picture], "bytes": the size of the last picture}.
// Exits 1 with the reason on stderr when the broker refuses or a picture takes over 60 s.
import { createRequire } from "node:module";
import { join } from "node:path";
import { performance } from "node:perf_hooks";

const [webDir, port, count, warmup, nodelay] = process.argv.slice(2);
const mqtt = createRequire(join(webDir, "package.json"))("mqtt");
const name = `bench-mqttjs-${nodelay === "1" ? "nodelay" : "default"}`;
const reply = `bench/picture/reply/${name}`;
const PICTURE_TIMEOUT_MS = 60000;

function fail(why) {
  process.stderr.write(`${name}: ${why}\n`);
  process.exit(1);
}

const client = mqtt.connect(`mqtt://127.0.0.1:${port}`, {
  clientId: name,
  protocolVersion: 4,
  reconnectPeriod: 0,
  connectTimeout: 10000,
});
client.on("error", (err) => fail(String(err)));
client.once("connect", async () => {
  if (nodelay === "1") client.stream.setNoDelay(true);
  await client.subscribeAsync(reply, { qos: 1 });
  const ms = [];
  let bytes = 0;
  for (let i = 0; i < Number(warmup) + Number(count); i++) {
    const arrived = new Promise((resolve) => client.once("message", (_, payload) => resolve(payload)));
    const t0 = performance.now();
    client.publish("bench/picture/req", reply, { qos: 0 });
    const timer = setTimeout(() => fail("no picture within 60 s"), PICTURE_TIMEOUT_MS);
    const payload = await arrived;
    const elapsed = performance.now() - t0;
    clearTimeout(timer);
    bytes = payload.length;
    if (i >= Number(warmup)) ms.push(elapsed);
  }
  process.stdout.write(`${JSON.stringify({ ms, bytes })}\n`);
  client.end(false, () => process.exit(0));
});
