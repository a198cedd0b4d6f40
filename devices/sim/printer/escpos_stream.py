"""An incremental ESC/POS byte-stream parser: what a printer's firmware reads.

:class:`EscposParser` takes bytes as they arrive (any split) and yields the
operations a slip printer acts on: initialise, raster images (``GS v 0``,
``GS ( L`` graphics, ``ESC *`` column images, i.e. every form python-escpos
emits), text, paper feed, cut, and the status requests (``DLE EOT n``
real-time, ``GS r n`` in-order).  Other commands of known length are skipped;
an unknown ``ESC``/``GS`` command is counted and its parameters read as text,
as a printer would.  A raster is decoded to a mode ``"1"`` image, black = 0.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from PIL import Image

ESC, GS, DLE, FS, LF = 0x1B, 0x1D, 0x10, 0x1C, 0x0A
EOT, DC4 = 0x04, 0x14
_CUT_WITH_FEED = (65, 66)  # GS V 65/66 n: feed n, then cut (66: partial)
_PARTIAL_CUTS = (1, 49, 66)
_INVERT = bytes(255 - b for b in range(256))

#: Parameter bytes of fixed-length commands after ``ESC x`` / ``GS x`` / ``FS x``.
_ESC_ARGS = {
    b"@"[0]: 0, b"d"[0]: 1, b"J"[0]: 1, b"a"[0]: 1, b"E"[0]: 1, b"!"[0]: 1, b"t"[0]: 1,
    b"M"[0]: 1, b"-"[0]: 1, b"{"[0]: 1, b"2"[0]: 0, b"3"[0]: 1, b"G"[0]: 1, b"R"[0]: 1,
    b"V"[0]: 1, b"c"[0]: 2, b"p"[0]: 3, b" "[0]: 1, b"$"[0]: 2, b"U"[0]: 1, b"e"[0]: 1,
    b"i"[0]: 0, b"m"[0]: 0, b"%"[0]: 1, b"="[0]: 1, b"L"[0]: 0, b"S"[0]: 0, b"T"[0]: 1,
    b"r"[0]: 1, b"\\"[0]: 2,
}  # fmt: skip
_GS_ARGS = {
    b"!"[0]: 1, b"B"[0]: 1, b"H"[0]: 1, b"h"[0]: 1, b"w"[0]: 1, b"f"[0]: 1, b"L"[0]: 2,
    b"W"[0]: 2, b"a"[0]: 1, b"b"[0]: 1, b"I"[0]: 1, b"P"[0]: 2, b"/"[0]: 1, b"$"[0]: 2,
    b"\\"[0]: 2, b"T"[0]: 1, b"^"[0]: 3,
}  # fmt: skip
_FS_ARGS = {b"."[0]: 0, b"&"[0]: 0, b"C"[0]: 1, b"!"[0]: 1, b"-"[0]: 1}


@dataclass(frozen=True, slots=True)
class Init:
    """``ESC @``: reset modes and clear the print buffer."""


@dataclass(frozen=True, slots=True)
class Raster:
    """A raster image printed at the current position (mode ``"1"``, black = 0)."""

    image: Image.Image


@dataclass(frozen=True, slots=True)
class Text:
    """Printable bytes (the simulator does not draw text)."""

    data: bytes


@dataclass(frozen=True, slots=True)
class Feed:
    """Paper fed by ``LF``, ``ESC d n`` or ``ESC J n`` (``lines`` or ``dots``)."""

    lines: int = 0
    dots: int = 0


@dataclass(frozen=True, slots=True)
class Cut:
    """``GS V``: cut (after feeding ``feed`` dots, for the ``GS V 65/66 n`` forms)."""

    partial: bool
    feed: int = 0


@dataclass(frozen=True, slots=True)
class StatusRequest:
    """``DLE EOT n``: real-time status request, answered even while the printer is stopped."""

    n: int


@dataclass(frozen=True, slots=True)
class PrintedRequest:
    """``GS r n``: status request processed in order, after everything before it."""

    n: int


@dataclass(frozen=True, slots=True)
class Unknown:
    """A command this parser does not know (its bytes follow as text)."""

    prefix: bytes


Op = Init | Raster | Text | Feed | Cut | StatusRequest | PrintedRequest | Unknown


def _raster_image(
    width_bytes: int, height: int, data: bytes, scale_x: int, scale_y: int
) -> Image.Image:
    """ESC/POS raster bits (1 = black, MSB = leftmost dot) to a mode "1" image, black = 0."""
    image = Image.frombytes("1", (width_bytes * 8, height), data.translate(_INVERT))
    if scale_x != 1 or scale_y != 1:
        size = (image.width * scale_x, image.height * scale_y)
        image = image.resize(size, Image.Resampling.NEAREST)
    return image


class _Incomplete(Exception):
    """More bytes are needed to finish the command at the start of the buffer."""


class EscposParser:
    """Turns an ESC/POS byte stream into :data:`Op` values; feed it bytes in any split."""

    def __init__(self) -> None:
        self._buffer = bytearray()
        self._graphics: Image.Image | None = None  # GS ( L stored, not yet printed
        self._column_line: list[Image.Image] = []  # ESC * strips of the current line

    def feed(self, data: bytes) -> Iterator[Op]:
        """Add ``data`` and yield every operation it completes, in order."""
        self._buffer += data
        while self._buffer:
            try:
                used, ops = self._next()
            except _Incomplete:
                return
            del self._buffer[:used]
            yield from ops

    # ------------------------------------------------------------ one command

    def _need(self, count: int) -> None:
        if len(self._buffer) < count:
            raise _Incomplete

    def _next(self) -> tuple[int, list[Op]]:  # noqa: PLR0911 - one return per command family
        buf = self._buffer
        first = buf[0]
        if first == DLE:
            return self._dle()
        if first == ESC:
            return self._esc()
        if first == GS:
            return self._gs()
        if first == FS:
            self._need(2)
            args = _FS_ARGS.get(buf[1])
            if args is None:
                return 2, [Unknown(bytes(buf[:2]))]
            self._need(2 + args)
            return 2 + args, []
        if first == LF:
            return 1, [*self._end_column_line(), Feed(lines=1)]
        end = 1
        while end < len(buf) and buf[end] not in (DLE, ESC, GS, FS, LF):
            end += 1
        return end, [Text(bytes(buf[:end]))]

    def _dle(self) -> tuple[int, list[Op]]:
        buf = self._buffer
        self._need(3)
        if buf[1] == EOT:  # DLE EOT n
            return 3, [StatusRequest(buf[2])]
        if buf[1] == DC4:  # DLE DC4 fn ...: real-time pulse, power off, clear buffers
            fn = buf[2]
            length = {1: 5, 2: 5, 8: 10}.get(fn, 3)
            self._need(length)
            return length, []
        return 3, []  # DLE ENQ n and other real-time requests: no answer needed here

    def _esc(self) -> tuple[int, list[Op]]:
        buf = self._buffer
        self._need(2)
        command = buf[1]
        if command == b"@"[0]:
            self._graphics = None
            self._column_line = []
            return 2, [Init()]
        if command == b"*"[0]:
            return self._column_image()
        args = _ESC_ARGS.get(command)
        if args is None:
            return 2, [Unknown(bytes(buf[:2]))]
        self._need(2 + args)
        if command == b"d"[0]:
            return 3, [*self._end_column_line(), Feed(lines=buf[2])]
        if command == b"J"[0]:
            return 3, [*self._end_column_line(), Feed(dots=buf[2])]
        return 2 + args, []

    def _gs(self) -> tuple[int, list[Op]]:  # noqa: PLR0911 - one return per command family
        buf = self._buffer
        self._need(2)
        command = buf[1]
        if command == b"v"[0]:
            return self._raster()
        if command == b"("[0]:
            return self._gs_paren()
        if command == b"V"[0]:
            self._need(3)
            mode = buf[2]
            if mode in _CUT_WITH_FEED:
                self._need(4)
                return 4, [Cut(partial=mode in _PARTIAL_CUTS, feed=buf[3])]
            return 3, [Cut(partial=mode in _PARTIAL_CUTS)]
        if command == b"r"[0]:
            self._need(3)
            return 3, [PrintedRequest(buf[2])]
        if command == b"k"[0]:
            return self._barcode()
        args = _GS_ARGS.get(command)
        if args is None:
            return 2, [Unknown(bytes(buf[:2]))]
        self._need(2 + args)
        return 2 + args, []

    # ------------------------------------------------------------ images

    def _raster(self) -> tuple[int, list[Op]]:
        """``GS v 0 m xL xH yL yH d1..dk``."""
        buf = self._buffer
        self._need(8)
        mode = buf[3] & 0x03
        width_bytes = buf[4] | buf[5] << 8
        height = buf[6] | buf[7] << 8
        size = width_bytes * height
        self._need(8 + size)
        data = bytes(buf[8 : 8 + size])
        scale_x, scale_y = 1 + (mode & 1), 1 + (mode >> 1)
        return 8 + size, [Raster(_raster_image(width_bytes, height, data, scale_x, scale_y))]

    def _gs_paren(self) -> tuple[int, list[Op]]:
        """``GS ( X pL pH ...``: every function has a 2-byte length; ``GS ( L`` is graphics."""
        buf = self._buffer
        self._need(5)
        length = buf[3] | buf[4] << 8
        self._need(5 + length)
        body = bytes(buf[5 : 5 + length])
        if buf[2] != b"L"[0] or len(body) < 2:  # noqa: PLR2004 - m and fn
            return 5 + length, []
        fn = body[1]
        ops: list[Op] = []
        if fn in (0x70, 112) and len(body) >= 10:  # noqa: PLR2004 - store raster: header is 10 bytes
            # m fn a bx by c xL xH yL yH d1..dk
            scale_x, scale_y = body[3], body[4]
            width = body[6] | body[7] << 8
            height = body[8] | body[9] << 8
            width_bytes = (width + 7) // 8
            data = body[10 : 10 + width_bytes * height]
            if len(data) == width_bytes * height:
                image = _raster_image(width_bytes, height, data, scale_x, scale_y)
                self._graphics = image.crop((0, 0, width * scale_x, image.height))
        elif fn in (0x32, 50) and self._graphics is not None:  # print the stored graphics
            ops.append(Raster(self._graphics))
            self._graphics = None
        return 5 + length, ops

    def _column_image(self) -> tuple[int, list[Op]]:
        """``ESC * m nL nH d1..dk``: one line of 8 (m = 0, 1) or 24 (m = 32, 33) dots."""
        buf = self._buffer
        self._need(5)
        mode = buf[2]
        width = buf[3] | buf[4] << 8
        rows = 24 if mode in (32, 33) else 8
        size = width * rows // 8
        self._need(5 + size)
        data = bytes(buf[5 : 5 + size]).translate(_INVERT)
        # Each column is rows/8 bytes, top dot in the most significant bit.
        strip = Image.frombytes("1", (rows, width), data).transpose(Image.Transpose.TRANSPOSE)
        self._column_line.append(strip)
        return 5 + size, []

    def _end_column_line(self) -> list[Op]:
        if not self._column_line:
            return []
        strips, self._column_line = self._column_line, []
        line = Image.new("1", (sum(s.width for s in strips), max(s.height for s in strips)), 1)
        x = 0
        for strip in strips:
            line.paste(strip, (x, 0))
            x += strip.width
        return [Raster(line)]

    def _barcode(self) -> tuple[int, list[Op]]:
        """``GS k m``: NUL-terminated data (m <= 6) or ``n`` data bytes (m >= 65)."""
        buf = self._buffer
        self._need(3)
        if buf[2] <= 6:  # noqa: PLR2004 - the two forms of GS k
            end = buf.find(b"\x00", 3)
            if end < 0:
                raise _Incomplete
            return end + 1, []
        self._need(4)
        self._need(4 + buf[3])
        return 4 + buf[3], []
