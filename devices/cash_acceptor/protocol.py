"""The ``cashAcceptor`` device class: banknote deposits with escrow, kept in the ledger.

Named after XFS4IoT's CashAcceptor: a note is first held in escrow, then
either stacked (cash-in) or returned (XFS4IoT ``CashInRollback`` for one
note).  The deposit itself (commit before publish, inhibit outside a deposit,
crash recovery, the stacker as cash box) is
:class:`devices.cash.deposit.DepositService`'s, shared with the coin acceptor;
its commands and transaction record are the coinAcceptor's.  This class adds
what escrow means, once for every driver:

- :meth:`CashAcceptor.note_escrowed`: the driver reports a note held; the class
  decides :class:`Verdict` ``stack`` (an active deposit takes it) or ``return``
  (no deposit, a note this kiosk does not take, or one paying more than
  ``max_overpayment`` above ``amountDue``).  The driver then tells the
  validator, and reports what it did:
- :meth:`CashAcceptor.note_stacked`: credited only now, ledger first
  (``noteStacked``); :meth:`CashAcceptor.note_returned` (``noteReturned``).
- :meth:`CashAcceptor.note_rejected`, :meth:`CashAcceptor.fraud_detected`,
  :meth:`CashAcceptor.stacker_changed` report the rest.

Driver contract: as the coin acceptor's (``open_ledger`` first in ``run()``,
credits of notes stacked while the daemon was down, then ``hardware_ready``).
A note in escrow when the daemon stops is never credited: the validator
returns it when its host goes silent (SSP: hold times out) or the driver
returns it when it connects again.
"""

from __future__ import annotations

import abc
import logging
from collections.abc import Mapping, Sequence
from enum import StrEnum
from typing import ClassVar, TypeVar

from devices.base import (
    UNREACHABLE,
    CommandContext,
    Device,
    DeviceEnv,
    DeviceHost,
    DeviceState,
    Message,
    command,
)
from devices.cash.deposit import DepositService, DepositStatus
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
    transaction_message,
)

from .messages import (
    CashAcceptorDetail,
    NoteEscrowed,
    NoteRejected,
    NoteRejectReason,
    NoteReturned,
    NoteStacked,
    ReturnReason,
    StackerReport,
    StackerState,
)
from .settings import NoteTable

log = logging.getLogger(__name__)


class Verdict(StrEnum):
    """What the daemon tells the validator to do with the note in escrow."""

    STACK = "stack"
    RETURN = "return"


#: A driver's settings type (every one extends :class:`NoteTable`).
NoteTableT_co = TypeVar("NoteTableT_co", bound=NoteTable, covariant=True)


