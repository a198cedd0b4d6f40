"""The measurements: broker floor, daemon round trips, a naive paho client, events, start-up."""

from __future__ import annotations

import asyncio
import dataclasses
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import msgspec
import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from tests.uiclient import MSGPACK, UiClient, connect

from . import browser, card_read, footprint, fsyncs, procs, scanner, slip
from .stats import Stats

BOARD = "sim-0001"
FLOOR_BOARD = "bench-0001"
READY_STATES = ("ready", "degraded")


@dataclass(frozen=True, slots=True)
class Plan:
    """How many round trips to time, after how many untimed ones."""

    count: int
    warmup: int
    startups: int = 5
    idle_s: float = 10.0
    settle_s: float = 2.0
    #: Pictures timed over mosquitto's websockets listener (each takes seconds).
    slow_pictures: int = 3


class CpuMeter:
    """CPU time (utime + stime) the given processes spend over the timed round trips."""

    def __init__(self, pids: dict[str, int | None]) -> None:
        self._pids = {name: pid for name, pid in pids.items() if pid is not None}
        self._start: dict[str, float] = {}

    def start(self) -> None:
        self._start = {name: procs.cpu_seconds(pid) for name, pid in self._pids.items()}

    def per_op_ms(self, ops: int) -> dict[str, float]:
        return {
            name: round((procs.cpu_seconds(pid) - self._start[name]) * 1000 / ops, 3)
            for name, pid in self._pids.items()
        }


async def timed(
    plan: Plan, once: Callable[[int], Awaitable[None]], cpu: CpuMeter
) -> dict[str, Any]:
    """Run ``once(i)`` sequentially: ``warmup`` untimed calls, then ``count`` timed ones."""
    for i in range(plan.warmup):
        await once(-1 - i)
    samples: list[float] = []
    cpu.start()
    for i in range(plan.count):
        t0 = time.perf_counter()
        await once(i)
        samples.append(time.perf_counter() - t0)
    return asdict(Stats.of(samples)) | {"cpuMsPerOp": cpu.per_op_ms(plan.count)}


def _check(reply: dict[str, Any], what: str) -> None:
    if reply.get("completionCode") != "success":
        raise RuntimeError(
            f"{what}: {reply.get('completionCode')}: {reply.get('errorDescription')}"
        )


# -- (a) the floor ---------------------------------------------------------------------


async def floor(plan: Plan) -> dict[str, Any]:
    """Request/response between two aiomqtt processes through mosquitto, no daemon."""
    topic = f"kiosk/v1/{FLOOR_BOARD}/cmd/echo"
    with procs.broker() as broker:
        echo = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "bench.echo",
            str(broker.port),
            topic,
            cwd=procs.REPO,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
        )
        try:
            assert echo.stdout is not None
            line = await asyncio.wait_for(echo.stdout.readline(), 10)
            if line.strip() != b"ready":
                raise RuntimeError(f"echo peer did not start (exit {await echo.wait()})")
            async with connect(broker.port, FLOOR_BOARD, "bench-ui") as ui:

                async def once(_i: int) -> None:
                    _check(await ui.call(topic), "echo")

                cpu = CpuMeter({"echo": echo.pid, "mosquitto": broker.proc.pid})
                return await timed(plan, once, cpu)
        finally:
            echo.terminate()
            await echo.wait()


# -- the daemon session: (b), (c), (e) -------------------------------------------------------


async def retained(ui: UiClient, suffix: str, accept: Callable[[Any], bool]) -> Any:
    """The first message on ``{root}/{suffix}`` whose payload ``accept`` takes."""
    async with ui.subscription(f"{ui.root}/{suffix}") as queue, asyncio.timeout(15):
        while True:
            message = await queue.get()
            if message.payload is not None and accept(message.payload):
                return message.payload


