r"""An async serial port over pyserial-asyncio-fast, for any driver that speaks bytes on a tty.

:class:`SerialPort` opens a port with a deadline, reads and writes with
explicit timeouts, and turns the port vanishing (USB unplug, a pty whose far
end closed: the tty read fails with ``EIO``) into :class:`~devices.errors.Offline`
on the next read or write.  It knows no protocol: a scanner frames lines, a
ccTalk acceptor reads exact counts.

Everything runs on the event loop: pyserial-asyncio-fast watches the fd with
``add_reader``; only opening and closing the port go through a worker thread
(``open()`` may block in the kernel while a USB device settles), bounded by a
timeout.

Example::

    line = LineSettings(baudrate=9600)
    async with await SerialPort.open("/dev/ttyACM0", line, timeout_s=2) as port:
        await port.write(b"\x16T\r", timeout_s=1)
        chunk = await port.read(timeout_s=5)
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import termios
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Literal, Self

import serial
import serial_asyncio_fast

from devices.errors import Offline, Timeout

log = logging.getLogger(__name__)

Parity = Literal["N", "E", "O", "M", "S"]


@dataclass(frozen=True, slots=True)
class LineSettings:
    """How bytes are put on the line.

    Attributes:
        baudrate: bits per second (ignored by USB-CDC devices and ptys, which
            accept any value).
        bytesize: data bits, 5 to 8.
        parity: ``N`` none, ``E`` even, ``O`` odd, ``M`` mark, ``S`` space.
        stopbits: 1, 1.5 or 2.
        rtscts: hardware flow control.

    """

    baudrate: int = 9600
    bytesize: int = 8
    parity: Parity = "N"
    stopbits: float = 1
    rtscts: bool = False


class _Receiver(asyncio.Protocol):
    """Collects what the port delivers and remembers why it closed."""

    def __init__(self) -> None:
        self.buffer = bytearray()
        self.lost: Exception | None = None
        self.closed = False
        self.changed = asyncio.Event()

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        self.changed.set()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.lost = exc
        self.changed.set()


def _close_late(opening: asyncio.Future[serial.Serial]) -> None:
    if not opening.cancelled() and opening.exception() is None:
        opening.result().close()


class SerialPort:
    """One open serial port; create it with :meth:`open`, use it as an async context manager.

    Reads return what has arrived; a read that finds the port gone raises
    :class:`Offline` (the data that arrived before the loss is still returned
    first).  Not safe for two concurrent readers.
    """

    def __init__(
        self, path: str, transport: serial_asyncio_fast.SerialTransport, receiver: _Receiver
    ) -> None:
        self.path = path
        self._transport = transport
        self._receiver = receiver

    @classmethod
    async def open(
        cls,
        path: str,
        line: LineSettings | None = None,
        *,
        timeout_s: float,
        exclusive: bool = True,
        flush_input: bool = True,
    ) -> Self:
        """Open ``path`` (``/dev/ttyUSB0``, a ``/dev/serial/by-id`` link, a pty link).

        Args:
            path: the device node or a symlink to it.
            line: baud rate and framing; 9600 8N1 by default.
            timeout_s: deadline for opening, in seconds.
            exclusive: take the port with ``TIOCEXCL`` so no other process opens it.
            flush_input: discard what the kernel buffered before the port was opened.

        Raises:
            Offline: the port does not exist, cannot be opened, or did not open in time.

        """
        # A missing node fails at once, without a thread: drivers look for a missing port
        # every 100 ms, and the thread hop made that 0.6 % of a core (docs/performance.md).
        # A stat of a /dev node (devtmpfs, in memory) does not block.
        if not os.path.exists(path):  # noqa: ASYNC240, PTH110 - a /dev stat, see above
            raise Offline(f"serial port {path} cannot be opened: it does not exist")
        line = line or LineSettings()
        receiver = _Receiver()
        opener = functools.partial(
            serial.Serial,
            path,
            baudrate=line.baudrate,
            bytesize=line.bytesize,
            parity=line.parity,
            stopbits=line.stopbits,
            rtscts=line.rtscts,
            exclusive=exclusive,
        )
        # A worker thread, bounded by the timeout: the kernel may hold open() while a USB
        # device settles.  If the timeout wins, the thread's port is closed when it returns.
        opening = asyncio.ensure_future(asyncio.to_thread(opener))
        try:
            async with asyncio.timeout(timeout_s):
                port = await asyncio.shield(opening)
        except TimeoutError:
            opening.add_done_callback(_close_late)
            raise Offline(f"serial port {path} did not open within {timeout_s:g} s") from None
        except (OSError, termios.error, serial.SerialException, ValueError) as exc:
            raise Offline(f"serial port {path} cannot be opened: {exc}") from None
        try:
            if flush_input:
                port.reset_input_buffer()
            transport, _ = await serial_asyncio_fast.connection_for_serial(
                asyncio.get_running_loop(), lambda: receiver, port
            )
        except (OSError, termios.error, serial.SerialException) as exc:
            port.close()
            raise Offline(f"serial port {path} refused its settings: {exc}") from None
        return cls(path, transport, receiver)

    @property
    def closed(self) -> bool:
        """True once the port is closed or lost."""
        return self._receiver.closed

    def _check_lost(self) -> None:
        if self._receiver.closed:
            reason = self._receiver.lost
            raise Offline(f"serial port {self.path} vanished" + (f": {reason}" if reason else ""))

    async def read(self, max_bytes: int | None = None, *, timeout_s: float | None) -> bytes:
        """Return the bytes that arrived (at least one, at most ``max_bytes``).

        Args:
            max_bytes: upper bound; ``None`` returns everything buffered.
            timeout_s: seconds to wait for the first byte; ``None`` waits until
                data comes or the port is lost.

        Raises:
            Timeout: nothing arrived within ``timeout_s``.
            Offline: the port vanished (after any bytes that came before).

        """
        receiver = self._receiver
        try:
            async with asyncio.timeout(timeout_s):
                while not receiver.buffer:
                    self._check_lost()
                    receiver.changed.clear()
                    await receiver.changed.wait()
        except TimeoutError:
            raise Timeout(f"nothing from {self.path} within {timeout_s:g} s") from None
        count = len(receiver.buffer) if max_bytes is None else max_bytes
        data = bytes(receiver.buffer[:count])
        del receiver.buffer[:count]
        return data

    async def read_exactly(self, count: int, *, timeout_s: float) -> bytes:
        """Return exactly ``count`` bytes.

        Raises:
            Timeout: fewer than ``count`` bytes arrived within ``timeout_s`` seconds
                (they stay buffered for the next read).
            Offline: the port vanished first.

        """
        receiver = self._receiver
        try:
            async with asyncio.timeout(timeout_s):
                while len(receiver.buffer) < count:
                    self._check_lost()
                    receiver.changed.clear()
                    await receiver.changed.wait()
        except TimeoutError:
            raise Timeout(
                f"{len(receiver.buffer)} of {count} bytes from {self.path} within {timeout_s:g} s",
            ) from None
        data = bytes(receiver.buffer[:count])
        del receiver.buffer[:count]
        return data

    def discard_input(self) -> int:
        """Drop what is buffered (before a command that needs a fresh answer); returns the count."""
        count = len(self._receiver.buffer)
        self._receiver.buffer.clear()
        # Also what the kernel holds but pyserial-asyncio-fast has not read yet.
        port: Any = self._transport.get_extra_info("serial")
        if port is not None:
            with contextlib.suppress(OSError, serial.SerialException):
                port.reset_input_buffer()
        return count

    async def write(self, data: bytes, *, timeout_s: float) -> None:
        """Write ``data`` and wait until the transport has handed it to the kernel.

        Raises:
            Offline: the port is gone.
            Timeout: the bytes did not leave within ``timeout_s`` seconds
                (flow control held them).

        """
        self._check_lost()
        self._transport.write(data)
        try:
            async with asyncio.timeout(timeout_s):
                while self._transport.get_write_buffer_size():
                    self._check_lost()
                    await asyncio.sleep(0.001)
        except TimeoutError:
            raise Timeout(f"write to {self.path} stalled for {timeout_s:g} s") from None

    async def aclose(self, timeout_s: float = 2.0) -> None:
        """Close the port (idempotent); waits up to ``timeout_s`` seconds for the close."""
        if not self._receiver.closed:
            # A transport already closing (the port vanished) must not be aborted again:
            # pyserial-asyncio-fast would call connection_lost a second time, on no protocol.
            if not self._transport.is_closing():
                self._transport.abort()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout_s):
                    while not self._receiver.closed:
                        self._receiver.changed.clear()
                        await self._receiver.changed.wait()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()
