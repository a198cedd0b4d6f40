"""Scanner output decoding shared by every scanner driver and their wire simulators.

A scanner delivers a *frame* per code: bytes up to a terminator (serial), keys
up to Enter (HID keyboard wedge) or a run of reports (HID POS).  A frame may
carry a configured prefix and suffix and, when the scanner is programmed to
send it, the AIM symbology identifier (ISO/IEC 15424: ``]`` + code character +
modifier, e.g. ``]Q1`` for a QR code).  This module turns frames into a
:class:`Code` or a :class:`Rejected` reason; it never raises on bad input.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from enum import StrEnum
from typing import Literal

#: Terminator setting values and their bytes; ``none`` ends a frame at an inter-byte gap.
Terminator = Literal["CR", "LF", "CRLF", "none"]
TERMINATORS: dict[str, bytes] = {"CR": b"\r", "LF": b"\n", "CRLF": b"\r\n", "none": b""}


class Rejected(StrEnum):
    """Why a frame was not delivered as a code (the wire value of ``rejected.reason``)."""

    #: The bytes are not valid in the configured encoding (UTF-8 by default).
    ENCODING = "invalidEncoding"
    #: The frame grew past the configured maximum without a terminator.
    OVERLONG = "overlong"
    #: The frame stopped arriving before its terminator (the gap timed out).
    PARTIAL = "partial"
    #: The configured prefix or suffix is missing, or the frame is empty.
    FRAMING = "framing"


@dataclass(frozen=True, slots=True)
class Code:
    """A decoded code: its text and its symbology name (``unknown`` when not sent)."""

    text: str
    symbology: str = "unknown"


# ISO/IEC 15424:2008 table 1 code characters (as `jodal/biip` lists them), plus the AIM
# assignments made since (J DotCode, g Grid Matrix, h Han Xin), mapped to the symbology
# names of ``ScanResult``; docs/scanner.md cites the sources.
_AIM_NAMES: dict[str, str] = {
    "A": "code39",
    "B": "telepen",
    "C": "code128",
    "D": "codeone",
    "E": "ean13",
    "F": "codabar",
    "G": "code93",
    "H": "code11",
    "I": "itf",
    "J": "dotcode",
    "K": "code16k",
    "L": "pdf417",
    "M": "msi",
    "N": "anker",
    "O": "codablock",
    "P": "plessey",
    "Q": "qr",
    "R": "iata2of5",
    "S": "industrial2of5",
    "T": "code49",
    "U": "maxicode",
    "X": "other",
    "Y": "other",
    "Z": "other",
    "c": "channelcode",
    "d": "datamatrix",
    "e": "gs1databar",
    "g": "gridmatrix",
    "h": "hanxin",
    "o": "ocr",
    "p": "posicode",
    "s": "supercode",
    "z": "aztec",
}
#: Modifier characters are ``0-9`` and ``A-Z`` (ISO/IEC 15424: a base-36 option value).
_AIM_MODIFIERS = frozenset("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ")

#: AIM identifier a scanner sends for each symbology name (what the simulators emit).
AIM_IDENTIFIERS: dict[str, str] = {
    "code39": "]A0",
    "code128": "]C0",
    "ean13": "]E0",
    "ean8": "]E4",
    "codabar": "]F0",
    "code93": "]G0",
    "code11": "]H0",
    "itf": "]I0",
    "pdf417": "]L0",
    "msi": "]M0",
    "qr": "]Q1",
    "maxicode": "]U0",
    "other": "]X0",
    "datamatrix": "]d1",
    "gs1databar": "]e0",
    "aztec": "]z0",
}


def aim_symbology(identifier: str) -> str | None:
    """The symbology name of a 3-character AIM identifier, or None if it is not one.

    ``]E4`` is EAN-8; every other ``]E`` modifier is EAN-13/UPC (UPC-A is sent
    as EAN-13 with a leading zero).
    """
    if len(identifier) != 3 or identifier[0] != "]":  # noqa: PLR2004 - ']', code, modifier
        return None
    if identifier[2] not in _AIM_MODIFIERS:
        return None
    if identifier[1:] == "E4":
        return "ean8"
    code = identifier[1]
    if code in _AIM_NAMES:
        return _AIM_NAMES[code]
    # A code character the registry assigned after this table: still an identifier.
    return "other" if code.isascii() and code.isalpha() else None


@dataclass(frozen=True, slots=True)
class TextFormat:
    """What wraps the code text in a frame.

    Attributes:
        prefix: text the scanner sends before the code (removed; required when set).
        suffix: text the scanner sends after the code (removed; required when set).
        aim: the scanner sends an AIM identifier after the prefix.
        encoding: how bytes become text (``utf-8``).

    """

    prefix: str = ""
    suffix: str = ""
    aim: bool = False
    encoding: str = "utf-8"


def parse_text(text: str, fmt: TextFormat, symbology: str | None = None) -> Code | Rejected:
    """Strip prefix, suffix and AIM identifier from a frame's text.

    ``symbology`` is one the transport already knows (HID POS reports carry
    it); an in-band AIM identifier is still removed when ``fmt.aim`` is set.
    A frame without a valid identifier keeps all its text, symbology ``unknown``.
    """
    if fmt.prefix:
        if not text.startswith(fmt.prefix):
            return Rejected.FRAMING
        text = text[len(fmt.prefix) :]
    if fmt.suffix:
        if not text.endswith(fmt.suffix):
            return Rejected.FRAMING
        text = text[: -len(fmt.suffix)]
    if fmt.aim:
        name = aim_symbology(text[:3])
        if name is not None:
            text = text[3:]
            symbology = symbology or name
    if not text:
        return Rejected.FRAMING
    return Code(text, symbology or "unknown")


def decode_frame(raw: bytes, fmt: TextFormat, symbology: str | None = None) -> Code | Rejected:
    """Decode a frame's bytes (strictly: one invalid byte rejects it) and parse the text."""
    try:
        text = raw.decode(fmt.encoding)
    except UnicodeDecodeError:
        return Rejected.ENCODING
    return parse_text(text, fmt, symbology)


