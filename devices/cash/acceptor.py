"""Base of every acceptor device class that owns a deposit (coins, banknotes).

:class:`DepositAcceptor` puts a :class:`devices.cash.deposit.DepositService`
(commit before publish, inhibit outside a deposit, crash recovery, cash box) on
the wire once for every acceptor class: the ``depositStart``, ``depositEnd``
and ``depositStatus`` commands, the ``depositEnded``, ``depositRecovered``,
``fraudAttempt`` and ``eventsLost`` events, and the driver calls around them.
A class adds only what differs: its credit event (:meth:`~DepositAcceptor.on_credit`),
its state detail (:meth:`~DepositAcceptor.on_status`), its capabilities and what
its hardware adds (escrow for notes).

Driver contract: call :meth:`~DepositAcceptor.open_ledger` first in ``run()``,
then credit what the acceptor buffered (with its event counter), then
:meth:`~DepositAcceptor.hardware_ready` once the acceptor answers.  A credit may
await :meth:`~DepositAcceptor.set_inhibit`, so call it without holding the lock
that ``set_inhibit`` needs (e.g. the serial link's), and keep every I/O of
``set_inhibit`` under its own timeout.

A board's acceptors take one deposit together (a fee paid in coins and notes):
the daemon joins them to one :class:`~devices.cash.deposit.Till`
(:func:`share_one_till`); ``depositStart`` on any of them opens the board's
deposit, ``depositEnd`` and ``depositStatus`` on any answer for it, and
``depositEnded`` comes once, from the device it was started on, with what each
acceptor took (``devices``).
"""

from __future__ import annotations

import abc
import logging
from collections.abc import Iterable
from typing import ClassVar

from devices.base import (
    UNREACHABLE,
    CommandContext,
    DetailT_co,
    Device,
    DeviceEnv,
    DeviceHost,
    DeviceState,
    SettingsT_co,
    command,
)
from devices.cash.deposit import DepositService, DepositStatus, Till
from devices.cash.ledger import LEDGER_FILE, Credit, EndReason, LostReason, TransactionRecord
from devices.coin_acceptor.messages import (
    DEFAULT_DEPOSIT_TIMEOUT_MS,
    MAX_DEPOSIT_TIMEOUT_MS,
    DepositEnded,
    DepositEndParams,
    DepositStarted,
    DepositStartParams,
    DepositStatusParams,
    DepositStatusResult,
    DepositTransaction,
    EventsLost,
    FraudDetected,
    shares_message,
    transaction_message,
)

log = logging.getLogger(__name__)


