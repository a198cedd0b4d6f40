"""An SSP host on a serial port: one command at a time, the sequence flag, retransmission.

:meth:`SspLink.exchange` sends a command packet and waits ``reply_timeout_s``
for the reply whose address and sequence flag match it (GA138: "In a reply
packet the address and sequence flag match the command packet").  Without one
it sends the *same* packet again, same sequence flag: a slave that executed
the command but whose reply was lost repeats that reply instead of executing
the command twice, so a retried POLL never loses its events and a retried
REJECT never rejects twice.  The flag alternates only once a reply arrived.
:meth:`SspLink.sync` starts a session (SYNC with the flag set; the slave then
expects it clear).

With an :class:`~.ssp_crypto.EsspSession` every command is sent inside an eSSP
block and encrypted replies are opened with it (their counter checked).
"""

from __future__ import annotations

import asyncio
import logging

from devices.errors import Offline, ProtocolError, Timeout
from devices.transports.serial import SerialPort

from .ssp import STEX, Command, Deframer, Packet, Response, encode
from .ssp_crypto import EsspSession

log = logging.getLogger(__name__)


class Refused(ProtocolError):
    """The validator answered with a generic response other than OK."""

    def __init__(self, command: int, response: int) -> None:
        try:
            name = Response(response).name
        except ValueError:
            name = f"0x{response:02X}"
        super().__init__(f"SSP command 0x{command:02X} answered {name}")
        self.command = command
        self.response = response


class SspLink:
    """The host end of an SSP line, talking to the slave at ``address``.

    Args:
        port: the open serial port (9600 8N2 for SSP).
        address: the slave's SSP address (banknote validators: 0).
        reply_timeout_s: how long to wait for a reply, in s (GA138: 1 s).
        retries: further transmissions of the same packet after a timeout.

    """

    def __init__(
        self,
        port: SerialPort,
        *,
        address: int = 0,
        reply_timeout_s: float = 1.0,
        retries: int = 3,
    ) -> None:
        self.port = port
        self.address = address
        self.reply_timeout_s = reply_timeout_s
        self.retries = retries
        #: The eSSP session once keys are negotiated; None: plain SSP.
        self.session: EsspSession | None = None
        self._seq = True
        self._lock = asyncio.Lock()
        self._deframer = Deframer()
        #: Transmissions repeated after a timeout (diagnostics and tests).
        self.retried = 0

    async def sync(self) -> None:
        """Start a session: SYNC with the sequence flag set, then the flag clear.

        Raises:
            Offline: no answer.
            Refused: SYNC not answered OK.
            ProtocolError: only broken packets came back.

        """
        self._seq = True
        await self.command(Command.SYNC, encrypted=False)

    async def command(self, code: int, data: bytes = b"", *, encrypted: bool = True) -> bytes:
        """Send command ``code`` with ``data``; return the reply's data after its OK byte.

        ``encrypted``: inside an eSSP block when a session is open (key exchange
        commands are sent in the clear).

        Raises:
            Refused: a generic response other than OK.
            Offline: no reply after every transmission, or the port vanished.
            ProtocolError: only broken packets came back, or an eSSP block failed.

        """
        reply = await self.exchange(bytes([code]) + data, encrypted=encrypted)
        if not reply or reply[0] != Response.OK:
            raise Refused(code, reply[0] if reply else 0)
        return reply[1:]

    async def exchange(self, data: bytes, *, encrypted: bool = True) -> bytes:
        """Send ``data`` (command and parameters) and return the reply's whole data.

        Raises:
            Offline: no reply after every transmission, or the port vanished.
            ProtocolError: only broken packets came back, or an eSSP block failed.

        """
        async with self._lock:
            session = self.session if encrypted else None
            payload = session.wrap(data) if session is not None else data
            packet = Packet(self.address, self._seq, payload)
            wire = encode(packet)
            dropped = self._deframer.dropped
            for attempt in range(self.retries + 1):
                if attempt:
                    self.retried += 1
                    log.debug("SSP 0x%02X: retransmission %d", data[0], attempt)
                reply = await self._attempt(wire, packet)
                if reply is not None:
                    self._seq = not self._seq
                    if reply.data[:1] == bytes([STEX]):
                        if self.session is None:
                            raise ProtocolError("an encrypted SSP reply without a session")
                        return self.session.unwrap(reply.data)
                    return reply.data
            if self._deframer.dropped > dropped:
                raise ProtocolError(
                    f"SSP slave {self.address}: only broken replies to 0x{data[0]:02X}"
                )
            raise Offline(
                f"SSP slave {self.address} did not answer 0x{data[0]:02X}"
                f" ({self.retries + 1} transmissions)"
            )

    async def _attempt(self, wire: bytes, packet: Packet) -> Packet | None:
        port = self.port
        port.discard_input()
        self._deframer.reset()
        await port.write(wire, timeout_s=self.reply_timeout_s)
        loop = asyncio.get_running_loop()
        until = loop.time() + self.reply_timeout_s
        while (left := until - loop.time()) > 0:
            try:
                chunk = await port.read(timeout_s=left)
            except Timeout:
                return None
            for reply in self._deframer.feed(chunk):
                if reply.address == packet.address and reply.seq == packet.seq:
                    return reply
                log.debug("SSP: reply %s does not match the command; ignored", reply)
        return None
