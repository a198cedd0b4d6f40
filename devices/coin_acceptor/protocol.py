"""The ``coinAcceptor`` device class: deposits of coins, kept in the ledger.

The deposit semantics (commit before publish, inhibit outside a deposit, crash
recovery, cash box) are :class:`devices.cash.deposit.DepositService`'s, and its
commands and events are :class:`devices.cash.acceptor.DepositAcceptor`'s, shared
with every acceptor class; this class adds the coin events and state
(:mod:`.messages`).  Drivers only
move the hardware (:meth:`CoinAcceptor.set_inhibit`) and report what it did
(:meth:`CoinAcceptor.coin_inserted`, :meth:`CoinAcceptor.coin_rejected`,
:meth:`CoinAcceptor.fraud_detected`, :meth:`CoinAcceptor.events_lost`).

Driver contract: call :meth:`~CoinAcceptor.open_ledger` first in ``run()``, then
read what the acceptor buffered (credits through :meth:`~CoinAcceptor.coin_inserted`
with their event counter), then :meth:`~CoinAcceptor.hardware_ready` once the
acceptor answers.  :meth:`~CoinAcceptor.coin_inserted` may await
:meth:`~CoinAcceptor.set_inhibit`, so call it without holding the lock that
``set_inhibit`` needs (e.g. the serial link's), and keep every I/O of
``set_inhibit`` under its own timeout.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import ClassVar, TypeVar

from devices.base import Message
from devices.cash.acceptor import DepositAcceptor
from devices.cash.deposit import DepositStatus
from devices.cash.ledger import Credit

from .messages import (
    CashBoxState,
    CoinAccepted,
    CoinAcceptorDetail,
    CoinRejected,
    DepositEnded,
    DepositTransaction,
    EventsLost,
    FraudDetected,
    RejectReason,
)
from .settings import CoinTable

#: A driver's settings type (every one extends :class:`CoinTable`).
CoinTableT_co = TypeVar("CoinTableT_co", bound=CoinTable, covariant=True)


class CoinAcceptor(DepositAcceptor[CoinTableT_co, CoinAcceptorDetail]):
    """Base of coin acceptor drivers; see the module docstring for the semantics."""

    device_class: ClassVar[str] = "coinAcceptor"
    events: ClassVar[dict[str, type[Message]]] = {
        "coinAccepted": CoinAccepted,
        "coinRejected": CoinRejected,
        "depositEnded": DepositEnded,
        "depositRecovered": DepositTransaction,
        "fraudAttempt": FraudDetected,
        "eventsLost": EventsLost,
    }
    detail_type = CoinAcceptorDetail
    deposit_item: ClassVar[str] = "coin"

    @property
    def currency(self) -> str:
        """ISO 4217 code of the coins this acceptor takes (``VND``)."""
        return self.settings.currency

    @property
    def coin_values(self) -> Sequence[int]:
        """Values (whole currency units) of the coins the acceptor recognises."""
        return self.settings.coins

    @property
    def cash_box_capacity(self) -> int:
        """Coins the cash box holds before it is ``full``."""
        return self.settings.cash_box_capacity

    # -- what drivers call (besides the base's) ------------------------------------------------

    async def coin_inserted(self, value: int, event_counter: int | None = None) -> None:
        """Credit a coin the hardware accepted: ledger first, then ``coinAccepted``.

        ``value`` is whole currency units; ``event_counter`` the acceptor's
        counter for it, if it has one (see :meth:`DepositService.credit`).

        Raises (only when the coin is not recorded; after the commit nothing raises):
            ProtocolError: ``value`` is not positive (a driver bug).
            NotReady: the ledger is not open yet.
            LedgerError: the coin could not be recorded; the acceptor is inhibited
                and stays so until the daemon restarts.

        """
        await self.deposits.credit(value, event_counter)

    def coin_rejected(self, reason: RejectReason, value: int | None = None) -> None:
        """Report a coin the acceptor gave back; ``value`` (whole units) if it was identified."""
        self.emit("coinRejected", CoinRejected(value=value, reason=reason))

    def capabilities(self) -> Mapping[str, object]:
        """Currency, coin values (whole units) and cash box capacity (coins)."""
        return {
            "currency": self.currency,
            "coins": list(self.coin_values),
            "cashBoxCapacity": self.cash_box_capacity,
        }

    # -- what the deposit service reports, besides the base's ----------------------------------

    def on_status(self, status: DepositStatus) -> None:
        """Show the deposit status in the state detail."""
        self.update_detail(
            inhibited=status.inhibited,
            transaction_id=status.transaction_id,
            total=status.total,
            amount_due=status.amount_due,
            cash_box=CashBoxState.FULL if status.box_full else CashBoxState.OK,
            cash_box_coins=status.box_items,
            unsettled=status.unsettled,
        )

    def on_credit(self, credit: Credit) -> None:
        """Announce a committed coin (``coinAccepted``)."""
        record = credit.record
        self.emit(
            "coinAccepted",
            CoinAccepted(
                transaction_id=record.transaction_id,
                index=record.index,
                value=record.value,
                total=credit.total,
                overpaid=record.overpayment,
                overpayment=record.overpayment,
            ),
        )