class DepositAcceptor(Device[SettingsT_co, DetailT_co]):
    """An acceptor that owns a :class:`DepositService` as its ``DepositOwner``.

    Subclasses set :attr:`deposit_item` and provide :attr:`currency`,
    :attr:`cash_box_capacity`, :meth:`on_status` and :meth:`on_credit`;
    drivers provide :meth:`set_inhibit`.
    """

    #: What one credit is (``coin``, ``note``), as the deposit service names it in logs.
    deposit_item: ClassVar[str]

    def __init__(
        self, device_id: str, host: DeviceHost, env: DeviceEnv, settings: SettingsT_co
    ) -> None:
        super().__init__(device_id, host, env, settings)
        #: The deposits, the ledger and the inhibit of this acceptor.
        self.deposits = DepositService(self, device_id, item=self.deposit_item)

    @property
    @abc.abstractmethod
    def currency(self) -> str:
        """ISO 4217 code of the money this acceptor takes (``VND``)."""

    @property
    @abc.abstractmethod
    def cash_box_capacity(self) -> int:
        """Items the cash box holds before it is ``full``."""

    # -- what drivers provide ----------------------------------------------------------------

    @abc.abstractmethod
    async def set_inhibit(self, inhibited: bool) -> None:
        """Make the hardware refuse (True) or accept (False) money.

        Raises:
            Offline: the acceptor does not answer.
            HardwareError: the acceptor refused or misbehaved.

        """

    def acceptor_condition(self) -> DeviceState:
        """Condition of a connected acceptor; classes and drivers extend it with their faults."""
        return self.deposits.condition

    async def drain(self) -> None:
        """Credit what a buffering acceptor took before the stop's inhibit.

        Called by :meth:`safe_state` when the ledger is open.  Drivers whose
        hardware reports each item as it happens need nothing here; a driver
        that reads a buffer (ccTalk coins) reads it once more, so an item that
        went in after the last read is recorded and announced by the run that
        saw it.  Failures are logged, never raised: the items stay in the
        acceptor's buffer for the next start.
        """

    # -- what drivers call -------------------------------------------------------------------

    async def open_ledger(self) -> None:
        """Open the ledger once per device object and recover a crashed run's deposits.

        Drivers call it first in ``run()``; see :meth:`DepositService.open`.

        Raises:
            LedgerError: the ledger cannot be opened or read.

        """
        await self.deposits.open(self.env.state_dir / LEDGER_FILE)

    async def hardware_ready(self) -> None:
        """Drivers call it each time the acceptor answers (again): sets inhibit and condition.

        The fraud latch of the previous connection is cleared.  The first call
        after :meth:`open_ledger` ends crash recovery: every unsettled
        transaction is announced with ``depositRecovered`` before the device
        goes online.

        Raises:
            DeviceError: from :meth:`set_inhibit`.
            LedgerError: the unsettled transactions cannot be read.

        """
        await self.deposits.hardware_ready()
        self.set_condition(self.acceptor_condition())

    async def events_lost(
        self, count: int | None, reason: LostReason, *, event_counter: int | None = None
    ) -> None:
        """Report acceptor events the daemon could not see: ledger first, then ``eventsLost``.

        ``count`` is None when unknown (see :meth:`DepositService.record_lost`).

        Raises:
            NotReady: the ledger is not open yet.
            LedgerError: the report could not be recorded.

        """
        await self.deposits.record_lost(count, reason, event_counter=event_counter)

    async def save_event_counter(self, counter: int) -> None:
        """Persist the acceptor's event counter after events that credited nothing.

        Raises:
            NotReady: the ledger is not open yet.
            LedgerError: the ledger cannot be written.

        """
        await self.deposits.save_event_counter(counter)

    async def last_event_counter(self) -> int | None:
        """Return the acceptor event counter last processed (credit or not).

        Raises:
            NotReady: the ledger is not open yet.
            LedgerError: the ledger cannot be read.

        """
        return await self.deposits.last_event_counter()

    async def fraud_detected(self, reason: str) -> None:
        """Report manipulation: ``fraudAttempt`` event and state, acceptor inhibited.

        The state stays ``fraudAttempt`` until the acceptor connects again
        (:meth:`hardware_ready`); an active deposit stays open for the UI to end.

        Raises:
            DeviceError: from :meth:`set_inhibit`.

        """
        log.warning("%s: fraud attempt reported: %s", self.id, reason)
        self.emit("fraudAttempt", FraudDetected(reason=reason))
        await self.deposits.fraud()

    async def refresh_cash_box(self) -> None:
        """Re-read the cash box counters, e.g. after ``kioskd ledger collect`` emptied it.

        Raises:
            NotReady: the ledger is not open yet.
            LedgerError: the ledger cannot be read.
            DeviceError: from :meth:`set_inhibit`.

        """
        await self.deposits.refresh_cash_box()

    # -- commands ----------------------------------------------------------------------------

    # Not interruptible: opening or ending a transaction is a few ms of ledger and
    # hardware I/O (each under its own timeout); stopping it half-way would leave the
    # ledger and the acceptor disagreeing.  The max equals the longest transaction
    # timeout because the request's timeoutMs doubles as the transaction timeout.
    @command(
        "depositStart",
        DepositStartParams,
        DepositStarted,
        10_000,
        MAX_DEPOSIT_TIMEOUT_MS,
        side_effect=True,
        interruptible=False,
    )
    async def deposit_start(
        self,
        params: DepositStartParams,
        ctx: CommandContext,
    ) -> DepositStarted:
        """Open a transaction and enable the acceptor; completes at once.

        Raises:
            InvalidData: the currency is not the acceptor's.
            SequenceError: a deposit is already active.
            MediaError: the cash box (stacker) is full.
            FraudAttempt: the acceptor reported manipulation.
            HardwareError: the acceptor or the ledger failed.
            NotReady: the ledger is not open, the acceptor not connected or (notes)
                its stacker removed.

        """
        timeout_ms = params.timeout_ms or DEFAULT_DEPOSIT_TIMEOUT_MS
        record = await self.deposits.start(
            params.currency, params.amount_due, timeout_ms, ctx.client_id
        )
        assert record.deadline_ms is not None
        return DepositStarted(
            transaction_id=record.id,
            timeout_ms=timeout_ms,
            deadline_ts=record.deadline_ms,
        )

    @command(
        "depositEnd",
        DepositEndParams,
        DepositTransaction,
        10_000,
        30_000,
        side_effect=True,
        interruptible=False,
    )
    async def deposit_end(
        self,
        params: DepositEndParams,
        ctx: CommandContext,
    ) -> DepositTransaction:
        """End the active transaction, or settle an ``unknown`` one; returns it.

        Only the requester that started the active transaction, or staff
        (``ctx.staff``), may end it; anyone may settle an ``unknown`` one (see
        :meth:`DepositService.end`).  A note held in escrow for it is stacked or
        returned first (at most 10 s).  The board's deposit ends here whichever of
        its acceptors it was started on.

        Raises:
            InvalidData: no transaction of the board's acceptors has that id.
            Forbidden: another requester's active transaction, and the requester
                is not staff.
            NotReady: the ledger is not open yet.
            LedgerError: the ledger failed.

        """
        record = await self.deposits.end(params.transaction_id, ctx.client_id, staff=ctx.staff)
        return transaction_message(record)

    @command("depositStatus", DepositStatusParams, DepositStatusResult, 2_000, 10_000, queued=False)
    async def deposit_status(
        self,
        params: DepositStatusParams,
        _ctx: CommandContext,
    ) -> DepositStatusResult:
        """One transaction by id, or the active one and every unsettled one.

        The active one is the board's deposit, whichever acceptor it was started on.

        Raises:
            InvalidData: no transaction of the board's acceptors has that id.
            NotReady: the ledger is not open yet.
            LedgerError: the ledger failed.

        """
        records = await self.deposits.transactions(params.transaction_id)
        return DepositStatusResult(transactions=[transaction_message(r) for r in records])

    # -- lifecycle ---------------------------------------------------------------------------

    async def safe_state(self) -> None:
        """Inhibit the acceptor for good, whatever the deposit state; then :meth:`drain`.

        The device is being left (daemon stop, ``kioskd safe-state``): nothing
        enables the acceptor afterwards.  In a daemon (the ledger is open) what
        the acceptor took before the inhibit is then credited.

        Raises:
            DeviceError: from :meth:`set_inhibit`.

        """
        await self.deposits.leave()
        if self.deposits.ledger is not None:
            await self.drain()

    async def aclose(self) -> None:
        """Stop the deposit task and close the ledger (daemon shutdown).

        An active deposit stays ``active`` in the ledger and is recovered as
        ``unknown`` at the next start, like after a crash.
        """
        await self.deposits.aclose()

    # -- what the deposit service reports (it calls these as its DepositOwner) ---------------

    @abc.abstractmethod
    def on_status(self, status: DepositStatus) -> None:
        """Show the deposit status in the state detail."""

    def on_condition(self) -> None:
        """Recompute the condition of a connected acceptor."""
        self._refresh_condition()

    @abc.abstractmethod
    def on_credit(self, credit: Credit) -> None:
        """Announce a committed item (the class's credit event)."""

    def on_deposit_ended(self, record: TransactionRecord, reason: EndReason) -> None:
        """Announce the end of a deposit (``depositEnded``)."""
        self.emit(
            "depositEnded",
            DepositEnded(
                transaction_id=record.id,
                total=record.total,
                reason=reason,
                amount_due=record.amount_due,
                overpayment_amount=record.overpayment,
                overpayment=record.overpayment,
                devices=shares_message(record),
            ),
        )

    def on_recovered(self, record: TransactionRecord) -> None:
        """Announce an unsettled transaction (``depositRecovered``)."""
        self.emit("depositRecovered", transaction_message(record))

    def on_events_lost(
        self, count: int | None, reason: LostReason, transaction_id: str | None
    ) -> None:
        """Announce acceptor events the daemon could not see (``eventsLost``)."""
        self.emit(
            "eventsLost", EventsLost(count=count, reason=reason, transaction_id=transaction_id)
        )

    def _refresh_condition(self) -> None:
        """Set the condition from :meth:`acceptor_condition` unless the device is unreachable."""
        if self.condition not in UNREACHABLE:
            self.set_condition(self.acceptor_condition())


def share_one_till(devices: Iterable[object]) -> None:
    """Join every acceptor among ``devices`` (one board's) to one till: one deposit across them.

    Call once, before any of them runs (the daemon does, when it creates its devices).
    """
    till = Till()
    for device in devices:
        if isinstance(device, DepositAcceptor):
            device.deposits.join(till)
