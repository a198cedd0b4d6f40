"""The ``serial`` scanner driver over MQTT, against its wire simulator on a socat pty pair.

Bytes are written into the pty exactly as a scanner sends them; faults are the
simulator's (garbage, noise, unplug) or raw bytes written by the test.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import msgspec
import pytest

from daemon.config import Config
from devices.base import DeviceState
from devices.scanner.driver import RECONNECT_MAX_S, ScannerDriver
from devices.scanner.frames import TERMINATORS
from devices.sim.scanner.serial import SerialScannerSimulator
from tests.conftest import Broker, RunningDaemon, make_config, run_daemon
from tests.contract.support import acked, events, failed, ok, start, state
from tests.support import RecordingHost, build
from tests.uiclient import Request, UiClient

DEV = "scanner"
VIETNAMESE = "Hồ sơ số 000.00.12.H29-241123-0001 — Nguyễn Văn Thứ"


def scanner_config(broker: Broker, tmp_path: Path, **settings: Any) -> Config:
    """The sim config (serial driver + serial wire simulator) with scanner settings changed."""
    config = make_config(broker.port, tmp_path)
    devices = tuple(
        msgspec.structs.replace(e, settings=msgspec.structs.replace(e.settings, **settings))
        if e.id == DEV
        else e
        for e in config.devices
    )
    assert next(e for e in devices if e.id == DEV).driver == "serial"
    return config.replace(devices=devices)


@pytest.fixture
def settings() -> dict[str, Any]:
    """Scanner settings for the test (override with indirect parametrization)."""
    return {}


@pytest.fixture
async def daemon(
    broker: Broker, tmp_path: Path, settings: dict[str, Any]
) -> AsyncIterator[RunningDaemon]:
    async with run_daemon(scanner_config(broker, tmp_path, **settings)) as running:
        yield running


@pytest.fixture
def sim(daemon: RunningDaemon) -> SerialScannerSimulator:
    simulator = daemon.app.simulators[DEV]
    assert isinstance(simulator, SerialScannerSimulator)
    return simulator


async def reading(ui: UiClient, timeout_ms: int = 3000) -> Request:
    """Start a read and wait until the scanner is busy with it."""
    read = await acked(await start(ui, DEV, "read", {"timeoutMs": timeout_ms}))
    await state(ui, DEV, lambda s: s["state"] == "busy")
    return read


async def rejections_then_result(read: Request) -> tuple[list[str], dict[str, Any]]:
    replies = await read.all_until_completion(3)
    reasons = [r["data"]["reason"] for r in replies if r["type"] == "event"]
    assert all(r["event"] == "rejected" for r in replies if r["type"] == "event")
    return reasons, ok(replies[-1])


async def test_vietnamese_utf8_payload_arrives_intact(ui: UiClient) -> None:
    read = await reading(ui)
    await ui.sim(DEV, "scan", {"text": VIETNAMESE, "symbology": "qr"})
    assert ok(await read.completion(2)) == {"text": VIETNAMESE, "symbology": "qr"}


async def test_invalid_utf8_is_reported_and_the_read_goes_on(
    ui: UiClient, sim: SerialScannerSimulator
) -> None:
    read = await reading(ui)
    sim.pair.write(b"]Q1Nguy\xe1\xbb\x85n \xff\xfe\r")  # a Latin-1/garbled payload
    sim.pair.write(b"]C0HS-2026-000123\r")
    reasons, result = await rejections_then_result(read)
    assert reasons == ["invalidEncoding"]
    assert result == {"text": "HS-2026-000123", "symbology": "code128"}
    await state(ui, DEV, lambda s: s["state"] == "online")


async def test_garbage_fault_then_the_scanner_works(ui: UiClient) -> None:
    await ui.sim(DEV, "fault", {"kind": "garbage"})
    await state(ui, DEV, lambda s: s["state"] == "hardwareError")
    await ui.sim(DEV, "fault", {"kind": "clear"})
    await state(ui, DEV, lambda s: s["state"] == "online", timeout=3)
    read = await reading(ui)
    await ui.sim(DEV, "scan", {"text": VIETNAMESE})
    reasons, result = await rejections_then_result(read)
    assert reasons == []
    assert result == {"text": VIETNAMESE, "symbology": "qr"}


async def test_partial_frames_split_and_cut_short(
    ui: UiClient, sim: SerialScannerSimulator
) -> None:
    read = await reading(ui)
    frame = ("]Q1" + VIETNAMESE + "\r").encode()
    # A frame cut short (the scanner was unplugged mid-frame or the cable glitched) ...
    sim.pair.write(frame[:20])
    await asyncio.sleep(0.15)
    # ... is dropped; a frame that arrives in pieces closer than gap_ms is assembled,
    # even when a piece ends inside a UTF-8 character.
    for i in range(0, len(frame), 7):
        sim.pair.write(frame[i : i + 7])
        await asyncio.sleep(0.005)
    reasons, result = await rejections_then_result(read)
    assert reasons == ["partial"]
    assert result == {"text": VIETNAMESE, "symbology": "qr"}


@pytest.mark.parametrize(
    "settings",
    [
        {"terminator": "none", "gap_ms": 30, "prefix": "\x02", "suffix": "\x03"},
        {"terminator": "CRLF", "aim": False, "prefix": "SCN:"},
        {"terminator": "LF", "baudrate": 115200, "stopbits": 2},
    ],
    ids=["none-stx-etx", "crlf-prefix", "lf-8n2"],
)
async def test_framing_settings(
    ui: UiClient, sim: SerialScannerSimulator, settings: dict[str, Any]
) -> None:
    read = await reading(ui)
    await ui.sim(DEV, "scan", {"text": VIETNAMESE, "symbology": "datamatrix"})
    want = "datamatrix" if sim.settings.aim else "unknown"
    assert ok(await read.completion(2)) == {"text": VIETNAMESE, "symbology": want}
    if settings.get("prefix"):
        again = await reading(ui)
        # Without the prefix the frame is not a code.
        sim.pair.write(b"HS-1" + TERMINATORS[settings["terminator"]])
        await asyncio.sleep(0.1)
        await ui.sim(DEV, "scan", {"text": "HS-2"})
        reasons, result = await rejections_then_result(again)
        assert reasons == ["framing"]
        assert result["text"] == "HS-2"


async def test_continuous_mode_broadcasts_rejections_without_content(
    ui: UiClient, sim: SerialScannerSimulator
) -> None:
    async with events(ui, DEV) as evt:
        mode = await start(ui, DEV, "setMode", {"continuous": True})
        ok(await mode.completion(2))
        sim.pair.write(b"\xc3\x28secret\r")
        rejected = await evt.next("rejected")
        assert rejected["data"] == {"reason": "invalidEncoding"}
        await ui.sim(DEV, "scan", {"text": VIETNAMESE})
        # The code itself goes to the setMode's requester alone, never broadcast.
        scanned = await mode.next()
        assert (scanned["event"], scanned["data"]["text"]) == ("scanned", VIETNAMESE)
        ok(await ui.device(DEV, "setMode", {"continuous": False}))
        assert "scanned" not in evt.names()


async def test_unplug_goes_offline_and_replug_is_online_within_two_seconds(ui: UiClient) -> None:
    read = await reading(ui, 5000)
    await ui.sim(DEV, "fault", {"kind": "disconnect"})
    failed(await read.completion(2), "deviceNotReady")
    await state(ui, DEV, lambda s: s["state"] == "offline")
    failed(await ui.device(DEV, "read", {"timeoutMs": 500}), "deviceNotReady")
    failed(await ui.call(f"{ui.root}/sim/{DEV}/scan", {"text": "x"}), "deviceNotReady")
    # The rest of the daemon is unaffected.
    ok(await ui.device("lights", "set", {"position": "scanner", "mode": "on"}))
    await asyncio.sleep(1.5)  # unplugged for a while: the looks have backed off to 1 s
    loop = asyncio.get_running_loop()
    replugged = loop.time()
    await ui.sim(DEV, "fault", {"kind": "clear"})
    await state(ui, DEV, lambda s: s["state"] == "online", timeout=3)
    assert loop.time() - replugged < 2.0
    read = await reading(ui)
    await ui.sim(DEV, "scan", {"text": VIETNAMESE})
    assert ok(await read.completion(2))["text"] == VIETNAMESE


async def test_noise_is_a_hardware_error_until_the_line_is_quiet(ui: UiClient) -> None:
    await ui.sim(DEV, "fault", {"kind": "hardwareError"})
    await state(ui, DEV, lambda s: s["state"] == "hardwareError")
    failed(await ui.device(DEV, "read", {"timeoutMs": 500}), "hardwareError")
    status = ok(await ui.daemon("getStatus"))
    assert status["state"] == "degraded"
    await ui.sim(DEV, "fault", {"kind": "clear"})
    # Quiet for noise_window_ms (1 s) -> online again, without a replug.
    await state(ui, DEV, lambda s: s["state"] == "online", timeout=3)
    read = await reading(ui)
    await ui.sim(DEV, "scan", {"text": "HS-after-noise", "symbology": "code128"})
    assert ok(await read.completion(2)) == {"text": "HS-after-noise", "symbology": "code128"}


async def test_a_missing_port_is_looked_for_ever_less_often_and_found_within_a_second(
    tmp_path: Path,
) -> None:
    host = RecordingHost()
    link = tmp_path / "ttyScanner"
    device = build("scanner", "serial", tmp_path, host, port=str(link), reconnect_ms=100)
    assert isinstance(device, ScannerDriver)
    looks: list[float] = []
    serve = device.serve
    loop = asyncio.get_running_loop()

    async def counted() -> None:
        looks.append(loop.time())
        await serve()

    device.serve = counted  # type: ignore[method-assign]
    controller, line = os.openpty()
    task = asyncio.create_task(device.run())
    try:
        await asyncio.sleep(2.0)
        # A fixed 100 ms wait looks 20 times; the doubling ceiling (up to 1 s) about 6,
        # and at least 4 (waits of 0.1, 0.2, 0.4 s at most before the fourth look).
        assert 4 <= len(looks) <= 12, len(looks)
        gaps = [b - a for a, b in itertools.pairwise(looks)]
        assert gaps[0] < 0.5  # a glitch costs reconnect_ms, not the longest wait
        assert max(gaps) < RECONNECT_MAX_S + 0.5
        assert device.state is DeviceState.OFFLINE
        link.symlink_to(os.ttyname(line))  # plugged in
        plugged = loop.time()
        await host.wait_for(lambda: device.state is DeviceState.ONLINE, 3)
        assert loop.time() - plugged < RECONNECT_MAX_S + 0.5
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await device.aclose()
        os.close(controller)
        os.close(line)
