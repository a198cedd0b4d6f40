"""A ccTalk host on a serial port: one request at a time, echo, timeouts and retries.

Every request is a frame to one device address, answered by one frame with
header 0 (ACK, with data) or 5 (NAK).  :meth:`CctalkLink.request`

1. drops whatever is pending in the receive buffer (late replies, line noise);
   after a timeout or a bad frame, first waits for the line to stay quiet for
   ``reply_timeout_s`` (discarding what comes): a slow device's late reply to
   an earlier attempt would otherwise pass for the answer to the next request;
2. writes the frame, and on a single-wire bus (``echo``) reads its own bytes
   back first and checks them (a collision or a broken line shows here);
3. reads the reply head (destination, length) and the rest within
   ``reply_timeout_s`` and checks destination, source, checksum and, for the
   headers of :data:`~.cctalk.REPLY_DATA_LENGTHS`, the data length;
4. on a timeout or a bad frame, starts again, ``retries`` times.

All the requests the coin acceptor driver makes are idempotent (reads, inhibit
masks), so a retry after a lost reply is safe.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Protocol

from devices.errors import Offline, ProtocolError, Timeout
from devices.transports.serial import LineSettings, SerialPort

from .cctalk import (
    HOST_ADDRESS,
    REPLY_DATA_LENGTHS,
    Checksum,
    FrameError,
    Header,
    decode,
    encode,
    frame_length,
)

log = logging.getLogger(__name__)

#: Longest wait for a quiet line after a failed attempt, in reply timeouts (a babbling
#: line must not hold the link forever).
SETTLE_MAX_TIMEOUTS = 5

#: Longest opening the serial port may take (a USB adapter settling), in seconds.
OPEN_TIMEOUT_S = 2.0

#: Attempts to open the port outside a driver's run (``kioskd safe-state``, the stop's
#: last read), where the supervisor's task may still be releasing it.
FREE_PORT_ATTEMPTS = 3
#: Pause between those attempts, in seconds.
FREE_PORT_PAUSE_S = 0.1


class Nak(ProtocolError):
    """The device answered NAK: it refuses or does not implement the request."""


class CctalkLink:
    """The host end of a ccTalk bus, talking to the device at ``address``.

    Args:
        port: the open serial port (9600 8N1 for ccTalk).
        address: the device's ccTalk address (2 for a coin acceptor by default).
        checksum: simple 8-bit checksum or CRC-16.
        echo: the bus is single-wire: every byte sent is also received.
        reply_timeout_s: how long to wait for a reply (and for the echo), in s.
        retries: further attempts after a timeout or a bad frame.

    """

    def __init__(
        self,
        port: SerialPort,
        *,
        address: int,
        checksum: Checksum = Checksum.SIMPLE,
        echo: bool = False,
        reply_timeout_s: float = 0.2,
        retries: int = 2,
    ) -> None:
        self.port = port
        self.address = address
        self.checksum = checksum
        self.echo = echo
        self.reply_timeout_s = reply_timeout_s
        self.retries = retries
        self._lock = asyncio.Lock()
        #: An attempt failed: a late reply may still be on its way.
        self._unsettled = False
        #: Attempts that failed and were retried (for diagnostics and tests).
        self.retried = 0
        #: Why the device is lost (no answer after every attempt of a request), or None.
        self._lost: str | None = None

    async def request(self, header: int, data: bytes = b"") -> bytes:
        """Send ``header`` with ``data`` and return the reply's data.

        Once a request got no reply after every attempt the device is lost: every later
        request on this link fails at once with the same :class:`Offline`, so the driver's
        other users (a command, the poll loop) learn it together and a new link is made.

        Raises:
            Nak: the device answered NAK (not retried).
            Offline: no reply after every attempt (now or earlier), or the port closed.
            ProtocolError: only bad frames after every attempt.

        """
        frame = encode(self.address, HOST_ADDRESS, header, data, self.checksum)
        async with self._lock:
            if self._lost is not None:
                raise Offline(self._lost)
            last: Exception | None = None
            for attempt in range(self.retries + 1):
                if attempt:
                    self.retried += 1
                    log.debug("ccTalk header %d: retry %d after %s", header, attempt, last)
                if self._unsettled:
                    await self._settle()
                try:
                    reply = await self._exchange(frame, header)
                except Nak:
                    raise
                except (Timeout, FrameError, ProtocolError) as exc:
                    last = exc
                    self._unsettled = True
                else:
                    # After a retry the failed attempt's reply may still come: settle next time.
                    self._unsettled = attempt > 0
                    return reply
            if isinstance(last, Timeout):
                self._lost = (
                    f"ccTalk device {self.address} did not answer header {header}"
                    f" ({self.retries + 1} attempts)"
                )
                raise Offline(self._lost) from last
            raise ProtocolError(
                f"ccTalk device {self.address}: bad replies to header {header}: {last}"
            ) from last

    async def _settle(self) -> None:
        """Discard what arrives until the line stays quiet for one reply timeout.

        Bounded by :data:`SETTLE_MAX_TIMEOUTS` reply timeouts.

        Raises:
            Offline: the port vanished.

        """
        loop = asyncio.get_running_loop()
        until = loop.time() + SETTLE_MAX_TIMEOUTS * self.reply_timeout_s
        while loop.time() < until:
            try:
                late = await self.port.read(timeout_s=self.reply_timeout_s)
            except Timeout:
                break
            log.debug("ccTalk: %d late bytes discarded", len(late))
        self._unsettled = False

    async def _exchange(self, frame: bytes, header: int) -> bytes:
        port = self.port
        port.discard_input()
        await port.write(frame, timeout_s=self.reply_timeout_s)
        if self.echo:
            echoed = await port.read_exactly(len(frame), timeout_s=self.reply_timeout_s)
            if echoed != frame:
                raise ProtocolError(f"bus echo {echoed.hex()} differs from {frame.hex()}")
        head = await port.read_exactly(2, timeout_s=self.reply_timeout_s)
        if head[0] != HOST_ADDRESS:
            raise FrameError(f"reply to address {head[0]}, not the host")
        rest = await port.read_exactly(frame_length(head) - 2, timeout_s=self.reply_timeout_s)
        reply = decode(head + rest, self.checksum)
        if reply.source is not None and reply.source != self.address:
            raise FrameError(f"reply from address {reply.source}, not {self.address}")
        if reply.header == Header.NAK:
            raise Nak(f"ccTalk device {self.address} answered NAK")
        if reply.header != Header.REPLY:
            raise FrameError(f"reply with header {reply.header}")
        lengths = REPLY_DATA_LENGTHS.get(header)
        if lengths is not None and len(reply.data) not in lengths:
            raise FrameError(f"{len(reply.data)} data bytes in a reply to header {header}")
        return reply.data


class CctalkBusSettings(Protocol):
    """The bus options of a ccTalk driver's settings (coin acceptor, bill validator)."""

    @property
    def port(self) -> str:
        """Serial device path."""
        ...

    @property
    def baudrate(self) -> int:
        """Line speed, bit/s (ccTalk: 9600, 8N1)."""
        ...

    @property
    def address(self) -> int:
        """The device's ccTalk address."""
        ...

    @property
    def checksum(self) -> Checksum:
        """Simple 8-bit checksum or CRC-16."""
        ...

    @property
    def echo(self) -> bool:
        """Single-wire bus: the host receives its own bytes."""
        ...

    @property
    def reply_timeout_ms(self) -> int:
        """How long to wait for a reply, per request, in ms."""
        ...

    @property
    def retries(self) -> int:
        """Further attempts after a timeout or a bad frame."""
        ...


