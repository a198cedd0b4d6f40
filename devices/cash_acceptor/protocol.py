"""The ``cashAcceptor`` device class: banknote deposits with escrow, kept in the ledger.

Named after XFS4IoT's CashAcceptor: a note is first held in escrow, then
either stacked (cash-in) or returned (XFS4IoT ``CashInRollback`` for one
note).  The deposit itself (commit before publish, inhibit outside a deposit,
crash recovery, the stacker as cash box) is
:class:`devices.cash.deposit.DepositService`'s, shared with the coin acceptor;
its commands and transaction record are the coinAcceptor's, both put on the wire
by :class:`devices.cash.acceptor.DepositAcceptor`.  This class adds
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

from collections.abc import Mapping, Sequence
from enum import StrEnum
from typing import ClassVar, TypeVar

from devices.base import DeviceEnv, DeviceHost, DeviceState, Message
from devices.cash.acceptor import DepositAcceptor
from devices.cash.deposit import DepositStatus
from devices.cash.ledger import Credit
from devices.coin_acceptor.messages import (
    DepositEnded,
    DepositTransaction,
    EventsLost,
    FraudDetected,
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


class Verdict(StrEnum):
    """What the daemon tells the validator to do with the note in escrow."""

    STACK = "stack"
    RETURN = "return"


#: A driver's settings type (every one extends :class:`NoteTable`).
NoteTableT_co = TypeVar("NoteTableT_co", bound=NoteTable, covariant=True)


class CashAcceptor(DepositAcceptor[NoteTableT_co, CashAcceptorDetail]):
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
    deposit_item: ClassVar[str] = "note"

    def __init__(
        self, device_id: str, host: DeviceHost, env: DeviceEnv, settings: NoteTableT_co
    ) -> None:
        super().__init__(device_id, host, env, settings)
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

    def acceptor_condition(self) -> DeviceState:
        """Condition of a connected validator: the deposit's, ``userError`` without a stacker.

        Drivers extend it with their own faults.
        """
        if self._hw_stacker is not StackerState.OK:
            return DeviceState.USER_ERROR
        return self.deposits.condition

    # -- what drivers call -------------------------------------------------------------------

    async def hardware_ready(self) -> None:
        """Forget the note in escrow (the validator returns it), then the base's.

        Raises:
            DeviceError: from :meth:`set_inhibit`.
            LedgerError: the unsettled transactions cannot be read.

        """
        self._escrow = None
        await super().hardware_ready()

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
        escrow, self._escrow = self._escrow, None
        if escrow is not None:
            if escrow[1] is not None:
                self.deposits.release(escrow[1])
            self.update_detail(escrow=None)
        await super().fraud_detected(reason)

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

    def capabilities(self) -> Mapping[str, object]:
        """Currency, note values (whole units), stacker capacity (notes), overpayment limit."""
        return {
            "currency": self.currency,
            "notes": list(self.note_values),
            "stackerCapacity": self.cash_box_capacity,
            "maxOverpayment": self.settings.max_overpayment,
            "escrow": True,
        }

    # -- what the deposit service reports, besides the base's --------------------------------

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
