"""Serial ports on the event loop (pyserial-asyncio-fast), for any request/response protocol.

:class:`SerialPort` wraps a pyserial-asyncio-fast transport with a receive
buffer the caller reads from with explicit timeouts: ``read_exactly(n,
timeout_s)`` and ``discard_input()`` (drop what arrived, e.g. garbage before a
retry).  The port is opened in a worker thread by the library, so opening a
slow USB adapter never blocks the loop.  A port that vanishes (USB unplug,
pty closed) makes every later read raise :class:`~devices.errors.Offline`.

Line settings are pyserial's: ``bytesize`` 5-8, ``parity`` ``N|E|O|M|S``,
``stopbits`` 1, 1.5 or 2.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any, Literal, Self

import serial
import serial_asyncio_fast

from devices.errors import Offline, Timeout

log = logging.getLogger(__name__)

Parity = Literal["N", "E", "O", "M", "S"]


class _Receiver(asyncio.Protocol):
    """Collects received bytes and wakes the reader."""

    def __init__(self) -> None:
        self.buffer = bytearray()
        self.arrived = asyncio.Event()
        self.lost: Exception | None = None
        self.closed = False

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        self.arrived.set()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.lost = exc
        self.arrived.set()


class SerialPort:
    """An open serial port; use :meth:`open` (an async context manager closes it).

    Reads and writes must come from one task at a time (a protocol link owns
    the port); nothing here locks.
    """

    def __init__(self, transport: asyncio.Transport, receiver: _Receiver, name: str) -> None:
        self._transport = transport
        self._rx = receiver
        self.name = name

    @classmethod
    async def open(
        cls,
        port: str,
        *,
        baudrate: int = 9600,
        bytesize: int = 8,
        parity: Parity = "N",
        stopbits: float = 1,
        timeout_s: float = 2.0,
    ) -> SerialPort:
        """Open ``port`` (a path or pyserial URL) within ``timeout_s`` seconds; 9600 8N1 by default.

        Raises:
            Offline: the port does not exist, is busy, or did not open in time.

        """
        loop = asyncio.get_running_loop()
        receiver = _Receiver()
        try:
            async with asyncio.timeout(timeout_s):
                transport, _ = await serial_asyncio_fast.create_serial_connection(
                    loop,
                    lambda: receiver,
                    port,
                    baudrate=baudrate,
                    bytesize=bytesize,
                    parity=parity,
                    stopbits=stopbits,
                    exclusive=True,
                )
        except TimeoutError:
            raise Offline(f"serial port {port} did not open within {timeout_s} s") from None
        except (OSError, serial.SerialException, ValueError) as exc:
            raise Offline(f"cannot open serial port {port}: {exc}") from exc
        opened = cls(transport, receiver, port)
        opened.discard_input()
        return opened

    async def __aenter__(self) -> Self:
        """Use the open port in ``async with``."""
        return self

    async def __aexit__(self, *exc: object) -> None:
        """Close the port."""
        await self.aclose()

    def _check_open(self) -> None:
        if self._rx.closed:
            reason = f": {self._rx.lost}" if self._rx.lost else ""
            raise Offline(f"serial port {self.name} closed{reason}")

    def write(self, data: bytes) -> None:
        """Queue ``data`` for sending (the transport writes without blocking).

        Raises:
            Offline: the port is closed.

        """
        self._check_open()
        self._transport.write(data)

    async def read_exactly(self, n: int, timeout_s: float) -> bytes:
        """Return the next ``n`` bytes, waiting at most ``timeout_s`` seconds.

        Raises:
            Timeout: fewer than ``n`` bytes arrived in time (they stay buffered).
            Offline: the port closed.

        """
        rx = self._rx
        try:
            async with asyncio.timeout(timeout_s):
                while len(rx.buffer) < n:
                    self._check_open()
                    rx.arrived.clear()
                    await rx.arrived.wait()
        except TimeoutError:
            raise Timeout(
                f"{self.name}: {len(rx.buffer)} of {n} bytes within {timeout_s * 1000:.0f} ms"
            ) from None
        data = bytes(rx.buffer[:n])
        del rx.buffer[:n]
        return data

    def pending(self) -> int:
        """Bytes received and not read yet."""
        return len(self._rx.buffer)

    def discard_input(self) -> int:
        """Drop every byte received and not read yet (also the OS buffer); return how many."""
        dropped = len(self._rx.buffer)
        self._rx.buffer.clear()
        serial_port: Any = self._transport.get_extra_info("serial")
        if serial_port is not None:
            with contextlib.suppress(OSError, serial.SerialException):
                serial_port.reset_input_buffer()
        return dropped

    async def aclose(self) -> None:
        """Close the port (idempotent)."""
        if not self._transport.is_closing():
            self._transport.close()
        # Let the transport's close callbacks run so the fd is released before a reopen.
        await asyncio.sleep(0)
