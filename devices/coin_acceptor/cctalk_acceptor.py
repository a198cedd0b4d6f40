"""Driver ``cctalk``: a ccTalk coin acceptor on a serial port (9600 8N1).

Start-up (each :meth:`CctalkCoinAcceptor.run`):

1. open the ledger (crash recovery, :mod:`.protocol`), open the port;
2. simple poll (254), then read the coin table: request coin id (184) for
   channels 1-16; a channel's value is ``coin_values[n-1]`` when configured,
   else decoded from its id (``VN5K0A`` = 5000); channels whose value is in
   ``coins`` are the ones enabled for a deposit;
3. inhibit everything (231 with an empty mask, 228 master inhibit) *before*
   reading the buffer, so nothing more comes in while catching up;
4. read the buffered credits (229) and process every event the ledger has not
   seen (its event counter is stored with each credit): coins the acceptor
   took while the daemon was down are credited to the transaction the crash
   left open; more events than the buffer holds are reported as lost;
5. self-check (232), then :meth:`~.protocol.CoinAcceptor.hardware_ready`
   (the deposit semantics decide the inhibit), then poll 229 every ``poll_ms``.

Every request has a reply timeout and retries (:mod:`.cctalk_link`).  Error
codes map to events: reject and acceptance errors -> ``coinRejected``;
coin-on-string and the other fraud codes -> ``fraudAttempt`` (event and state,
acceptor inhibited); inhibited-coin codes -> nothing (the coin was not
wanted); mechanism faults -> ``coinRejected`` and a warning.  A non-zero
self-check fault code makes the device ``hardwareError`` until it clears.
"""

from __future__ import annotations

import logging
from functools import partial
from typing import Annotated

from msgspec import Meta

from devices.base import DeviceEnv, DeviceHost, DeviceState
from devices.cash.ledger import LostReason
from devices.errors import DeviceError, ProtocolError

from .cctalk import (
    CHANNELS,
    Checksum,
    CoinError,
    ErrorKind,
    Header,
    classify,
    coin_value,
    error_name,
    inhibit_mask,
    parse_buffered,
)
from .cctalk_link import CctalkLink, Nak, on_link, open_link, open_link_once_free
from .cctalk_polling import EventBuffer, NewEvent, serve
from .messages import RejectReason
from .protocol import CoinAcceptor
from .settings import CoinTable

log = logging.getLogger(__name__)

#: Reads of the coin table at most when they need retries (two alike are trusted).
COIN_TABLE_READS = 3


class CctalkSettings(CoinTable, frozen=True, forbid_unknown_fields=True):
    """``[devices.<id>]`` options of a ccTalk coin acceptor.

    ``port``: serial device (a udev symlink such as ``/dev/kiosk-coins``);
    ``baudrate`` bit/s (ccTalk: 9600, 8N1).  ``address``: the acceptor's ccTalk
    address (2 by default; the host is 1).  ``checksum``: ``simple`` or ``crc16``.
    ``echo``: single-wire bus, the host receives its own bytes (true for the
    common open-collector ccTalk wiring; false for RS-232/USB adapters with
    separate lines).  ``poll_ms``: buffered credit poll interval (<= 200, so the
    five-event buffer cannot overflow from coins alone).  ``reply_timeout_ms``:
    per request; ``retries``: further attempts after a timeout or a bad frame.
    ``self_check_ms``: fault poll interval.  ``coin_values``: value per channel
    (index 0 = channel 1, 0 = decode the coin id) for acceptors with non-standard
    ids.  The coin table options are :class:`CoinTable`'s.
    """

    port: str = "/dev/ttyUSB0"
    baudrate: Annotated[int, Meta(ge=1200, le=115_200)] = 9600
    address: Annotated[int, Meta(ge=2, le=255)] = 2
    checksum: Checksum = Checksum.SIMPLE
    echo: bool = False
    poll_ms: Annotated[int, Meta(ge=20, le=200)] = 100
    reply_timeout_ms: Annotated[int, Meta(ge=20, le=2000)] = 200
    retries: Annotated[int, Meta(ge=0, le=10)] = 2
    self_check_ms: Annotated[int, Meta(ge=100, le=60_000)] = 500
    coin_values: tuple[Annotated[int, Meta(ge=0)], ...] = ()

    def __post_init__(self) -> None:
        """Reject an empty or repetitive coin list and an over-long channel table."""
        super().__post_init__()
        if len(self.coin_values) > CHANNELS:
            raise ValueError(f"coin_values has at most {CHANNELS} channels")