def queued_candidates(description: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    """Quick queued commands of the configured simulators: ``(device, command, params)``.

    ``lights/set`` (no side effect) first, then ``printer/cut`` (a side effect: it also
    goes through the idempotency store).
    """
    lights: list[tuple[str, str, dict[str, Any]]] = []
    printers: list[tuple[str, str, dict[str, Any]]] = []
    for dev in description["devices"]:
        if dev["class"] == "lights" and "set" in dev["commands"]:
            positions: list[str] = dev["capabilities"].get("positions") or ["scanner"]
            position = "scanner" if "scanner" in positions else positions[0]
            lights.append((dev["id"], "set", {"position": position, "mode": "on"}))
        elif dev["class"] == "printer" and "cut" in dev["commands"]:
            printers.append((dev["id"], "cut", {}))
    return [
        c for c in lights + printers if description_command(description, c[0], c[1]).get("queued")
    ]


def description_command(description: dict[str, Any], device: str, command: str) -> dict[str, Any]:
    for dev in description["devices"]:
        if dev["id"] == device:
            info: dict[str, Any] = dev["commands"].get(command, {})
            return info
    return {}


async def daemon_session(plan: Plan, setup: procs.SimSetup, xdg: Path) -> dict[str, Any]:
    """One daemon run: getStatus and queued round trips, paho clients, scan events.

    A side-effect command is then run ``plan.count`` more times with strace counting
    the daemon's fsyncs (:mod:`bench.fsyncs`).
    """
    out: dict[str, Any] = {}
    async with (
        procs.run_daemon(setup, xdg) as daemon,
        connect(daemon.port, BOARD, "bench-ui") as ui,
    ):
        cpu = CpuMeter({"daemon": daemon.pid, "mosquitto": daemon.broker_pid()})
        status = await retained(ui, "status", lambda p: p.get("state") in READY_STATES)
        out["status"] = {"state": status["state"], "reasons": status["reasons"]}
        description = await retained(ui, "description", lambda p: "devices" in p)

        async def get_status(_i: int) -> None:
            _check(await ui.daemon("getStatus"), "getStatus")

        out["getStatus"] = await timed(plan, get_status, cpu)

        out["queued"] = []
        for device, command, params in queued_candidates(description):
            info = description_command(description, device, command)
            entry: dict[str, Any] = {
                "device": device,
                "command": command,
                "params": params,
                "sideEffect": bool(info.get("sideEffect")),
            }

            async def queued(
                _i: int,
                device: str = device,
                command: str = command,
                params: dict[str, Any] = params,
            ) -> None:
                _check(await ui.device(device, command, params), f"{device}/{command}")

            try:
                entry["stats"] = await timed(plan, queued, cpu)
                if entry["sideEffect"]:
                    # Untimed: strace stops the daemon at every system call.
                    entry["fsyncs"] = await fsyncs.count(daemon.pid, plan.count, queued)
            except (RuntimeError, TimeoutError) as exc:
                entry["error"] = str(exc) or type(exc).__name__
                entry["daemonLog"] = daemon.log_tail()
            out["queued"].append(entry)

        for key, nodelay in (("pahoNaive", False), ("pahoNodelay", True)):
            out[key] = await asyncio.to_thread(paho_round_trips, daemon.port, plan, nodelay, cpu)

        scanner = next((d["id"] for d in description["devices"] if d["class"] == "scanner"), None)
        if scanner is not None:
            out["scanEvent"] = await scan_events(ui, scanner, plan, cpu)
        camera = next((d["id"] for d in description["devices"] if d["class"] == "camera"), None)
        if camera is not None:
            out["takePicture"] = await pictures(ui, camera, plan, cpu)
    return out


async def pictures(ui: UiClient, camera: str, plan: Plan, cpu: CpuMeter) -> dict[str, Any]:
    """``takePicture`` round trips (a 720 x 960 face), fewer than the cheap commands."""
    fewer = dataclasses.replace(plan, count=max(10, plan.count // 10), warmup=3)

    async def once(_i: int) -> None:
        _check(await ui.device(camera, "takePicture", {"purpose": "face"}), "takePicture")

    return await timed(fewer, once, cpu)


async def scan_events(ui: UiClient, scanner: str, plan: Plan, cpu: CpuMeter) -> dict[str, Any]:
    """From publishing ``sim/{scanner}/scan`` to receiving the ``scanned`` event reply.

    Continuous mode sends each code to the requester of its ``setMode`` alone, on
    that request's reply topic.
    """
    mode = await ui.start(ui.request_topic("setMode", scanner), {"continuous": True})
    _check(await mode.completion(), "setMode")

    async def once(i: int) -> None:
        text = f"BENCH-{i}"
        request = await ui.start(f"{ui.root}/sim/{scanner}/scan", {"text": text})
        while (await mode.next(5))["data"]["text"] != text:
            pass
        _check(await request.completion(), "sim scan")

    return await timed(plan, once, cpu)


# -- (c) a naive threaded paho client -----------------------------------------------------------


def paho_round_trips(port: int, plan: Plan, nodelay: bool, cpu: CpuMeter) -> dict[str, Any]:
    """getStatus round trips from paho 2.x with its network thread (``loop_start``).

    Without ``nodelay`` the socket keeps its defaults, as most application code does.
    """
    client_id = "bench-paho-nodelay" if nodelay else "bench-paho"
    reply_root = f"kiosk/v1/{BOARD}/reply/{client_id}"
    client = paho.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=paho.MQTTv5)
    connected, subscribed, answered = threading.Event(), threading.Event(), threading.Event()
    expected: list[bytes] = [b""]

    def on_message(_c: paho.Client, _u: Any, message: paho.MQTTMessage) -> None:
        if getattr(message.properties, "CorrelationData", None) == expected[0]:
            answered.set()

    def on_socket_open(_c: paho.Client, _u: Any, sock: Any) -> None:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    client.on_connect = lambda *_a: connected.set()
    client.on_subscribe = lambda *_a: subscribed.set()
    client.on_message = on_message
    if nodelay:
        client.on_socket_open = on_socket_open
    client.connect("127.0.0.1", port)
    client.loop_start()
    try:
        if not connected.wait(10):
            raise RuntimeError("paho did not connect")
        client.subscribe(f"{reply_root}/#", qos=1)
        if not subscribed.wait(10):
            raise RuntimeError("paho did not subscribe")
        encoder = msgspec.msgpack.Encoder()

        def once(i: int) -> None:
            correlation = f"p{i}".encode()
            props = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
            props.ContentType = MSGPACK
            props.ResponseTopic = f"{reply_root}/r"
            props.CorrelationData = correlation
            expected[0] = correlation
            answered.clear()
            client.publish(
                f"kiosk/v1/{BOARD}/cmd/getStatus",
                encoder.encode({"requestId": f"p{i}"}),
                qos=1,
                properties=props,
            )
            if not answered.wait(5):
                raise RuntimeError("paho: no reply within 5 s")

        for i in range(plan.warmup):
            once(-1 - i)
        samples: list[float] = []
        cpu.start()
        for i in range(plan.count):
            t0 = time.perf_counter()
            once(i)
            samples.append(time.perf_counter() - t0)
        return asdict(Stats.of(samples)) | {"cpuMsPerOp": cpu.per_op_ms(plan.count)}
    finally:
        client.disconnect()
        client.loop_stop()


# -- (d) start-up, memory, idle CPU ------------------------------------------------------------


async def _watch_ready(port: int) -> tuple[float, str, bool]:
    """Time at which a subscriber sees status ready/degraded, its state, and whether it was retained."""
    async with (
        connect(port, BOARD, "bench-watch") as ui,
        ui.subscription(f"{ui.root}/status") as queue,
        asyncio.timeout(15),
    ):
        while True:
            message = await queue.get()
            state = message.payload.get("state") if message.payload else None
            if state in READY_STATES:
                return time.perf_counter(), state, message.retain


async def startup(plan: Plan, setup: procs.SimSetup, xdg: Path) -> dict[str, Any]:
    """Start the daemon ``plan.startups`` times; on the last run also read RSS and idle CPU."""
    runs_ms: list[float] = []
    stops_ms: list[float] = []
    states: list[str] = []
    late = 0
    out: dict[str, Any] = {}
    for run in range(plan.startups):
        async with procs.run_daemon(setup, xdg) as daemon:
            seen, state, was_retained = await _watch_ready(daemon.port)
            runs_ms.append(round((seen - daemon.started) * 1000, 1))
            states.append(state)
            late += was_retained
            if run == plan.startups - 1:
                out |= await _footprint(daemon, plan)
            stop_from = time.perf_counter()
        stops_ms.append(round((time.perf_counter() - stop_from) * 1000, 1))
    out["startup"] = {
        "runsMs": runs_ms,
        "medianMs": round(statistics.median(runs_ms), 1),
        "maxMs": max(runs_ms),
        "states": states,
        # A subscriber that connected after ``ready`` got it retained: that run reads high.
        "seenRetained": late,
        "stopMs": stops_ms,
    }
    return out


async def _footprint(daemon: procs.Daemon, plan: Plan) -> dict[str, Any]:
    await asyncio.sleep(plan.settle_s)
    broker_pid = daemon.broker_pid()
    rss = {"daemonMiB": round(procs.rss_kib(daemon.pid) / 1024, 1)}
    if broker_pid is not None:
        rss["mosquittoMiB"] = round(procs.rss_kib(broker_pid) / 1024, 1)
    pids = {"daemon": daemon.pid} | ({"mosquitto": broker_pid} if broker_pid is not None else {})
    return {"rss": rss, "idleCpu": await footprint.idle(pids, plan.idle_s)}


# -- everything ------------------------------------------------------------------------------


async def run_all(plan: Plan, progress: Callable[[str], None]) -> dict[str, Any]:
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="kioskd-bench-") as tmp:
        xdg = Path(tmp)
        setup = procs.sim_setup(xdg)
        results["simulators"] = {"present": setup.devices, "missing": setup.missing}
        progress("(a) broker floor: aiomqtt echo")
        results["floor"] = await floor(plan)
        progress("(b, c, e) daemon round trips, paho clients, scan events")
        results |= await daemon_session(plan, setup, xdg)
        progress("(f) scanner: pty bytes -> scanned reply through the serial driver")
        results["scanPty"] = await scanner.scan_latency(plan.count, plan.warmup)
        progress(f"(d) start-up x{plan.startups}, RSS, idle CPU {plan.idle_s:g} s")
        results |= await startup(plan, setup, xdg)
        progress("(d) production: real drivers, no hardware, no simulator: RSS, idle CPU")
        results["production"] = await footprint.production(plan.settle_s, plan.idle_s)
    progress("(g) slip render; printing and cutting through the escpos driver alone")
    results["slip"] = await slip.measure(min(plan.count, 200), plan.count, plan.warmup)
    progress(
        "(i) a 272 KB picture: TCP (aiomqtt, MQTT.js in Node), the UI server's bridge, Chromium,"
        " mosquitto's websockets"
    )
    results["picture"] = await browser.measure(max(10, plan.count // 25), plan.slow_pictures)
    progress("(j) chip reads through pcscd and vpcd, 10 ms per APDU")
    results["chipRead"] = await card_read.chip_share(max(5, plan.count // 50))
    return results
