"""The ``hid`` (keyboard wedge) and ``hidpos`` (HID POS) scanner drivers over MQTT.

No ``/dev/uinput`` here: the wire simulators feed the drivers through FIFOs
with evdev ``input_event`` records and HID POS input reports, the bytes the
kernel delivers from ``/dev/input/eventN`` and ``/dev/hidrawN``.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import msgspec
import pytest
from evdev import ecodes

from daemon.config import Config
from devices.registry import resolve
from devices.scanner.frames import Rejected
from devices.scanner.hid import KeyFramer, key_events
from devices.scanner.hidpos import HidPosScannerSettings, ReportAssembler, find_hidraw
from devices.sim.scanner.hid import HidScannerSimulator, type_text
from devices.sim.scanner.hidpos import HidPosScannerSimulator, reports
from tests.conftest import Broker, RunningDaemon, make_config, run_daemon
from tests.contract.support import acked, failed, ok, start, state
from tests.uiclient import Request, UiClient

DEV = "scanner"
VIETNAMESE = "Hồ sơ số 000.00.12.H29-241123-0001 — Nguyễn Văn Thứ"
#: What a US-layout wedge scanner makes of it: every letter it cannot type is gone.
WEDGE_GARBLED = "H s s 000.00.12.H29-241123-0001  Nguyn Vn Th"


def wedge_decode(text: str) -> list[str | Rejected]:
    framer = KeyFramer(0.3, 4096)
    out: list[str | Rejected] = []
    for code, value in key_events(type_text(text)):
        out += framer.key(code, value, 0.0)
    return out


def test_wedge_typing_round_trips_ascii_with_shift() -> None:
    text = "HS-2026/000123 ~!@#$%^&*()_+{}|:\"<>? `-=[]\\;',./ abcXYZ"
    assert wedge_decode(text) == [text]


def test_wedge_mode_garbles_vietnamese() -> None:
    (decoded,) = wedge_decode(VIETNAMESE)
    assert decoded == WEDGE_GARBLED
    assert decoded != VIETNAMESE


def test_key_framer_partial_overlong_and_repeats() -> None:
    framer = KeyFramer(0.3, 4)
    a, enter = ecodes.KEY_A, ecodes.KEY_ENTER
    assert framer.key(a, 1, 0.0) == []
    assert framer.key(a, 2, 0.01) == [], "auto-repeat is not a key press"
    assert framer.key(a, 0, 0.02) == []
    assert framer.expire(0.2) == []
    assert framer.expire(0.31) == [Rejected.PARTIAL]
    for i in range(6):
        framer.key(a, 1, 1.0 + i / 100)
    assert framer.key(enter, 1, 1.1) == [Rejected.OVERLONG]
    assert framer.key(a, 1, 1.2) + framer.key(enter, 1, 1.21) == ["a"]


def test_hidpos_reports_carry_utf8_split_mid_character() -> None:
    settings = HidPosScannerSettings(path="/dev/hidraw0")
    data = ("#" + VIETNAMESE).encode()
    assert len(data) > settings.data_bytes
    stream = reports(data, "]Q1", settings)
    assert len(stream) == 2 * settings.report_bytes
    first = stream[: settings.report_bytes]
    assert first[0] == 2
    assert first[1] == 56
    assert first[2:5] == b"]Q1"
    assert first[63] & 1, "continued"
    with pytest.raises(UnicodeDecodeError):
        first[5:61].decode()  # the split falls inside a character
    assembler = ReportAssembler(settings)
    out = []
    for i in range(0, len(stream), settings.report_bytes):
        out += assembler.report(stream[i : i + settings.report_bytes], i / 1e6)
    assert out == [(data, "qr")]


def test_hidpos_assembler_rejects_and_ignores() -> None:
    settings = HidPosScannerSettings(path="/dev/hidraw0", gap_ms=100)
    assembler = ReportAssembler(settings)
    status = bytes([4]) + bytes(63)
    assert assembler.report(status, 0.0) == [], "other report ids are not scanned data"
    bad = bytearray(reports(b"x", "]Q1", settings))
    bad[1] = 57
    assert assembler.report(bytes(bad), 0.0) == [Rejected.FRAMING]
    cut = reports(b"y" * 60, "]Q1", settings)[:64]
    assert assembler.report(cut, 1.0) == []
    assert assembler.expire(1.05) == []
    assert assembler.expire(1.1) == [Rejected.PARTIAL]
    assert assembler.report(reports(b"", "]Q1", settings), 2.0) == [(b"", "qr")]


def test_find_hidraw_by_vid_pid_and_usage_page(tmp_path: Path) -> None:
    def node(name: str, hid_id: str, descriptor: bytes) -> None:
        device = tmp_path / name / "device"
        device.mkdir(parents=True)
        (device / "uevent").write_text(f"DRIVER=hid-generic\nHID_ID={hid_id}\nHID_NAME=x\n")
        (device / "report_descriptor").write_bytes(descriptor)

    keyboard = bytes([0x05, 0x01, 0x09, 0x06, 0xA1, 0x01])
    pos = bytes([0x05, 0x8C, 0x09, 0x02, 0xA1, 0x01, 0x85, 0x02])
    node("hidraw0", "0003:00000C2E:00000B62", keyboard)  # the same scanner's keyboard interface
    node("hidraw1", "0003:00000C2E:00000B62", pos)
    node("hidraw2", "0003:000005E0:00001200", pos)
    assert find_hidraw("0c2e:0b62", tmp_path) == "/dev/hidraw1"
    assert find_hidraw("05E0:1200", tmp_path) == "/dev/hidraw2"
    with pytest.raises(FileNotFoundError):
        find_hidraw("1234:5678", tmp_path)


def test_settings_need_a_selector() -> None:
    for driver in ("hid", "hidpos"):
        with pytest.raises(msgspec.ValidationError, match="to find the scanner"):
            msgspec.convert({}, resolve("scanner", driver).settings_type)
    with pytest.raises(msgspec.ValidationError, match="unknown encoding"):
        msgspec.convert(
            {"path": "/x", "encoding": "utf-9"}, resolve("scanner", "hid").settings_type
        )


# -- over MQTT, against the wire simulators ----------------------------------------------


def scanner_config(broker: Broker, tmp_path: Path, driver: str, **settings: Any) -> Config:
    config = make_config(broker.port, tmp_path)
    spec = resolve("scanner", driver)
    devices = tuple(
        msgspec.structs.replace(
            e,
            driver=driver,
            simulator=driver,
            settings=msgspec.convert(settings, spec.settings_type),
        )
        if e.id == DEV
        else e
        for e in config.devices
    )
    return config.replace(devices=devices)


DRIVERS = {
    "hid": {"name": "wedge scanner", "aim": True},
    "hidpos": {"vid_pid": "0c2e:0b62"},
}


@pytest.fixture(params=list(DRIVERS))
def driver(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
async def daemon(broker: Broker, tmp_path: Path, driver: str) -> AsyncIterator[RunningDaemon]:
    async with run_daemon(scanner_config(broker, tmp_path, driver, **DRIVERS[driver])) as running:
        yield running


async def reading(ui: UiClient, timeout_ms: int = 3000) -> Request:
    read = await acked(await start(ui, DEV, "read", {"timeoutMs": timeout_ms}))
    await state(ui, DEV, lambda s: s["state"] == "busy")
    return read


async def test_vietnamese_payload(ui: UiClient, driver: str) -> None:
    read = await reading(ui)
    await ui.sim(DEV, "scan", {"text": VIETNAMESE, "symbology": "qr"})
    result = ok(await read.completion(2))
    if driver == "hidpos":
        assert result == {"text": VIETNAMESE, "symbology": "qr"}
    else:
        assert result == {"text": WEDGE_GARBLED, "symbology": "qr"}, "wedge mode garbles it"
    info = next(d for d in ok(await ui.daemon("getCapabilities"))["devices"] if d["id"] == DEV)
    assert info["capabilities"]["unicode"] is (driver == "hidpos")


async def test_garbage_then_a_good_code(ui: UiClient, driver: str) -> None:
    await ui.sim(DEV, "fault", {"kind": "garbage"})
    await state(ui, DEV, lambda s: s["state"] == "hardwareError")
    await ui.sim(DEV, "fault", {"kind": "clear"})
    await state(ui, DEV, lambda s: s["state"] == "online", timeout=3)
    read = await reading(ui)
    await ui.sim(DEV, "scan", {"text": "HS-2026-000123", "symbology": "code128"})
    replies = await read.all_until_completion(3)
    reasons = [r["data"]["reason"] for r in replies if r["type"] == "event"]
    assert reasons == []
    assert ok(replies[-1]) == {"text": "HS-2026-000123", "symbology": "code128"}


async def test_unplug_and_replug(ui: UiClient, daemon: RunningDaemon, driver: str) -> None:
    simulator = daemon.app.simulators[DEV]
    assert isinstance(simulator, HidScannerSimulator | HidPosScannerSimulator)
    read = await reading(ui, 5000)
    await ui.sim(DEV, "fault", {"kind": "disconnect"})
    failed(await read.completion(2), "deviceNotReady")
    await state(ui, DEV, lambda s: s["state"] == "offline")
    assert not simulator.device.path.exists()
    loop = asyncio.get_running_loop()
    replugged = loop.time()
    await ui.sim(DEV, "fault", {"kind": "clear"})
    await state(ui, DEV, lambda s: s["state"] == "online", timeout=3)
    assert loop.time() - replugged < 2.0
    read = await reading(ui)
    await ui.sim(DEV, "scan", {"text": "after replug"})
    assert ok(await read.completion(2))["text"] == "after replug"


async def test_noise_is_a_hardware_error(ui: UiClient) -> None:
    await ui.sim(DEV, "fault", {"kind": "hardwareError"})
    await state(ui, DEV, lambda s: s["state"] == "hardwareError")
    await ui.sim(DEV, "fault", {"kind": "clear"})
    await state(ui, DEV, lambda s: s["state"] == "online", timeout=3)