async def open_link(settings: CctalkBusSettings) -> tuple[SerialPort, CctalkLink]:
    """Open the port of ``settings`` (at most :data:`OPEN_TIMEOUT_S`) with a link on it.

    The caller closes the port (``async with port``).

    Raises:
        Offline: the port does not exist, cannot be opened, or did not open in time.

    """
    port = await SerialPort.open(
        settings.port, LineSettings(baudrate=settings.baudrate), timeout_s=OPEN_TIMEOUT_S
    )
    link = CctalkLink(
        port,
        address=settings.address,
        checksum=settings.checksum,
        echo=settings.echo,
        reply_timeout_s=settings.reply_timeout_ms / 1000,
        retries=settings.retries,
    )
    return port, link


async def open_link_once_free(settings: CctalkBusSettings) -> tuple[SerialPort, CctalkLink]:
    """Open the port as :func:`open_link` does, outside a driver's run.

    The supervisor's task may still hold the port: up to :data:`FREE_PORT_ATTEMPTS`
    attempts, :data:`FREE_PORT_PAUSE_S` apart.  The caller closes the port.

    Raises:
        Offline: still missing or busy after the last attempt.

    """
    for _ in range(FREE_PORT_ATTEMPTS - 1):
        with contextlib.suppress(Offline):
            return await open_link(settings)
        await asyncio.sleep(FREE_PORT_PAUSE_S)
    return await open_link(settings)


async def on_link(
    link: CctalkLink | None,
    settings: CctalkBusSettings,
    action: Callable[[CctalkLink], Awaitable[None]],
) -> None:
    """Run ``action`` on the running ``link``, or without one on a port opened for it.

    Without a link (``kioskd safe-state``) the port of ``settings`` is opened with
    :func:`open_link_once_free` and closed after ``action``.

    Raises:
        Offline: no port to open; whatever ``action`` raises.

    """
    if link is not None:
        await action(link)
        return
    port, opened = await open_link_once_free(settings)
    async with port:
        await action(opened)