class CashAcceptor(Device[NoteTableT_co, CashAcceptorDetail]):
    """Base of banknote validator drivers; see the module docstring for the semantics."""

    device_class: ClassVar[str] = "cashAcceptor"
    events: ClassVar[dict[str, type[Message]]] = {
        "noteEscrowed": NoteEscrowed,
        "noteStacked": NoteStacked,
        "noteReturned": NoteReturned,
        "noteRejected": NoteRejected,
        "depositEnded": DepositEnded,
        "depositRecovered": DepositTransaction,
        "fraudAttempt": FraudDetected,
        "eventsLost": EventsLost,
        "stackerFull": StackerReport,
        "stackerRemoved": StackerReport,
    }
    detail_type = CashAcceptorDetail

    def __init__(
        self, device_id: str, host: DeviceHost, env: DeviceEnv, settings: NoteTableT_co
    ) -> None:
        super().__init__(device_id, host, env, settings)
        #: The deposits, the ledger and the inhibit of this validator.
        self.deposits = DepositService(self, device_id, item="note")
        # The note in escrow: its value, the deposit holding it (None: going back) and why
        # it goes back.
        self._escrow: tuple[int, str | None, ReturnReason | None] | None = None
        self._hw_stacker = StackerState.OK

    @property
    def currency(self) -> str:
        """ISO 4217 code of the notes this validator takes (``VND``)."""
        return self.settings.currency

    @property
    def note_values(self) -> Sequence[int]:
        """Values (whole currency units) of the notes this kiosk takes."""
        return self.settings.notes

    @property
    def cash_box_capacity(self) -> int:
        """Notes the stacker holds before it is ``full`` (the deposit service's cash box)."""
        return self.settings.stacker_capacity

    # -- what drivers provide ----------------------------------------------------------------

    @abc.abstractmethod
    async def set_inhibit(self, inhibited: bool) -> None:
        """Make the validator refuse (True) or accept (False) notes.

        Raises:
            Offline: the validator does not answer.
            HardwareError: the validator refused or misbehaved.

        """

    def acceptor_condition(self) -> DeviceState:
        """Condition of a connected validator: the deposit's, ``userError`` without a stacker.

        Drivers extend it with their own faults.
        """
        if self._hw_stacker is not StackerState.OK:
            return DeviceState.USER_ERROR
        return self.deposits.condition

    # -- what drivers call -------------------------------------------------------------------

    async def open_ledger(self) -> None:
        """Open the ledger and recover a crashed run's deposits (see the coin acceptor's).

        Raises:
            LedgerError: the ledger cannot be opened or read.

        """
        await self.deposits.open(self.env.state_dir / LEDGER_FILE)

    async def hardware_ready(self) -> None:
        """Drivers call it each time the validator answers (again): inhibit and condition.

        Raises:
            DeviceError: from :meth:`set_inhibit`.
            LedgerError: the unsettled transactions cannot be read.

        """
        self._escrow = None
        await self.deposits.hardware_ready()
        self.set_condition(self.acceptor_condition())

    def note_escrowed(self, value: int) -> Verdict:
        """Decide on a note of ``value`` (whole units) held in escrow: stack it or return it.

        Announces ``noteEscrowed``.  On ``stack`` the active deposit waits for
        :meth:`note_stacked` (or :meth:`note_returned`) before it ends.
        """
        reason: ReturnReason | None = None
        tx_id: str | None = None
        deposit = self.deposits.status
        if value not in self.note_values:
            reason = ReturnReason.NOT_ACCEPTED
        elif (
            deposit.amount_due is not None
            and deposit.total is not None
            and deposit.total + value > deposit.amount_due + self.settings.max_overpayment
        ):
            reason = ReturnReason.OVERPAYMENT
        else:
            tx_id = self.deposits.hold()
            if tx_id is None:
                reason = ReturnReason.DEPOSIT_OVER
        self._escrow = (value, tx_id, reason)
        self.update_detail(escrow=value)
        self.emit("noteEscrowed", NoteEscrowed(value=value, transaction_id=tx_id))
        return Verdict.RETURN if reason is not None else Verdict.STACK

    async def note_stacked(self, value: int, event_counter: int | None = None) -> None:
        """Credit a note the validator reports stacked: ledger first, then ``noteStacked``.

        ``value`` is whole units; ``event_counter`` as for the coin acceptor.  A
        note stacked that the daemon did not see escrowed (stacked while the
        daemon was down) is credited the same way.

        Raises (only when the note is not recorded; after the commit nothing raises):
            ProtocolError: ``value`` is not positive (a driver bug).
            NotReady: the ledger is not open yet.
            LedgerError: the note could not be recorded; the validator is inhibited.

        """
        escrow, self._escrow = self._escrow, None
        try:
            await self.deposits.credit(value, event_counter)
        finally:
            if escrow is not None:
                self.update_detail(escrow=None)
                if escrow[1] is not None:
                    self.deposits.release(escrow[1])

    def note_returned(self, value: int | None = None) -> None:
        """Report the note in escrow given back (``noteReturned``), ``value`` if known."""
        escrow, self._escrow = self._escrow, None
        reason = ReturnReason.VALIDATOR
        if escrow is not None:
            value = escrow[0] if value is None else value
            reason = escrow[2] or ReturnReason.VALIDATOR
            if escrow[1] is not None:
                self.deposits.release(escrow[1])
            self.update_detail(escrow=None)
        self.emit("noteReturned", NoteReturned(reason=reason, value=value))

    def note_rejected(self, reason: NoteRejectReason) -> None:
        """Report a note the validator refused before escrow (``noteRejected``)."""
        self.emit("noteRejected", NoteRejected(reason=reason))

    async def fraud_detected(self, reason: str) -> None:
        """Report manipulation: ``fraudAttempt`` event and state, validator inhibited.

        A note in escrow is not credited (it was pulled back, or is suspect).

        Raises:
            DeviceError: from :meth:`set_inhibit`.

        """
        log.warning("%s: fraud attempt reported: %s", self.id, reason)
        escrow, self._escrow = self._escrow, None
        if escrow is not None:
            if escrow[1] is not None:
                self.deposits.release(escrow[1])
            self.update_detail(escrow=None)
        self.emit("fraudAttempt", FraudDetected(reason=reason))
        await self.deposits.fraud()

    async def stacker_changed(self, stacker: StackerState) -> None:
        """The validator reports its stacker ``ok``, ``full`` or ``removed``.

        ``full`` and ``removed`` are announced (``stackerFull``, ``stackerRemoved``)
        and inhibit the validator until ``ok``.

        Raises:
            DeviceError: from :meth:`set_inhibit`.

        """
        if stacker is self._hw_stacker:
            return
        self._hw_stacker = stacker
        notes = self.deposits.status.box_items
        if stacker is StackerState.FULL:
            self.emit("stackerFull", StackerReport(notes=notes))
        elif stacker is StackerState.REMOVED:
            self.emit("stackerRemoved", StackerReport(notes=notes))
        self.on_status(self.deposits.status)
        await self.deposits.block(stacker is not StackerState.OK)

    async def events_lost(
        self, count: int | None, reason: LostReason, *, event_counter: int | None = None
    ) -> None:
        """Report validator events the daemon could not see: ledger first, then ``eventsLost``.

        Raises:
            NotReady: the ledger is not open yet.
            LedgerError: the report could not be recorded.

        """
        await self.deposits.record_lost(count, reason, event_counter=event_counter)

    async def refresh_cash_box(self) -> None:
        """Re-read the stacker counters, e.g. after ``kioskd ledger collect`` emptied it.

        Raises:
            NotReady: the ledger is not open yet.
            LedgerError: the ledger cannot be read.
            DeviceError: from :meth:`set_inhibit`.

        """
        await self.deposits.refresh_cash_box()

    # -- commands ----------------------------------------------------------------------------

    # As coinAcceptor's: not interruptible (ledger and hardware I/O of a few ms, each
    # under its own timeout); the request's timeoutMs doubles as the transaction's.
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
        """Open a transaction and enable the validator; completes at once.

        Raises:
            InvalidData: the currency is not the validator's.
            SequenceError: a deposit is already active.
            MediaError: the stacker is full.
            FraudAttempt: the validator reported manipulation.
            HardwareError: the validator or the ledger failed.
            NotReady: the ledger is not open, the validator not connected or its
                stacker removed.

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

        A note held for it is stacked or returned first (at most 10 s).

        Raises:
            InvalidData: no transaction of this device has that id.
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

        Raises:
            InvalidData: no transaction of this device has that id.
            NotReady: the ledger is not open yet.
            LedgerError: the ledger failed.

        """
        records = await self.deposits.transactions(params.transaction_id)
        return DepositStatusResult(transactions=[transaction_message(r) for r in records])

    # -- lifecycle ---------------------------------------------------------------------------

    async def safe_state(self) -> None:
        """Inhibit the validator for good, whatever the deposit state.

        Raises:
            DeviceError: from :meth:`set_inhibit`.

        """
        await self.deposits.leave()

    async def aclose(self) -> None:
        """Stop the deposit task and close the ledger (an active deposit becomes unknown)."""
        await self.deposits.aclose()

    def capabilities(self) -> Mapping[str, object]:
        """Currency, note values (whole units), stacker capacity (notes), overpayment limit."""
        return {
            "currency": self.currency,
            "notes": list(self.note_values),
            "stackerCapacity": self.cash_box_capacity,
            "maxOverpayment": self.settings.max_overpayment,
            "escrow": True,
        }

    # -- what the deposit service reports (it calls these as its DepositOwner) ---------------

    def on_status(self, status: DepositStatus) -> None:
        """Show the deposit status and the stacker in the state detail."""
        stacker = self._hw_stacker
        if stacker is StackerState.OK and status.box_full:
            stacker = StackerState.FULL
        if (
            stacker is StackerState.FULL
            and self._hw_stacker is StackerState.OK
            and self._shown_stacker() is not StackerState.FULL
        ):
            self.emit("stackerFull", StackerReport(notes=status.box_items))
        self.update_detail(
            inhibited=status.inhibited,
            transaction_id=status.transaction_id,
            total=status.total,
            amount_due=status.amount_due,
            stacker=stacker,
            stacker_notes=status.box_items,
            unsettled=status.unsettled,
        )

    def _shown_stacker(self) -> StackerState:
        return self.detail.stacker

    def on_condition(self) -> None:
        """Recompute the condition of a connected validator."""
        self._refresh()

    def on_credit(self, credit: Credit) -> None:
        """Announce a committed note (``noteStacked``)."""
        record = credit.record
        self.emit(
            "noteStacked",
            NoteStacked(
                transaction_id=record.transaction_id,
                index=record.index,
                value=record.value,
                total=credit.total,
                overpaid=record.overpayment,
            ),
        )

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
            ),
        )

    def on_recovered(self, record: TransactionRecord) -> None:
        """Announce an unsettled transaction (``depositRecovered``)."""
        self.emit("depositRecovered", transaction_message(record))

    def on_events_lost(
        self, count: int | None, reason: LostReason, transaction_id: str | None
    ) -> None:
        """Announce validator events the daemon could not see (``eventsLost``)."""
        self.emit(
            "eventsLost", EventsLost(count=count, reason=reason, transaction_id=transaction_id)
        )

    def _refresh(self) -> None:
        if self.condition not in UNREACHABLE:
            self.set_condition(self.acceptor_condition())