class ByteFramer:
    """Splits a serial byte stream into frames.

    With a terminator, a frame ends at it; bytes that stop arriving for
    ``gap_s`` before their terminator are dropped as :attr:`Rejected.PARTIAL`
    (the next frame starts clean).  Without one (``none``), a gap of ``gap_s``
    ends the frame.  A frame longer than ``max_bytes`` is dropped as
    :attr:`Rejected.OVERLONG`, and so is the rest of it up to its end.

    Args:
        terminator: a key of :data:`TERMINATORS`.
        gap_s: inter-byte gap, in seconds, that ends or abandons a frame.
        max_bytes: the longest frame accepted.

    """

    def __init__(self, terminator: str, gap_s: float, max_bytes: int) -> None:
        self.terminator = TERMINATORS[terminator]
        self.gap_s = gap_s
        self.max_bytes = max_bytes
        self._buffer = bytearray()
        self._skipping = False
        self._last = 0.0

    def feed(self, data: bytes, now: float) -> list[bytes | Rejected]:
        """Add bytes received at ``now`` (loop time, s); return the frames they complete."""
        out = self.expire(now)
        self._last = now
        self._buffer += data
        if self.terminator:
            while (end := self._buffer.find(self.terminator)) >= 0:
                frame = bytes(self._buffer[:end])
                del self._buffer[: end + len(self.terminator)]
                if self._skipping:
                    self._skipping = False
                elif len(frame) > self.max_bytes:
                    out.append(Rejected.OVERLONG)
                else:
                    out.append(frame)
        if len(self._buffer) > self.max_bytes:
            if not self._skipping:
                out.append(Rejected.OVERLONG)
            self._skipping = True
            keep = len(self.terminator) - 1  # a terminator may straddle two reads
            del self._buffer[: len(self._buffer) - keep]
        return out

    def deadline(self) -> float | None:
        """Loop time at which :meth:`expire` has something to do, or None."""
        if self._buffer or self._skipping:
            return self._last + self.gap_s
        return None

    def expire(self, now: float) -> list[bytes | Rejected]:
        """End or abandon a frame whose bytes stopped ``gap_s`` ago."""
        deadline = self.deadline()
        if deadline is None or now < deadline:
            return []
        frame = bytes(self._buffer)
        self._buffer.clear()
        skipping, self._skipping = self._skipping, False
        if skipping:
            return []
        if self.terminator:
            return [Rejected.PARTIAL]
        return [frame]


class NoiseMonitor:
    """Tells a bad line (wrong baud rate, a damaged cable) from a single bad code.

    ``limit`` rejected frames within ``window_s`` seconds make the line noisy;
    it is quiet again once ``window_s`` passes without a rejection.
    """

    def __init__(self, limit: int, window_s: float) -> None:
        self.limit = limit
        self.window_s = window_s
        self._times: deque[float] = deque(maxlen=limit)

    def rejected(self, now: float) -> bool:
        """Record a rejected frame at ``now``; True if the line is now noisy."""
        self._times.append(now)
        return self.noisy(now)

    def noisy(self, now: float) -> bool:
        """True while ``limit`` rejections happened within the last ``window_s``."""
        return len(self._times) == self.limit and now - self._times[0] <= self.window_s

    def quiet_at(self) -> float:
        """Loop time after which, without new rejections, the line counts as quiet."""
        return (self._times[-1] if self._times else 0.0) + self.window_s

    def clear(self) -> None:
        """Forget past rejections (a good frame arrived)."""
        self._times.clear()
