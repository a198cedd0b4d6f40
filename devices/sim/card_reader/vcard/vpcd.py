"""A virtual card's link to pcscd's vpcd reader driver (vsmartcard's socket protocol).

The card is the TCP client of vpcd (port 35963 for reader "Virtual PCD 00 00",
35964 for "00 01").  Each message is a 2-byte big-endian length and a body: a
1-byte body is a control code (0 power off, 1 power on, 2 reset, 4 get ATR,
answered with the ATR); a longer body is a command APDU, answered with the
response APDU.  Connecting inserts the card; closing the socket removes it.

vpcd sends the length and the body in two writes, so Nagle on its side holds
the body until our ACK, which Linux delays 40 ms: acknowledging at once
(``TCP_QUICKACK`` after every read) takes an APDU from ~44 ms to ~0.3 ms.

The chip answers each APDU on a worker thread (``asyncio.to_thread``): PACE
and Chip Authentication cost milliseconds of elliptic curve arithmetic per
step, which must not stall the loop the daemon (in ``./dev sim``) shares.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket

from devices.sim.card_reader.vcard.chip import EmrtdChip

log = logging.getLogger(__name__)

VPCD_HOST = "127.0.0.1"
VPCD_BASE_PORT = 35963
_POWER_OFF, _POWER_ON, _RESET, _GET_ATR = 0, 1, 2, 4
_CONNECT_TIMEOUT_S = 2.0


class VpcdCard:
    """One card inserted into a vpcd slot while :meth:`serve` runs.

    Attributes:
        powered: set once pcscd has seen the card and powered it.
        apdu_delay_s: time the chip takes per APDU, seconds (a contactless
            chip's turnaround; 0 measures the stack alone).

    """

    def __init__(self, chip: EmrtdChip, atr: bytes, slot: int, apdu_delay_s: float) -> None:
        self.chip = chip
        self.atr = atr
        self.port = VPCD_BASE_PORT + slot
        self.apdu_delay_s = apdu_delay_s
        self.powered = asyncio.Event()
        self.apdus = 0

    async def serve(self) -> None:
        """Connect to vpcd and answer it until cancelled or vpcd closes the link.

        Raises:
            OSError: vpcd is not listening (pcscd not running with vsmartcard-vpcd).

        """
        async with asyncio.timeout(_CONNECT_TIMEOUT_S):
            reader, writer = await asyncio.open_connection(VPCD_HOST, self.port)
        sock = writer.get_extra_info("socket")
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            while True:
                try:
                    length = int.from_bytes(await reader.readexactly(2), "big")
                    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_QUICKACK, 1)
                    body = await reader.readexactly(length)
                    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_QUICKACK, 1)
                except asyncio.IncompleteReadError:
                    return
                answer = await self._answer(body)
                if answer is not None:
                    writer.write(len(answer).to_bytes(2, "big") + answer)
                    await writer.drain()
        finally:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()

    async def _answer(self, body: bytes) -> bytes | None:
        if len(body) != 1:
            self.apdus += 1
            if self.apdu_delay_s:
                await asyncio.sleep(self.apdu_delay_s)
            return await asyncio.to_thread(self.chip.process, body)
        match body[0]:
            case code if code in (_POWER_OFF, _RESET):
                self.chip.reset()
            case code if code == _POWER_ON:
                self.chip.reset()
                self.powered.set()
            case code if code == _GET_ATR:
                return self.atr
            case code:
                log.warning("vpcd sent an unknown control code %d", code)
        return None
