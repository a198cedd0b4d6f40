"""Scanner frame decoding (devices/scanner/frames.py) and the serial transport over a real pty pair."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from devices.errors import Offline, Timeout
from devices.scanner.frames import (
    AIM_IDENTIFIERS,
    ByteFramer,
    Code,
    NoiseMonitor,
    Rejected,
    TextFormat,
    aim_symbology,
    decode_frame,
    parse_text,
)
from devices.sim.support.pty import PtyLine
from devices.transports.serial import LineSettings, SerialPort

VIETNAMESE = "Hồ sơ số 000.00.12.H29-241123-0001 — Nguyễn Văn Thứ"


def test_aim_identifiers_round_trip() -> None:
    for name, identifier in AIM_IDENTIFIERS.items():
        assert aim_symbology(identifier) == name
    assert aim_symbology("]E0") == "ean13"
    assert aim_symbology("]E4") == "ean8"
    assert aim_symbology("]?0") is None
    assert aim_symbology("HS-") is None
    assert aim_symbology("]Q") is None


def test_parse_text_strips_prefix_aim_and_suffix() -> None:
    fmt = TextFormat(prefix="\x02", suffix="\x03", aim=True)
    assert parse_text("\x02]Q1" + VIETNAMESE + "\x03", fmt) == Code(VIETNAMESE, "qr")
    assert parse_text("\x02]C0HS-1\x03", fmt) == Code("HS-1", "code128")
    # No identifier: the text is kept whole.
    assert parse_text("\x02HS-1\x03", fmt) == Code("HS-1", "unknown")
    # Prefix or suffix missing, or nothing left: not a code.
    assert parse_text("HS-1\x03", fmt) is Rejected.FRAMING
    assert parse_text("\x02HS-1", fmt) is Rejected.FRAMING
    assert parse_text("\x02]Q1\x03", fmt) is Rejected.FRAMING
    # Without aim, an identifier-looking start is data.
    assert parse_text("]Q1x", TextFormat()) == Code("]Q1x", "unknown")
    # A transport that knows the symbology (HID POS) wins over the text.
    assert parse_text("]Q1x", TextFormat(aim=True), "datamatrix") == Code("x", "datamatrix")


def test_decode_frame_is_strict() -> None:
    fmt = TextFormat()
    assert decode_frame(VIETNAMESE.encode(), fmt) == Code(VIETNAMESE)
    assert decode_frame(b"\xff\xfeHS", fmt) is Rejected.ENCODING
    assert decode_frame(VIETNAMESE.encode()[:-1], fmt) is Rejected.ENCODING
    assert decode_frame(VIETNAMESE.encode("utf-16"), TextFormat(encoding="utf-16")) == Code(
        VIETNAMESE
    )


@given(st.binary(max_size=300), st.sampled_from(["CR", "LF", "CRLF", "none"]))
def test_framer_and_decoder_never_raise(data: bytes, terminator: str) -> None:
    framer = ByteFramer(terminator, 0.05, 64)
    out = framer.feed(data, 0.0) + framer.expire(1.0)
    for item in out:
        if not isinstance(item, Rejected):
            assert isinstance(decode_frame(item, TextFormat(aim=True)), Code | Rejected)


def test_framer_splits_at_terminators_across_reads() -> None:
    framer = ByteFramer("CRLF", 0.05, 100)
    assert framer.feed(b"one\r", 0.0) == []
    assert framer.feed(b"\ntwo\r\nthr", 0.01) == [b"one", b"two"]
    assert framer.feed(b"ee\r\n", 0.02) == [b"three"]
    assert framer.deadline() is None


def test_framer_drops_a_partial_frame_after_the_gap() -> None:
    framer = ByteFramer("CR", 0.05, 100)
    assert framer.feed(b"HS-12", 0.0) == []
    assert framer.deadline() == pytest.approx(0.05)
    assert framer.expire(0.04) == []
    assert framer.expire(0.05) == [Rejected.PARTIAL]
    # A frame cut short is dropped before the next one starts, even without expire().
    framer.feed(b"HS-", 1.0)
    assert framer.feed(b"HS-34\r", 1.2) == [Rejected.PARTIAL, b"HS-34"]


def test_framer_without_terminator_ends_frames_at_gaps() -> None:
    framer = ByteFramer("none", 0.05, 100)
    assert framer.feed(b"HS-", 0.0) == []
    assert framer.feed(b"12", 0.03) == []
    assert framer.expire(0.07) == []
    assert framer.expire(0.08) == [b"HS-12"]


def test_framer_rejects_overlong_frames_once_and_resynchronises() -> None:
    framer = ByteFramer("CR", 0.05, 10)
    out = framer.feed(b"x" * 25, 0.0)
    assert out == [Rejected.OVERLONG]
    assert framer.feed(b"y" * 25, 0.01) == []
    assert framer.feed(b"zz\rHS-1\r", 0.02) == [b"HS-1"]
    # Overlong and terminated in one read.
    assert framer.feed(b"w" * 11 + b"\r", 0.03) == [Rejected.OVERLONG]


def test_noise_monitor() -> None:
    noise = NoiseMonitor(3, 1.0)
    assert not noise.rejected(0.0)
    assert not noise.rejected(0.5)
    assert noise.rejected(0.9)
    assert noise.quiet_at() == pytest.approx(1.9)
    assert not noise.noisy(1.95)
    noise.clear()
    assert not noise.rejected(3.0)
    assert not noise.rejected(3.6)
    assert not noise.rejected(4.2), "three rejections spread over more than the window"


async def test_serial_port_reads_writes_and_sees_the_port_vanish(tmp_path: Path) -> None:
    pair = PtyLine(tmp_path / "driver")
    await pair.start()
    try:
        port = await SerialPort.open(str(pair.driver_link), timeout_s=2)
        async with port:
            with pytest.raises(Timeout):
                await port.read(timeout_s=0.05)
            pair.write(VIETNAMESE.encode())
            assert await port.read_exactly(3, timeout_s=2) == VIETNAMESE.encode()[:3]
            rest = VIETNAMESE.encode()[3:]
            got = b""
            while len(got) < len(rest):
                got += await port.read(timeout_s=2)
            assert got == rest
            with pytest.raises(Timeout):
                await port.read_exactly(4, timeout_s=0.05)
            await pair.stop()
            with pytest.raises(Offline):
                await port.read(timeout_s=2)
            with pytest.raises(Offline):
                await port.write(b"x", timeout_s=1)
        assert port.closed
    finally:
        await pair.stop()
    with pytest.raises(Offline, match="cannot be opened"):
        await SerialPort.open(str(pair.driver_link), timeout_s=1)


async def test_serial_port_write_reaches_the_far_end(tmp_path: Path) -> None:
    pair = PtyLine(tmp_path / "driver")
    await pair.start()
    try:
        async with await SerialPort.open(str(pair.driver_link), timeout_s=2) as port:
            await port.write(b"\x16T\r", timeout_s=1)
            got = b""
            while len(got) < 3:
                got += await pair.read(timeout_s=2)
            assert got == b"\x16T\r"
            pair.write(b"a")
            assert await port.read(timeout_s=1) == b"a"
            assert pair.pending() == 0, "the driver has everything the simulator wrote"
    finally:
        await pair.stop()


async def test_refused_line_settings_leave_the_port_free(tmp_path: Path) -> None:
    pair = PtyLine(tmp_path / "driver")
    await pair.start()
    try:
        # A pty refuses parity: the open fails cleanly and releases its exclusive lock.
        with pytest.raises(Offline):
            await SerialPort.open(str(pair.driver_link), LineSettings(parity="E"), timeout_s=2)
        async with await SerialPort.open(str(pair.driver_link), timeout_s=2) as port:
            assert not port.closed
    finally:
        await pair.stop()
