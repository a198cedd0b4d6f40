"""Driver ``ssp``: an ITL banknote validator (NV9, NV10, NV200 class) speaking SSP/eSSP.

Start-up (each :meth:`SspValidator.run`), after opening the ledger and the port
(9600 8N2):

1. SYNC, HOST_PROTOCOL_VERSION 8, SETUP_REQUEST: the channel table (value and
   currency per channel; channels whose currency is not ours are never enabled);
2. with ``encryption = "essp"``: the key exchange (:mod:`.ssp_crypto`), then
   every command encrypted.  A validator that answers KEY_NOT_SET while the
   driver has no encryption configured is ``hardwareError`` with the reason
   logged (such a unit needs ``encryption = "essp"`` and its fixed key);
3. REJECT, so that a note a crashed run left in escrow goes back to the
   citizen and is never credited (CANNOT_PROCESS: there was none); DISABLE and
   all channels inhibited;
4. GET_COUNTERS: the validator's persistent stacked count is compared with
   the ledger's (stored with each credit as its event counter); notes the
   ledger lacks are *recorded lost* with their count (``counterJump``), never
   credited at a guessed value;
5. :meth:`~.protocol.CashAcceptor.hardware_ready`, then poll every ``poll_ms``.

Polls use POLL WITH ACK when the validator has it (eSSP units): a credit is
repeated until EVENT ACK, which the driver sends only after the credit is
committed, so a daemon that dies in between finds it again; the stacked
counter then tells whether it was already recorded.  Plain POLL otherwise.

Escrow (GA138 "Read"): a READ event with a channel means the note is held;
the next poll stacks it, REJECT returns it.  The driver asks the class
(:meth:`~.protocol.CashAcceptor.note_escrowed`) before polling again and sends
REJECT for ``return``.  NOTE CREDIT is the credit point (the note can no longer
be pulled back).  Jams and an open note path are ``hardwareError`` while the
validator reports them; a removed or full stacker is the class's ``userError``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from enum import StrEnum
from typing import Annotated

from msgspec import Meta

from devices.base import DeviceEnv, DeviceHost, DeviceState
from devices.cash.ledger import LostReason
from devices.errors import Offline, ProtocolError
from devices.transports.serial import LineSettings, SerialPort

from .messages import NoteRejectReason, StackerState
from .protocol import CashAcceptor, Verdict
from .settings import NoteTable
from .ssp import PROTOCOL_VERSION, Command, Event, PollEvent, Response, inhibit_mask, parse_events
from .ssp import parse_setup as parse_setup_reply
from .ssp_crypto import DEFAULT_FIXED_KEY, EsspSession, KeyExchange, key_bytes, le64
from .ssp_link import Refused, SspLink

log = logging.getLogger(__name__)

#: Longest opening the serial port may take, in s.
OPEN_TIMEOUT_S = 2.0
#: Attempts to open the port for ``kioskd safe-state`` (the daemon may be releasing it).
SAFE_STATE_OPEN_ATTEMPTS = 3
#: Last-reject codes (GA138 "Reject Codes") of notes the validator did not recognise.
UNRECOGNISED = frozenset({0x01, 0x02, 0x03, 0x04, 0x05, 0x09, 0x0B, 0x11, 0x12, 0x14, 0x16, 0x17})
#: Last-reject codes of a note returned from escrow (by the host, or its timeout).
FROM_ESCROW = frozenset({0x08, 0x13})
#: Events that repeat while a fault lasts.
FAULT_EVENTS = frozenset({Event.SAFE_JAM, Event.UNSAFE_JAM, Event.NOTE_PATH_OPEN})


class Encryption(StrEnum):
    """``encryption`` setting: ``none`` (plain SSP) or ``essp`` (key exchange, AES-128)."""

    NONE = "none"
    ESSP = "essp"


class SspSettings(NoteTable, frozen=True, forbid_unknown_fields=True):
    """``[devices.<id>]`` options of an SSP banknote validator.

    ``port``: serial device (a udev symlink such as ``/dev/kiosk-notes``);
    ``baudrate`` bit/s (SSP: 9600, 8N2).  ``address``: SSP address (validators: 0).
    ``poll_ms``: poll interval (the validator rejects a note in escrow after 10 s
    without a poll).  ``reply_timeout_ms`` per transmission (GA138: 1000) and
    ``retries`` further transmissions of the same packet; ``encryption``:
    ``none`` or ``essp``; ``fixed_key``: the fixed half of the eSSP key as 16 hex
    digits (the maker's; GA138's default 0123456701234567).  The note table
    options are :class:`NoteTable`'s.
    """

    port: str = "/dev/ttyUSB0"
    baudrate: Annotated[int, Meta(ge=9600, le=115_200)] = 9600
    address: Annotated[int, Meta(ge=0, le=0x7D)] = 0
    poll_ms: Annotated[int, Meta(ge=50, le=1000)] = 200
    reply_timeout_ms: Annotated[int, Meta(ge=50, le=2000)] = 1000
    retries: Annotated[int, Meta(ge=0, le=20)] = 3
    encryption: Encryption = Encryption.NONE
    fixed_key: Annotated[str, Meta(pattern=r"^[0-9A-Fa-f]{16}$")] = f"{DEFAULT_FIXED_KEY:016X}"


class SspValidator(CashAcceptor[SspSettings]):
    """An SSP banknote validator; see the module docstring."""

    Settings = SspSettings

    settings: SspSettings

    def __init__(
        self,
        device_id: str,
        host: DeviceHost,
        env: DeviceEnv,
        settings: SspSettings,
    ) -> None:
        super().__init__(device_id, host, env, settings)
        self._link: SspLink | None = None
        #: Value (whole units) by channel, for channels of our currency.
        self._table: dict[int, int] = {}
        self._faults: set[int] = set()
        self._with_ack = False
        #: Channel of the note the validator holds in escrow and the verdict on it.
        self._held: tuple[int, Verdict] | None = None
        #: The ledger's stacked count (the event counter of the last credit); None: unknown.
        self._stacked: int | None = None
        #: True from connecting until :meth:`hardware_ready`: events are catch-up.
        self._starting = False

    def acceptor_condition(self) -> DeviceState:
        """Return hardwareError while a jam or an open note path is reported, else the class's."""
        if self._faults:
            return DeviceState.HARDWARE_ERROR
        return super().acceptor_condition()

    # -- connection --------------------------------------------------------------------------

    async def _open_link(self) -> tuple[SerialPort, SspLink]:
        s = self.settings
        port = await SerialPort.open(
            s.port, LineSettings(baudrate=s.baudrate, stopbits=2), timeout_s=OPEN_TIMEOUT_S
        )
        link = SspLink(
            port,
            address=s.address,
            reply_timeout_s=s.reply_timeout_ms / 1000,
            retries=s.retries,
        )
        return port, link

    async def _start(self, link: SspLink) -> None:
        """SYNC, protocol version, encryption; the link is ready for any command.

        Raises:
            Offline: no answer.  ProtocolError: bad answers or a refused step.

        """
        await link.sync()
        if self.settings.encryption is Encryption.ESSP:
            await self._negotiate(link)
        try:
            await link.command(Command.HOST_PROTOCOL_VERSION, bytes([PROTOCOL_VERSION]))
        except Refused as exc:
            if exc.response == Response.KEY_NOT_SET:
                raise ProtocolError(
                    'the validator requires eSSP: set encryption = "essp" and its fixed_key'
                ) from exc
            raise

    async def _negotiate(self, link: SspLink) -> None:
        exchange = KeyExchange()
        await link.command(Command.SET_GENERATOR, le64(exchange.generator), encrypted=False)
        await link.command(Command.SET_MODULUS, le64(exchange.modulus), encrypted=False)
        reply = await link.command(
            Command.REQUEST_KEY_EXCHANGE, le64(exchange.host_inter), encrypted=False
        )
        if len(reply) != 8:  # noqa: PLR2004 - a 64-bit key
            raise ProtocolError(f"key exchange answered {len(reply)} bytes")
        negotiated = exchange.key(int.from_bytes(reply, "little"))
        link.session = EsspSession(key_bytes(int(self.settings.fixed_key, 16), negotiated))
        log.info("%s: eSSP keys negotiated", self.id)

    async def run(self) -> None:
        """Connect, return a note left in escrow, reconcile counters, then poll.

        Raises:
            LedgerError: the ledger cannot be opened or written.
            Offline: the port is missing or the validator does not answer.
            ProtocolError: the validator answers only broken packets or refuses start-up.

        """
        await self.open_ledger()
        port, link = await self._open_link()
        async with port:
            await self._start(link)
            setup = parse_setup_reply(
                bytes([Response.OK]) + await link.command(Command.SETUP_REQUEST)
            )
            self._table = {
                channel: value
                for channel, (value, currency) in enumerate(
                    zip(setup.values, setup.currencies, strict=True), start=1
                )
                if currency == self.currency and value > 0
            }
            log.info(
                "%s: SSP validator, dataset %s, channels %s", self.id, setup.currency, self._table
            )
            with contextlib.suppress(Refused):  # CANNOT_PROCESS: no note in escrow
                await link.command(Command.REJECT)
                log.warning("%s: a note was held in escrow at start; returned", self.id)
            self._link = link
            self._starting = True
            try:
                await self._write_inhibit(link, inhibited=True)
                stacked = await self._read_counters(link)
                # A credit a crashed run did not acknowledge is repeated now and recorded.
                self._with_ack = await self._has_poll_with_ack(link)
                if stacked is not None and self._stacked is not None and stacked > self._stacked:
                    await self.events_lost(
                        stacked - self._stacked, LostReason.COUNTER_JUMP, event_counter=stacked
                    )
                    self._stacked = stacked
                await self._poll(link)
                self._starting = False
                await self.hardware_ready()
                await self._serve(link)
            finally:
                self._link = None
                self._starting = False

    async def _has_poll_with_ack(self, link: SspLink) -> bool:
        try:
            events = await link.command(Command.POLL_WITH_ACK)
        except Refused:
            return False
        await self._process(link, events)
        return True

    async def _read_counters(self, link: SspLink) -> int | None:
        """Read the validator's stacked count; set :attr:`_stacked` to the ledger's.

        Returns the validator's count, None when it has no counters
        (COMMAND_NOT_KNOWN): it is then trusted without the check.  The first
        contact, and counters reset below the ledger's, start from the
        validator's count.

        Raises:
            ProtocolError: a short counters reply.  LedgerError: the ledger failed.

        """
        try:
            counters = await link.command(Command.GET_COUNTERS)
        except Refused:
            log.info("%s: no note counters; the stacked count is not reconciled", self.id)
            return None
        if len(counters) < 5:  # noqa: PLR2004 - count byte and one 4-byte counter
            raise ProtocolError(f"counters reply of {len(counters)} bytes")
        stacked = int.from_bytes(counters[1:5], "little")
        known = await self.deposits.last_event_counter()
        if known is None or stacked < known:
            log.warning(
                "%s: %s: the validator has stacked %d notes",
                self.id,
                "first contact" if known is None else f"counters reset (ledger {known})",
                stacked,
            )
            await self.deposits.save_event_counter(stacked)
            known = stacked
        self._stacked = known
        return stacked

    async def _serve(self, link: SspLink) -> None:
        loop = asyncio.get_running_loop()
        poll_s = self.settings.poll_ms / 1000
        next_poll = loop.time()
        while True:
            next_poll = max(next_poll + poll_s, loop.time())
            await asyncio.sleep(next_poll - loop.time())
            await self._poll(link)

    # -- inhibit -----------------------------------------------------------------------------

    async def set_inhibit(self, inhibited: bool) -> None:
        """Disable and inhibit every channel, or enable the channels of the notes taken here.

        Without a connection (``kioskd safe-state``) the port is opened for it.

        Raises:
            Offline: the validator does not answer or the port is missing.
            ProtocolError: it answers broken packets or refuses.

        """
        link = self._link
        if link is not None:
            await self._write_inhibit(link, inhibited=inhibited)
            return
        port, link = await self._open_link_once_free()
        async with port:
            await self._start(link)
            await self._write_inhibit(link, inhibited=inhibited)

    async def _open_link_once_free(self) -> tuple[SerialPort, SspLink]:
        for _ in range(SAFE_STATE_OPEN_ATTEMPTS - 1):
            with contextlib.suppress(Offline):
                return await self._open_link()
            await asyncio.sleep(0.1)  # the supervisor's task may still be releasing the port
        return await self._open_link()

    async def _write_inhibit(self, link: SspLink, *, inhibited: bool) -> None:
        if inhibited:
            await link.command(Command.DISABLE)
            await link.command(Command.SET_INHIBITS, inhibit_mask(set()))
            return
        wanted = set(self.note_values)
        channels = {channel for channel, value in self._table.items() if value in wanted}
        await link.command(Command.SET_INHIBITS, inhibit_mask(channels))
        await link.command(Command.ENABLE)

    # -- events ------------------------------------------------------------------------------

    async def _poll(self, link: SspLink) -> None:
        events = await link.command(Command.POLL_WITH_ACK if self._with_ack else Command.POLL)
        await self._process(link, events)

    async def _process(self, link: SspLink, data: bytes) -> None:
        events = parse_events(data)
        faults = {e.code for e in events if e.code in FAULT_EVENTS}
        if faults - self._faults:
            log.warning("%s: validator fault %s", self.id, sorted(Event(f).name for f in faults))
            if self._held is not None or Event.UNSAFE_JAM in faults:
                self.note_rejected(NoteRejectReason.JAM)
        if faults != self._faults:
            self._faults = faults
            self._refresh_condition()
        acked = False
        for event in events:
            acked |= await self._event(link, event)
        if acked:
            with contextlib.suppress(Refused):  # nothing to acknowledge after all
                await link.command(Command.EVENT_ACK)

    async def _event(self, link: SspLink, event: PollEvent) -> bool:  # noqa: C901 - one dispatch
        """Process one event; True when it waits for EVENT ACK (poll with ack)."""
        code, channel = event.code, event.channel
        if code == Event.READ and channel:
            await self._escrowed(link, channel)
        elif code in (Event.CREDIT, Event.NOTE_CLEARED_INTO_CASHBOX):
            await self._credit(link, channel)
            return self._with_ack
        elif code == Event.REJECTED:
            await self._rejected(link)
        elif code == Event.NOTE_CLEARED_FROM_FRONT:
            self._held = None
            self.note_returned(self._table.get(channel))
        elif code == Event.FRAUD_ATTEMPT:
            self._held = None
            await self.fraud_detected("notePulledBack" if channel else "fraudAttempt")
            return self._with_ack
        elif code == Event.STACKER_FULL:
            await self.stacker_changed(StackerState.FULL)
        elif code == Event.CASHBOX_REMOVED:
            await self.stacker_changed(StackerState.REMOVED)
        elif code == Event.CASHBOX_REPLACED:
            await self.stacker_changed(StackerState.OK)
        elif code == Event.SLAVE_RESET:
            if self._held is not None:
                self._held = None
                self.note_returned()
            if self._starting:  # it powered up since the last run; start-up applies the inhibit
                log.info("%s: the validator reset before this connection", self.id)
            elif not self.deposits.leaving:
                log.warning("%s: the validator reset", self.id)
                await self.hardware_ready()  # it powered up disabled: apply the deposit's wish
        return False

    async def _escrowed(self, link: SspLink, channel: int) -> None:
        if self._held is not None and self._held[0] == channel:
            return  # READ repeats while the note is held
        value = self._table.get(channel)
        if value is None:
            log.warning("%s: a note of channel %d, not ours, held: returned", self.id, channel)
            self._held = (channel, Verdict.RETURN)
            await self._reject(link)
            return
        verdict = self.note_escrowed(value)
        self._held = (channel, verdict)
        if verdict is Verdict.RETURN:
            await self._reject(link)

    async def _reject(self, link: SspLink) -> None:
        """REJECT the note in escrow; one already gone (returned on its own) is no error."""
        try:
            await link.command(Command.REJECT)
        except Refused as exc:
            if exc.response != Response.CANNOT_PROCESS:
                raise
            log.info("%s: the note left escrow before REJECT", self.id)

    async def _credit(self, link: SspLink, channel: int) -> None:
        """A note is past the credit point: commit it with the validator's stacked count."""
        self._held = None
        value = self._table.get(channel)
        counter = await self._stacked_count(link)
        if counter is not None and self._stacked is not None and counter <= self._stacked:
            log.warning("%s: credit of stacked note %d already recorded", self.id, counter)
            return
        if value is None:
            await self.events_lost(1, LostReason.UNKNOWN_CHANNEL, event_counter=counter)
        else:
            await self.note_stacked(value, counter)
        if counter is not None:
            self._stacked = counter

    async def _stacked_count(self, link: SspLink) -> int | None:
        if self._stacked is None:
            return None
        counters = await link.command(Command.GET_COUNTERS)
        return int.from_bytes(counters[1:5], "little")

    async def _rejected(self, link: SspLink) -> None:
        escrow, self._held = self._held, None
        if escrow is not None:
            self.note_returned()
            return
        try:
            reply = await link.command(Command.LAST_REJECT_CODE)
            code = reply[0] if reply else 0
        except Refused:
            code = 0
        if code in FROM_ESCROW:
            self.note_returned()
        elif code in UNRECOGNISED:
            self.note_rejected(NoteRejectReason.UNKNOWN_NOTE)
        else:
            self.note_rejected(NoteRejectReason.VALIDATION_FAILED)
