"""Driver ``cctalk``: a ccTalk bill validator with escrow on a serial port (9600 8N1).

The link, frames, polling and event counter are the coin acceptor's
(:mod:`devices.coin_acceptor.cctalk_link`, :mod:`devices.coin_acceptor.cctalk_polling`,
:mod:`devices.coin_acceptor.counter`); the bill vocabulary is
:mod:`.cctalk_bills`.  Start-up (each run):

1. open the ledger and the port; simple poll (254);
2. the bill table: bill id (157) of types 1-16 and the country's scaling
   factor (156); types of our country whose value is in ``notes`` are enabled
   for a deposit;
3. inhibit everything (231, 228), escrow and stacker mode (153), and route
   0 (return) a bill a crashed run left in escrow: it is never credited;
4. read the event buffer (159) and process what the ledger has not seen
   (its event counter is stored with each credit): a bill the validator
   stacked after the daemon died (routed, not yet read) is credited from its
   event; more events than the buffer holds are recorded lost with their count;
5. :meth:`~.protocol.CashAcceptor.hardware_ready`, then read the buffer every
   ``poll_ms`` and self-check (232) every ``self_check_ms``: a fault code, or a
   jam event until the self-check reports none, is ``hardwareError``.

An escrow event (type, 1) asks the class for a verdict and routes the bill:
1 stacks it (its credit event (type, 0) follows and is credited then), 0
returns it (status 1, returned from escrow, follows).  Only the newest escrow
event of a read is routed, and only when it is new: an older one's bill has
moved on.
"""

from __future__ import annotations

import logging
from functools import partial
from typing import Annotated

from msgspec import Meta

from devices.base import DeviceEnv, DeviceHost, DeviceState
from devices.cash.ledger import LostReason
from devices.coin_acceptor.cctalk import CHANNELS, Checksum, Header, inhibit_mask, parse_buffered
from devices.coin_acceptor.cctalk_link import CctalkLink, Nak, on_link, open_link
from devices.coin_acceptor.cctalk_polling import EventBuffer, NewEvent, serve
from devices.errors import ProtocolError

from .cctalk_bills import (
    BILL_VALIDATOR_ADDRESS,
    FRAUD,
    JAMS,
    MODE_STACKER_AND_ESCROW,
    BillHeader,
    BillStatus,
    Route,
    RouteReply,
    bill_value,
    parse_scaling,
)
from .messages import NoteRejectReason, StackerState
from .protocol import CashAcceptor, Verdict
from .settings import NoteTable

log = logging.getLogger(__name__)


class CctalkBillSettings(NoteTable, frozen=True, forbid_unknown_fields=True):
    """``[devices.<id>]`` options of a ccTalk bill validator.

    ``port``, ``baudrate`` (9600), ``address`` (40 by convention), ``checksum``,
    ``echo``, ``poll_ms`` (<= 200), ``reply_timeout_ms``, ``retries`` and
    ``self_check_ms`` (fault poll interval) as for the ccTalk coin acceptor;
    ``country``: the two letters of the bill ids this kiosk takes (``VN``).  The
    note table options are :class:`NoteTable`'s.
    """

    port: str = "/dev/ttyUSB0"
    baudrate: Annotated[int, Meta(ge=1200, le=115_200)] = 9600
    address: Annotated[int, Meta(ge=2, le=255)] = BILL_VALIDATOR_ADDRESS
    checksum: Checksum = Checksum.SIMPLE
    echo: bool = False
    poll_ms: Annotated[int, Meta(ge=20, le=200)] = 100
    reply_timeout_ms: Annotated[int, Meta(ge=20, le=2000)] = 200
    retries: Annotated[int, Meta(ge=0, le=10)] = 2
    self_check_ms: Annotated[int, Meta(ge=100, le=60_000)] = 500
    country: Annotated[str, Meta(pattern=r"^[A-Z]{2}$")] = "VN"


