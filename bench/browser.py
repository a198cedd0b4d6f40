"""``python -m bench.browser``: a 272 KB picture to headless Chromium, against TCP, in one run.

A standalone mosquitto with the project's broker config and its websockets
listener; a peer process (``bench.echo`` in picture mode, aiomqtt, TCP_NODELAY)
answering each request with :data:`PICTURE_BYTES` random bytes at QoS 1; and
``kioskd ui`` as its own process, whose ``/mqtt`` bridge relays to the broker's
TCP listener (the reference UI's default path).  Each sample is one request
until the whole picture has arrived:

- **tcp**: an aiomqtt client in this process (TCP_NODELAY), the floor;
- **mqttjsTcp**, **mqttjsTcpNodelay**: MQTT.js 5.16 in Node over TCP (``bench/mqttjs_picture.mjs``,
  the reference UI's own locked copy), as it comes (Nagle on: issue 19's baseline) and with
  ``setNoDelay(true)``; left out, with the reason, without node or ``daemon/ui/web/node_modules``;
- **bridgeRelay**: a ``websockets`` client in this process through the bridge (what
  the relay adds to TCP, without a browser);
- **bridge**: Chromium, through ``kioskd ui``'s ``/mqtt`` bridge;
- **browserFloor**: Chromium receiving the same number of bytes as one binary
  websocket message from a ``websockets`` server in this process (TCP_NODELAY), no
  MQTT and no broker: what the browser's own websocket costs, the floor of any
  browser path;
- **mosquittoWs**: Chromium, through mosquitto's own websockets listener (the
  path the UI used before; a few samples only, each takes seconds).

In Chromium the client is ``tests/ui/mqtt311.js`` over the browser's WebSocket,
timed with ``performance.now()`` inside the page.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from dataclasses import asdict
from pathlib import Path
from typing import Any

import aiomqtt
from playwright.async_api import Page, async_playwright
from websockets.asyncio.client import connect as ws_connect
from websockets.asyncio.server import ServerConnection, serve
from websockets.typing import Subprotocol

from tests.ui.conftest import CHROMIUM, CHROMIUM_ARGS

from . import procs
from .stats import Stats

#: The picture size of the issue's measurement (an ID side at the camera's default size).
PICTURE_BYTES = 272_000
TOPIC = "bench/picture/req"
CLIENT_JS = procs.REPO / "tests" / "ui" / "mqtt311.js"
#: The reference UI's npm project: its node_modules holds the MQTT.js the Node baseline runs.
WEB_DIR = procs.REPO / "daemon" / "ui" / "web"
NODE_CLIENT = Path(__file__).with_name("mqttjs_picture.mjs")
#: The Node baseline's whole run (connect, warm-up, samples), in seconds.
NODE_TIMEOUT_S = 120
_UI_LINE = re.compile(r"kiosk UI: (http://127\.0\.0\.1:\d+/)")

_OPEN = """async ({name, url}) => {
  const { client, code } = await Mqtt311.open(url, { clientId: name });
  if (code !== 0) throw new Error(`CONNACK ${code}`);
  await client.subscribe(`bench/picture/reply/${name}`);
  window.__mq[name] = client;
}"""
_FLOOR = """async ({url, count, warmup}) => {
  const ws = new WebSocket(url);
  ws.binaryType = "arraybuffer";
  await new Promise((resolve, reject) => { ws.onopen = resolve; ws.onerror = reject; });
  const samples = [];
  for (let i = 0; i < warmup + count; i++) {
    const t0 = performance.now();
    const got = new Promise((resolve) => { ws.onmessage = (ev) => resolve(ev.data.byteLength); });
    ws.send("picture");
    const bytes = await got;
    if (i >= warmup) samples.push({ ms: performance.now() - t0, bytes });
  }
  ws.close();
  return samples;
}"""
_ONE = """async (name) => {
  const client = window.__mq[name];
  const t0 = performance.now();
  client.publish("bench/picture/req", `bench/picture/reply/${name}`);
  const message = await client.next(60000);
  if (message === null) throw new Error("no picture within 60 s");
  return { ms: message.at - t0, bytes: message.bytes };
}"""


@contextlib.asynccontextmanager
async def _process(*args: str) -> AsyncIterator[asyncio.subprocess.Process]:
    proc = await asyncio.create_subprocess_exec(
        *args, cwd=procs.REPO, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE
    )
    try:
        yield proc
    finally:
        if proc.returncode is None:
            proc.terminate()
            await proc.wait()


async def _line(proc: asyncio.subprocess.Process, pattern: re.Pattern[str]) -> re.Match[str]:
    assert proc.stdout is not None
    async with asyncio.timeout(15):
        while line := (await proc.stdout.readline()).decode():
            if found := pattern.search(line):
                return found
    raise RuntimeError(f"{proc} exited without printing {pattern.pattern}")


async def _tcp(port: int, count: int, warmup: int) -> list[float]:
    reply = "bench/picture/reply/tcp"
    nodelay = (socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    samples: list[float] = []
    async with aiomqtt.Client(
        "127.0.0.1", port, identifier="bench-tcp", socket_options=[nodelay]
    ) as client:
        await client.subscribe(reply, qos=1)
        for i in range(warmup + count):
            t0 = time.perf_counter()
            await client.publish(TOPIC, reply.encode())
            async with asyncio.timeout(60):
                message = await anext(client.messages)
            if not isinstance(message.payload, bytes) or len(message.payload) != PICTURE_BYTES:
                raise RuntimeError("tcp: the picture arrived incomplete")
            if i >= warmup:
                samples.append(time.perf_counter() - t0)
    return samples


def node_missing() -> str | None:
    """Why the MQTT.js baseline cannot run here (None: it can)."""
    if shutil.which("node") is None:
        return "node is not installed"
    if not (WEB_DIR / "node_modules" / "mqtt").is_dir():
        return f"MQTT.js is not installed: cd {WEB_DIR.relative_to(procs.REPO)} && npm ci"
    return None


async def _mqttjs(port: int, count: int, warmup: int, *, nodelay: bool) -> list[float]:
    """Pictures to MQTT.js in Node over TCP (QoS 1 subscription, requests at QoS 0).

    Raises:
        RuntimeError: the client failed, timed out, or a picture arrived incomplete.

    """
    args = (str(WEB_DIR), str(port), str(count), str(warmup), "1" if nodelay else "0")
    proc = await asyncio.create_subprocess_exec(
        "node", str(NODE_CLIENT), *args, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(), NODE_TIMEOUT_S)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise RuntimeError(f"MQTT.js: no result within {NODE_TIMEOUT_S} s") from None
    if proc.returncode != 0:
        raise RuntimeError(f"MQTT.js: {err.decode(errors='replace').strip()}")
    result = json.loads(out)
    if result["bytes"] != PICTURE_BYTES:
        raise RuntimeError(f"MQTT.js: {result['bytes']} of {PICTURE_BYTES} bytes")
    return [ms / 1000 for ms in result["ms"]]


def _mqtt_packet(first: int, body: bytes) -> bytes:
    """An MQTT control packet: the first byte, the remaining length (varint), ``body``."""
    length, n = bytearray(), len(body)
    while True:
        n, digit = divmod(n, 128)
        length.append(digit | (128 if n else 0))
        if not n:
            return bytes([first]) + bytes(length) + body


def _mqtt_str(text: str) -> bytes:
    raw = text.encode()
    return len(raw).to_bytes(2, "big") + raw


async def _relay(url: str, count: int, warmup: int) -> list[float]:
    """Pictures through the bridge to a websockets client speaking MQTT 3.1.1 (QoS 0)."""
    reply = "bench/picture/reply/relay"
    samples: list[float] = []
    async with ws_connect(url, subprotocols=[Subprotocol("mqtt")], max_size=None) as ws:
        await ws.send(
            _mqtt_packet(0x10, _mqtt_str("MQTT") + bytes([4, 2, 0, 60]) + _mqtt_str("relay"))
        )
        await ws.recv()  # CONNACK
        await ws.send(_mqtt_packet(0x82, b"\0\1" + _mqtt_str(reply) + b"\0"))
        await ws.recv()  # SUBACK
        request = _mqtt_packet(0x30, _mqtt_str(TOPIC) + reply.encode())
        for i in range(warmup + count):
            t0 = time.perf_counter()
            await ws.send(request)
            got = 0
            async with asyncio.timeout(60):
                while got < PICTURE_BYTES:  # the picture and its PUBLISH header
                    got += len(await ws.recv())
            if i >= warmup:
                samples.append(time.perf_counter() - t0)
    return samples


async def _floor(page: Page, count: int, warmup: int) -> list[float]:
    """The picture's bytes to Chromium as one websocket message, asked for by the page.

    Raises:
        RuntimeError: a message arrived with another size.

    """
    picture = bytes(PICTURE_BYTES)

    async def answer(ws: ServerConnection) -> None:
        sock = ws.transport.get_extra_info("socket")
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        async for _ in ws:
            await ws.send(picture)

    async with serve(answer, "127.0.0.1", 0, compression=None, max_size=None) as server:
        port = next(iter(server.sockets)).getsockname()[1]
        url = f"ws://127.0.0.1:{port}/"
        got = await page.evaluate(_FLOOR, {"url": url, "count": count, "warmup": warmup})
    if any(sample["bytes"] != PICTURE_BYTES for sample in got):
        raise RuntimeError("browserFloor: a message arrived with another size")
    return [sample["ms"] / 1000 for sample in got]


async def _page(page: Page, name: str, url: str, count: int, warmup: int) -> list[float]:
    await page.evaluate(_OPEN, {"name": name, "url": url})
    samples: list[float] = []
    for i in range(warmup + count):
        got = await page.evaluate(_ONE, name)
        if got["bytes"] != PICTURE_BYTES:
            raise RuntimeError(f"{name}: {got['bytes']} of {PICTURE_BYTES} bytes")
        if i >= warmup:
            samples.append(got["ms"] / 1000)
    return samples


async def measure(count: int, slow_count: int) -> dict[str, Any]:
    """Each path's samples summarised (Stats dicts, ms), all in one run.

    Keys: tcp, mqttjsTcp and mqttjsTcpNodelay (or ``mqttjsMissing``, the reason),
    bridgeRelay, bridge, browserFloor, mosquittoWs; ``bytes``: the picture's size.
    """
    with (
        procs.broker(websockets=True) as broker,
        tempfile.TemporaryDirectory(prefix="kioskd-bench-browser-") as tmp,
    ):
        config = Path(tmp) / "kioskd.toml"
        config.write_text(
            f'[board]\nid = "bench-0001"\n\n[mqtt]\nport = {broker.port}\n', encoding="utf-8"
        )
        async with (
            _process(
                sys.executable, "-m", "bench.echo", str(broker.port), TOPIC, str(PICTURE_BYTES)
            ) as peer,
            _process(
                sys.executable, "-m", "daemon", "ui", "--config", str(config), "--port", "0"
            ) as ui,
            async_playwright() as p,
        ):
            await _line(peer, re.compile("ready"))
            ui_url = (await _line(ui, _UI_LINE))[1]
            bridge_url = "ws" + ui_url.removeprefix("http") + "mqtt"
            browser = await p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            try:
                page = await browser.new_page()
                await page.goto(ui_url + "config.json")
                await page.evaluate(CLIENT_JS.read_text(encoding="utf-8"))
                raw = {"tcp": await _tcp(broker.port, count, 3)}
                if node_missing() is None:
                    raw["mqttjsTcp"] = await _mqttjs(broker.port, count, 3, nodelay=False)
                    raw["mqttjsTcpNodelay"] = await _mqttjs(broker.port, count, 3, nodelay=True)
                raw |= {
                    "bridgeRelay": await _relay(bridge_url, count, 3),
                    "bridge": await _page(page, "bridge", bridge_url, count, 3),
                    "browserFloor": await _floor(page, count, 3),
                    "mosquittoWs": await _page(
                        page, "mosquittoWs", f"ws://127.0.0.1:{broker.ws_port}", slow_count, 1
                    ),
                }
            finally:
                await browser.close()
    missing = {"mqttjsMissing": why} if (why := node_missing()) else {}
    return (
        {name: asdict(Stats.of(samples)) for name, samples in raw.items()}
        | {"bytes": PICTURE_BYTES}
        | missing
    )


#: The Node baselines over TCP, in the order printed.
TCP_BASELINES = ("mqttjsTcp", "mqttjsTcpNodelay")


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.browser", description=__doc__)
    parser.add_argument("--count", type=int, default=20, help="pictures over TCP and the bridge")
    parser.add_argument(
        "--slow-count", type=int, default=3, help="pictures over mosquitto's websockets"
    )
    args = parser.parse_args()
    result = asyncio.run(measure(args.count, args.slow_count))
    print(f"{PICTURE_BYTES} B picture, request until fully received (ms)")
    for name in ("tcp", *TCP_BASELINES, "bridgeRelay", "bridge", "browserFloor", "mosquittoWs"):
        if s := result.get(name):
            print(f"  {name:<16} n={s['n']:<3} p50={s['p50']:>9.1f} p99={s['p99']:>9.1f}")
    if "mqttjsMissing" in result:
        print(f"  mqttjs: not measured ({result['mqttjsMissing']})")
    tcp = result["tcp"]["p50"]
    print(f"  bridgeRelay p50 / tcp p50 = {result['bridgeRelay']['p50'] / tcp:.2f}x")
    for name in ("tcp", *TCP_BASELINES, "browserFloor"):
        if name in result:
            ratio = result["bridge"]["p50"] / result[name]["p50"]
            print(f"  bridge (Chromium) p50 / {name} p50 = {ratio:.2f}x")


if __name__ == "__main__":
    main()