class CctalkCoinAcceptor(CoinAcceptor[CctalkSettings]):
    """A ccTalk coin acceptor; see the module docstring."""

    Settings = CctalkSettings

    settings: CctalkSettings

    def __init__(
        self,
        device_id: str,
        host: DeviceHost,
        env: DeviceEnv,
        settings: CctalkSettings,
    ) -> None:
        super().__init__(device_id, host, env, settings)
        self._link: CctalkLink | None = None
        #: Value (whole units) by channel, for every channel the acceptor knows.
        self._table: dict[int, int] = {}
        self._events = EventBuffer(self, "acceptor")
        self._fault_code = 0
        self._master_inhibit = True
        self._self_check = True

    def acceptor_condition(self) -> DeviceState:
        """Return hardwareError while the self-check reports a fault, else the class's."""
        if self._fault_code:
            return DeviceState.HARDWARE_ERROR
        return super().acceptor_condition()

    # -- connection --------------------------------------------------------------------------

    async def run(self) -> None:
        """Connect, catch up with the buffer, then poll until the acceptor is lost.

        Raises:
            LedgerError: the ledger cannot be opened or written.
            Offline: the port is missing or the acceptor does not answer.
            ProtocolError: the acceptor answers only with broken frames.

        """
        await self.open_ledger()
        port, link = await open_link(self.settings)
        async with port:
            await link.request(Header.SIMPLE_POLL)
            self._table = await self._read_coin_table(link)
            self._link = link
            try:
                await self._write_inhibit(link, inhibited=True)
                await self._events.resume()
                await self._poll(link)
                await self._check(link)
                await self.hardware_ready()
                await serve(link, self.settings, self._poll, self._check)
            finally:
                self._link = None

    async def _read_coin_table(self, link: CctalkLink) -> dict[int, int]:
        """Read the coin table; when a read needed retries, read it until two reads agree.

        A coin id reply does not name its channel: a late answer taken for the
        next channel's would shift the table and credit coins at the wrong value.

        Raises:
            ProtocolError: :data:`COIN_TABLE_READS` reads, each with retries, no two alike
                (or bad frames only).
            Nak: the acceptor refuses the request.
            Offline: the acceptor stopped answering.

        """
        previous: dict[int, int] | None = None
        for _ in range(COIN_TABLE_READS):
            retried = link.retried
            table = await self._read_coin_ids(link)
            if link.retried == retried or table == previous:
                break
            log.info("%s: coin table read with retries; reading it again", self.id)
            previous = table
        else:
            raise ProtocolError(f"the coin table read differently {COIN_TABLE_READS} times")
        missing = set(self.settings.coins) - set(table.values())
        if missing:
            log.warning("%s: the acceptor has no channel for %s", self.id, sorted(missing))
        log.info("%s: coin table %s", self.id, table)
        return table

    async def _read_coin_ids(self, link: CctalkLink) -> dict[int, int]:
        overrides = self.settings.coin_values
        table: dict[int, int] = {}
        for channel in range(1, CHANNELS + 1):
            coin_id = (await link.request(Header.REQUEST_COIN_ID, bytes([channel]))).decode(
                "ascii", "replace"
            )
            configured = overrides[channel - 1] if channel <= len(overrides) else 0
            value = configured or coin_value(coin_id)
            if value is not None:
                table[channel] = value
        return table

    def _enabled_channels(self) -> set[int]:
        wanted = set(self.settings.coins)
        return {channel for channel, value in self._table.items() if value in wanted}

    # -- inhibit -----------------------------------------------------------------------------

    async def set_inhibit(self, inhibited: bool) -> None:
        """Inhibit every channel (and the master inhibit), or enable the accepted coins.

        Without a connection (``kioskd safe-state``) the port is opened for it.

        Raises:
            Offline: the acceptor does not answer or the port is missing.
            ProtocolError: the acceptor answers with broken frames.

        """
        await on_link(self._link, self.settings, partial(self._write_inhibit, inhibited=inhibited))

    async def drain(self) -> None:
        """After the stop's inhibit, read the buffer once more and credit what is new.

        A coin that went in after the last poll is recorded and announced now,
        to the deposit that took it, rather than at the next start (where an
        acceptor power-cycled meanwhile would only report a reset, count
        unknown).  Nothing to do when this run never read the coin table.
        Failures are logged: the coins stay buffered for the next start.
        """
        if not self._table:
            return
        try:
            port, link = await open_link_once_free(self.settings)
            async with port:
                # The ledger's counter: the cancelled poll may have committed a credit.
                await self._events.resume()
                await self._poll(link)
        except DeviceError as exc:
            log.warning(
                "%s: could not read the acceptor's buffer at the stop (%s);"
                " the next start credits what it holds",
                self.id,
                exc,
            )

    async def _write_inhibit(self, link: CctalkLink, *, inhibited: bool) -> None:
        mask = inhibit_mask(set() if inhibited else self._enabled_channels())
        await link.request(Header.MODIFY_INHIBIT_STATUS, mask)
        if self._master_inhibit:
            try:
                await link.request(Header.MODIFY_MASTER_INHIBIT, bytes([0 if inhibited else 1]))
            except Nak:
                # Some acceptors (e.g. the SR3) do without it; the channel mask suffices.
                log.info("%s: no master inhibit (NAK); using the channel mask", self.id)
                self._master_inhibit = False

    # -- events ------------------------------------------------------------------------------

    async def _poll(self, link: CctalkLink) -> None:
        """Read the buffer once and process what is new."""
        buffered = parse_buffered(await link.request(Header.READ_BUFFERED_CREDIT))
        await self._events.process(buffered, self._event)

    async def _event(self, event: NewEvent) -> bool:
        """Process one buffered event; True when the ledger stored its counter with it."""
        if event.channel:
            value = self._table.get(event.channel)
            if value is None:
                await self.events_lost(1, LostReason.UNKNOWN_CHANNEL, event_counter=event.counter)
                return True
            await self.coin_inserted(value, event.counter)
            return True
        code = event.code
        match classify(code):
            case ErrorKind.IGNORE | ErrorKind.INHIBITED:
                log.debug("%s: event %s", self.id, error_name(code))
            case ErrorKind.REJECTED:
                reason = (
                    RejectReason.UNKNOWN_COIN
                    if code == CoinError.REJECT_COIN
                    else RejectReason.VALIDATION_FAILED
                )
                self.coin_rejected(reason)
            case ErrorKind.FRAUD:
                await self.fraud_detected(error_name(code))
            case ErrorKind.FAULT:
                log.warning("%s: acceptor error %s; coin returned", self.id, error_name(code))
                self.coin_rejected(RejectReason.VALIDATION_FAILED)
        return False

    async def _check(self, link: CctalkLink) -> None:
        """Self-check (232): a non-zero fault code is ``hardwareError`` until it clears."""
        if not self._self_check:
            return
        try:
            reply = await link.request(Header.PERFORM_SELF_CHECK)
        except Nak:
            log.info("%s: no self-check (NAK)", self.id)
            self._self_check = False
            return
        code = reply[0] if reply else 0
        if code != self._fault_code:
            if code:
                log.warning("%s: self-check fault code %d", self.id, code)
            self._fault_code = code
            self._refresh_condition()