class CctalkBillValidator(CashAcceptor[CctalkBillSettings]):
    """A ccTalk bill validator; see the module docstring."""

    Settings = CctalkBillSettings

    settings: CctalkBillSettings

    def __init__(
        self,
        device_id: str,
        host: DeviceHost,
        env: DeviceEnv,
        settings: CctalkBillSettings,
    ) -> None:
        super().__init__(device_id, host, env, settings)
        self._link: CctalkLink | None = None
        #: Value (whole units) by bill type, for types of our country.
        self._table: dict[int, int] = {}
        self._events = EventBuffer(self, "validator")
        self._jammed = False
        #: The self-check's fault code (232); 0: none.
        self._fault_code = 0
        #: True while catching up with the buffer at start: escrow events are old.
        self._catching_up = False

    def acceptor_condition(self) -> DeviceState:
        """Return hardwareError after a jam or while the self-check reports a fault."""
        if self._jammed or self._fault_code:
            return DeviceState.HARDWARE_ERROR
        return super().acceptor_condition()

    async def run(self) -> None:
        """Connect, return a bill left in escrow, catch up with the buffer, then poll.

        Raises:
            LedgerError: the ledger cannot be opened or written.
            Offline: the port is missing or the validator does not answer.
            ProtocolError: the validator answers only broken frames.

        """
        await self.open_ledger()
        port, link = await open_link(self.settings)
        async with port:
            await link.request(Header.SIMPLE_POLL)
            self._table = await self._read_bill_table(link)
            self._link = link
            try:
                await self._write_inhibit(link, inhibited=True)
                await link.request(
                    BillHeader.MODIFY_BILL_OPERATING_MODE, bytes([MODE_STACKER_AND_ESCROW])
                )
                if await self._route(link, Route.RETURN):
                    log.warning("%s: a bill was held in escrow at start; returned", self.id)
                await self._events.resume()
                await self._check(link)
                self._catching_up = True
                try:
                    await self._poll(link)
                finally:
                    self._catching_up = False
                await self.hardware_ready()
                await serve(link, self.settings, self._poll, self._check)
            finally:
                self._link = None

    async def _read_bill_table(self, link: CctalkLink) -> dict[int, int]:
        country = self.settings.country
        scaling = parse_scaling(
            await link.request(BillHeader.REQUEST_COUNTRY_SCALING_FACTOR, country.encode())
        )
        table: dict[int, int] = {}
        for bill_type in range(1, CHANNELS + 1):
            bill_id = await link.request(BillHeader.REQUEST_BILL_ID, bytes([bill_type]))
            value = bill_value(bill_id.decode("ascii", "replace"), country, scaling)
            if value is not None:
                table[bill_type] = value
        log.info("%s: bill table %s (scaling %s)", self.id, table, scaling)
        return table

    # -- inhibit -----------------------------------------------------------------------------

    async def set_inhibit(self, inhibited: bool) -> None:
        """Inhibit every bill (and the master inhibit), or enable the notes taken here.

        Without a connection (``kioskd safe-state``) the port is opened for it.

        Raises:
            Offline: the validator does not answer or the port is missing.
            ProtocolError: it answers with broken frames.

        """
        await on_link(self._link, self.settings, partial(self._write_inhibit, inhibited=inhibited))

    async def _write_inhibit(self, link: CctalkLink, *, inhibited: bool) -> None:
        wanted = set(self.note_values)
        types = {t for t, value in self._table.items() if value in wanted}
        await link.request(
            Header.MODIFY_INHIBIT_STATUS, inhibit_mask(set() if inhibited else types)
        )
        await link.request(Header.MODIFY_MASTER_INHIBIT, bytes([0 if inhibited else 1]))

    async def _route(self, link: CctalkLink, route: Route) -> bool:
        """Route the bill in escrow; False when the escrow was empty.

        Raises:
            ProtocolError: the validator could not route it.

        """
        reply = await link.request(BillHeader.ROUTE_BILL, bytes([route]))
        if reply[:1] == bytes([RouteReply.ESCROW_EMPTY]):
            return False
        if reply[:1] == bytes([RouteReply.FAILED]):
            raise ProtocolError(f"the bill validator could not route the bill ({route.name})")
        return True

    # -- events ------------------------------------------------------------------------------

    async def _poll(self, link: CctalkLink) -> None:
        buffered = parse_buffered(await link.request(BillHeader.READ_BUFFERED_BILL_EVENTS))
        await self._events.process(buffered, partial(self._event, link))

    async def _event(  # noqa: C901, PLR0912 - one dispatch over the bill statuses
        self, link: CctalkLink, event: NewEvent
    ) -> bool:
        """Process one buffered event; True when the ledger stored its counter with it."""
        code, counter = event.code, event.counter
        if event.channel:
            value = self._table.get(event.channel)
            if code == 1:  # held in escrow
                if event.newest and not self._catching_up:
                    await self._escrowed(link, value)
                return False
            self._jammed = False
            if value is None:
                await self.events_lost(1, LostReason.UNKNOWN_CHANNEL, event_counter=counter)
            else:
                await self.note_stacked(value, counter)
            self._refresh_condition()
            return True
        if code == BillStatus.RETURNED_FROM_ESCROW:
            self.note_returned()
        elif code == BillStatus.INVALID_BILL_VALIDATION:
            self.note_rejected(NoteRejectReason.UNKNOWN_NOTE)
        elif code == BillStatus.INVALID_BILL_TRANSPORT:
            self.note_rejected(NoteRejectReason.VALIDATION_FAILED)
        elif code in FRAUD:
            reason = (
                "notePulledBack" if code == BillStatus.PULLED_BACKWARDS else BillStatus(code).name
            )
            await self.fraud_detected(reason)
        elif code in JAMS:
            log.warning("%s: bill jam (%s)", self.id, BillStatus(code).name)
            self.note_rejected(NoteRejectReason.JAM)
            self._jammed = True
            self._refresh_condition()
        elif code == BillStatus.STACKER_REMOVED:
            await self.stacker_changed(StackerState.REMOVED)
        elif code == BillStatus.STACKER_FULL:
            await self.stacker_changed(StackerState.FULL)
        elif code in (BillStatus.STACKER_INSERTED, BillStatus.STACKER_OK):
            self._jammed = False
            await self.stacker_changed(StackerState.OK)
            self._refresh_condition()
        elif code == BillStatus.UNKNOWN_BILL_STACKED:
            await self.events_lost(1, LostReason.UNKNOWN_CHANNEL, event_counter=counter)
            return True
        else:
            log.debug("%s: bill validator status %d", self.id, code)
        return False

    async def _check(self, link: CctalkLink) -> None:
        """Self-check (232): a fault code is ``hardwareError`` until it clears (a jam too)."""
        reply = await link.request(Header.PERFORM_SELF_CHECK)
        code = reply[0] if reply else 0
        if code != self._fault_code or (self._jammed and not code):
            if code:
                log.warning("%s: self-check fault code %d", self.id, code)
            self._fault_code, self._jammed = code, self._jammed and bool(code)
            self._refresh_condition()

    async def _escrowed(self, link: CctalkLink, value: int | None) -> None:
        if value is None:
            log.warning("%s: a bill of an unknown type held: returned", self.id)
            await self._route(link, Route.RETURN)
            return
        verdict = self.note_escrowed(value)
        try:
            routed = await self._route(
                link, Route.STACK if verdict is Verdict.STACK else Route.RETURN
            )
        except Nak as exc:
            raise ProtocolError(f"route bill refused: {exc}") from exc
        if not routed:
            log.info("%s: the bill left escrow before it was routed", self.id)
