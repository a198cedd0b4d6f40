"""Driver ``serial``: a scanner on a serial port (USB-CDC ``/dev/ttyACM*`` or RS-232).

The scanner sends each code as one frame: ``[prefix][AIM id]text[suffix]`` and a
terminator (CR, LF, CRLF), or nothing, in which case an inter-byte gap of
``gap_ms`` ends the frame.  Bytes are decoded strictly (UTF-8 by default), so a
Vietnamese QR payload arrives intact and a frame with invalid bytes is rejected
(``rejected`` event), never delivered garbled.  Frames that stop before their
terminator are dropped after ``gap_ms``; an unplugged port makes the device
``offline`` until it is back.  See docs/scanner.md for wiring and scanner setup.
"""

from __future__ import annotations

import asyncio
from typing import Annotated, ClassVar, Literal

import msgspec

from devices.errors import Timeout
from devices.transports.serial import LineSettings, SerialPort

from .driver import ScannerDriver, ScannerSettings
from .frames import ByteFramer, Rejected, Terminator, decode_frame


class SerialScannerSettings(ScannerSettings, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """Settings of the ``serial`` scanner driver (and those of :class:`ScannerSettings`).

    Attributes:
        port: the tty; prefer a stable ``/dev/serial/by-id/...`` link.
        baudrate: bits per second (USB-CDC scanners ignore it).
        bytesize: data bits.
        parity: ``N``, ``E``, ``O``, ``M`` or ``S``.
        stopbits: 1 or 2.
        rtscts: RTS/CTS hardware flow control.
        terminator: ``CR``, ``LF``, ``CRLF``, or ``none`` (frames end at a gap).
        gap_ms: silence that ends a frame (``none``) or abandons a partial one, in ms.
        max_frame_bytes: longer frames are rejected (``overlong``).
        open_timeout_ms: deadline for opening the port, in ms.

    """

    port: str = "/dev/ttyACM0"
    baudrate: Annotated[int, msgspec.Meta(ge=300, le=4_000_000)] = 9600
    bytesize: Literal[7, 8] = 8
    parity: Literal["N", "E", "O", "M", "S"] = "N"
    stopbits: Literal[1, 2] = 1
    rtscts: bool = False
    terminator: Terminator = "CR"
    gap_ms: Annotated[int, msgspec.Meta(ge=5, le=5000)] = 50
    max_frame_bytes: Annotated[int, msgspec.Meta(ge=16, le=65_536)] = 4096
    open_timeout_ms: Annotated[int, msgspec.Meta(ge=100, le=30_000)] = 2000


class SerialScanner(ScannerDriver[SerialScannerSettings]):
    """A scanner whose codes arrive as framed bytes on a tty."""

    Settings = SerialScannerSettings
    settings: SerialScannerSettings

    unicode: ClassVar[bool] = True

    async def serve(self) -> None:
        """Open the port and turn its byte stream into codes until it vanishes.

        Raises:
            Offline: the port is missing, did not open within ``open_timeout_ms``,
                or vanished.

        """
        s = self.settings
        line = LineSettings(s.baudrate, s.bytesize, s.parity, s.stopbits, s.rtscts)
        loop = asyncio.get_running_loop()
        framer = ByteFramer(s.terminator, s.gap_ms / 1000, s.max_frame_bytes)
        async with await SerialPort.open(s.port, line, timeout_s=s.open_timeout_ms / 1000) as port:
            self.opened()
            while True:
                deadline = framer.deadline()
                wait = None if deadline is None else max(0.0, deadline - loop.time())
                try:
                    data = await port.read(timeout_s=wait)
                except Timeout:
                    frames = framer.expire(loop.time())
                else:
                    frames = framer.feed(data, loop.time())
                for frame in frames:
                    if isinstance(frame, Rejected):
                        self.deliver(frame)
                    else:
                        self.deliver(decode_frame(frame, self.text_format))
