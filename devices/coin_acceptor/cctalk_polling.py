"""How the ccTalk drivers poll an acceptor (coin acceptor, bill validator), once for both.

- :func:`serve`: read the event buffer every ``poll_ms`` and self-check (232)
  every ``self_check_ms``, never catching up with missed polls in a burst;
- :class:`EventBuffer`: each read of the event buffer (coins: 229, bills: 159)
  against the ledger's event counter (:mod:`.counter` has the arithmetic):
  first contact, a reset, events lost beyond the five buffered, and the new
  events oldest first, each handed to the driver with its counter.

The drivers keep what differs: their event codes, their tables, the inhibit
and the self-check's reading.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, NoReturn, Protocol

from devices.cash.acceptor import DepositAcceptor
from devices.cash.ledger import LostReason

from .cctalk import BufferedCredits
from .cctalk_link import CctalkLink
from .counter import previous, step

log = logging.getLogger(__name__)

#: One request sequence on the link (a buffer read, a self-check).
LinkStep = Callable[[CctalkLink], Awaitable[None]]


class CctalkPollSettings(Protocol):
    """The polling options of a ccTalk driver's settings."""

    @property
    def poll_ms(self) -> int:
        """Event buffer read interval, ms."""
        ...

    @property
    def self_check_ms(self) -> int:
        """Self-check (fault poll) interval, ms."""
        ...


async def serve(
    link: CctalkLink, settings: CctalkPollSettings, poll: LinkStep, check: LinkStep
) -> NoReturn:
    """Run ``poll`` every ``poll_ms`` and ``check`` every ``self_check_ms`` until cancelled.

    A late poll is not followed by a burst of missed ones: one read covers them all.

    Raises:
        DeviceError: whatever ``poll`` or ``check`` raise (the device is lost).

    """
    loop = asyncio.get_running_loop()
    poll_s = settings.poll_ms / 1000
    check_s = settings.self_check_ms / 1000
    next_poll = next_check = loop.time()
    while True:
        next_poll = max(next_poll + poll_s, loop.time())
        await asyncio.sleep(next_poll - loop.time())
        await poll(link)
        if loop.time() >= next_check + check_s:
            next_check = loop.time()
            await check(link)


@dataclass(frozen=True, slots=True)
class NewEvent:
    """One event of a buffer read that the ledger has not seen.

    Attributes:
        channel: the credit's channel (coin) or bill type, 1-16; 0 for a status or error.
        code: the sorter path or status of a credit, else the error or status code.
        counter: the acceptor's event counter of this event.
        newest: the newest event of the read (a bill held in escrow is routed only then).

    """

    channel: int
    code: int
    counter: int
    newest: bool


#: Processes one new event; True when the ledger stored its counter with it (a credit
#: or a loss record), so no separate counter write is needed after the read.
EventHandler = Callable[[NewEvent], Awaitable[bool]]


class EventBuffer:
    """The event counter of one ccTalk acceptor and each read of its buffer.

    Args:
        acceptor: the driver, whose ledger keeps the counter and the losses.
        device: what the acceptor is, for the log (``acceptor``, ``validator``).

    """

    def __init__(self, acceptor: DepositAcceptor[Any, Any], device: str) -> None:
        self._acceptor = acceptor
        self._device = device
        #: The event counter last processed; None before the first read ever.
        self.counter: int | None = None

    async def resume(self) -> None:
        """Continue from the ledger's counter.

        The ledger's, not this object's: it moves in the same commit as each credit, so
        a run that failed half-way through a buffer resumes after exactly what was recorded.

        Raises:
            NotReady: the ledger is not open yet.
            LedgerError: the ledger cannot be read.

        """
        self.counter = await self._acceptor.last_event_counter()

    async def process(self, buffered: BufferedCredits, handle: EventHandler) -> None:
        """Process one read: hand every new event to ``handle``, oldest first.

        On first contact the counter becomes the baseline (earlier events are not
        ours); a reset is reported lost (count unknown) and, unless the acceptor is
        stopping, :meth:`~DepositAcceptor.hardware_ready` applies the deposit's
        inhibit again (the acceptor powered up inhibited); events beyond the buffer
        are reported lost with their count.

        Raises:
            ValueError: a counter outside ``0..255``.
            LedgerError: the ledger cannot be written; whatever ``handle`` raises.

        """
        acceptor = self._acceptor
        last, now = self.counter, buffered.counter
        if last is None:
            log.warning(
                "%s: first contact with this %s (counter %d); earlier events are not ours",
                acceptor.id,
                self._device,
                now,
            )
            self.counter = now
            await acceptor.save_event_counter(now)
            return
        seen = step(last, now, len(buffered.events))
        if seen.reset:
            log.warning("%s: the %s reset (counter %d -> 0)", acceptor.id, self._device, last)
            await acceptor.events_lost(None, LostReason.DEVICE_RESET, event_counter=0)
            self.counter = 0
            if not acceptor.deposits.leaving:
                await acceptor.hardware_ready()
            return
        if seen.lost:
            # Stored with the counter of the last lost event: the buffered ones follow.
            await acceptor.events_lost(
                seen.lost, LostReason.COUNTER_JUMP, event_counter=previous(now, seen.new)
            )
        stored = True
        for back in reversed(range(seen.new)):
            event = buffered.events[back]
            counter = previous(now, back)
            stored = await handle(NewEvent(event.channel, event.code, counter, newest=back == 0))
            self.counter = counter
        self.counter = now
        if not stored:
            await acceptor.save_event_counter(now)
