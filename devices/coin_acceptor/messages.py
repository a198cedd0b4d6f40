"""The wire messages of the ``coinAcceptor`` class: parameters, results, events, state detail.

Amounts are whole currency units (VND); times are Unix epoch ms.  These types
are the wire schema: ``docs/api.md`` and the AsyncAPI document are generated
from them (v1 only grows: fields are added, never renamed).
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

from msgspec import Meta, field

from devices.base import Message, Params
from devices.cash.ledger import EndReason, LostReason, TransactionRecord, TransactionState

#: Transaction timeout when ``depositStart`` gives none, in ms.
DEFAULT_DEPOSIT_TIMEOUT_MS = 120_000
#: Longest transaction timeout ``depositStart`` accepts, in ms.
MAX_DEPOSIT_TIMEOUT_MS = 600_000

Amount = Annotated[int, Meta(gt=0, description="whole currency units (VND)")]
Currency = Annotated[str, Meta(pattern=r"^[A-Z]{3}$", description="ISO 4217 code")]
#: A transaction id a client names (the daemon makes them: UUIDs, 36 characters).
TransactionRef = Annotated[str, Meta(min_length=1, max_length=64)]
# v1 named two different things ``overpayment``: a flag on a coin and an amount on a
# transaction.  Both stay on the wire (v1 only adds) beside fields named for what they hold.
OverpaidFlag = Annotated[
    bool, Meta(description="deprecated: use overpaid", extra_json_schema={"deprecated": True})
]
OverpaymentAmount = Annotated[
    int,
    Meta(description="deprecated: use overpaymentAmount", extra_json_schema={"deprecated": True}),
]


class CashBoxState(StrEnum):
    """Values of the detail field ``cashBox``."""

    OK = "ok"
    FULL = "full"


class RejectReason(StrEnum):
    """Values of ``coinRejected.reason``.

    ``unknownCoin``: not a coin of the acceptor's table (foreign, counterfeit).
    ``validationFailed``: the acceptor could not validate it (sensor error,
    garbled report); the citizen may try the same coin again.
    """

    UNKNOWN_COIN = "unknownCoin"
    VALIDATION_FAILED = "validationFailed"


# -- parameters ------------------------------------------------------------------------------


class DepositStartParams(Params):
    """``depositStart``.

    ``amountDue`` (whole VND) ends the deposit once reached; without it the deposit
    ends by ``depositEnd`` or its timeout.  ``timeoutMs`` (ms, default 120000, at
    most 600000) is how long the transaction takes coins; on the wire it is also
    the request's deadline key, which the request lifecycle caps at the command's
    maximum (600000), so both readings agree.
    """

    currency: Currency
    amount_due: Amount | None = None
    timeout_ms: Annotated[int, Meta(gt=0, le=MAX_DEPOSIT_TIMEOUT_MS)] | None = None


class DepositEndParams(Params):
    """``depositEnd``: the transaction to end (active) or settle (unknown)."""

    transaction_id: TransactionRef


class DepositStatusParams(Params):
    """``depositStatus``: one transaction, or without an id the active and unsettled ones."""

    transaction_id: TransactionRef | None = None


# -- results and events ----------------------------------------------------------------------


class DepositStarted(Message):
    """Result of ``depositStart``: the acceptor is enabled.

    ``timeoutMs`` is the transaction timeout in effect (ms); ``deadlineTs`` the
    wall-clock time it ends at the latest (Unix epoch ms).
    """

    transaction_id: str
    timeout_ms: int
    deadline_ts: int


class CoinRecord(Message):
    """One coin (or note) of a transaction.

    ``index`` is 1 for the first coin; ``value`` whole VND; ``ts`` Unix epoch ms;
    ``overpaid`` is true when the total after it exceeds ``amountDue``
    (``overpayment``: the same flag under its deprecated v1 name).  ``deviceId``
    is the acceptor that took it (in a deposit across a coin acceptor and a note
    validator, not always the device answering).
    """

    index: int
    value: int
    ts: int
    overpaid: bool = False
    overpayment: OverpaidFlag = False
    device_id: str | None = None


class DepositShare(Message):
    """What one acceptor took in a deposit: ``items`` coins or notes, ``total`` whole VND."""

    device_id: str
    items: int
    total: int


class DepositTransaction(Message):
    """A transaction as kept in the ledger.

    Result of ``depositEnd``, element of ``depositStatus`` and data of
    ``evt/depositRecovered``.
    Amounts are whole units of ``currency`` (VND); times are Unix epoch ms.
    ``state``: ``active|ended|unknown|settled``.  ``reason`` (``amountReached|
    timeout|ended``) is set once ended.  ``overpaymentAmount`` is the amount paid
    above ``amountDue`` (0 without one; ``overpayment``: the same amount under its
    deprecated v1 name).  ``orphan`` marks coins the acceptor took while
    no deposit was active.  ``lostEvents`` counts acceptor events reported lost
    while it was open (coins that may be in the cash box without a credit);
    ``lostUnknown`` is true when the acceptor reset and that count is unknown.
    ``devices`` is what each acceptor took, in the order of their first credit
    (a deposit across a coin acceptor and a note validator has two).
    """

    transaction_id: str
    state: TransactionState
    currency: str
    amount_due: int | None
    total: int
    overpayment_amount: int
    overpayment: OverpaymentAmount
    reason: EndReason | None
    orphan: bool
    started_ts: int
    deadline_ts: int | None
    ended_ts: int | None
    recovered_ts: int | None
    settled_ts: int | None
    coins: list[CoinRecord]
    lost_events: int = 0
    lost_unknown: bool = False
    devices: list[DepositShare] = field(default_factory=list)


class DepositStatusResult(Message):
    """Result of ``depositStatus``.

    The requested transaction, or the active one (first) and every unsettled
    (``unknown``) one.
    """

    transactions: list[DepositTransaction]


class CoinAccepted(Message):
    """``evt/coinAccepted``: a coin is in the ledger.

    ``index`` is its position in the transaction (1 = first), ``value`` and
    ``total`` (the transaction's total after it) are whole VND; ``overpaid`` is
    true when ``total`` exceeds ``amountDue`` (``overpayment``: the same flag under
    its deprecated v1 name; the amount comes with ``depositEnded``).
    """

    transaction_id: str
    index: int
    value: int
    total: int
    overpaid: bool = False
    overpayment: OverpaidFlag = False


class CoinRejected(Message):
    """``evt/coinRejected``: the acceptor returned a coin.

    ``value`` (whole VND) only when the acceptor identified the coin; ``reason``
    is ``unknownCoin`` or ``validationFailed``.
    """

    reason: RejectReason
    value: int | None = None


class DepositEnded(Message):
    """``evt/depositEnded``: the transaction takes no more coins.

    ``total``, ``amountDue`` and ``overpaymentAmount`` (paid above ``amountDue``)
    are whole VND (``overpayment``: the same amount under its deprecated v1 name);
    ``reason`` is ``amountReached``, ``timeout`` or ``ended``.  ``devices`` is
    what each acceptor took (a deposit across a coin acceptor and a note validator
    is announced once, by the device it was started on, with both shares).
    """

    transaction_id: str
    total: int
    reason: EndReason
    amount_due: int | None = None
    overpayment_amount: int = 0
    overpayment: OverpaymentAmount = 0
    devices: list[DepositShare] = field(default_factory=list)


class FraudDetected(Message):
    """``evt/fraudAttempt``: the acceptor reported manipulation.

    ``reason`` is a lowerCamel code from the driver, e.g. ``coinOnString``
    (a coin pulled back) or ``sensorBlocked``.
    """

    reason: str


class EventsLost(Message):
    """``evt/eventsLost``: the acceptor did things the daemon could not see.

    ``count`` is how many events (coins or errors) are gone, null when unknown
    (the acceptor reset); ``reason`` is ``counterJump``, ``deviceReset`` or
    ``unknownPulseTrain``; ``transactionId`` is the deposit they happened in, if
    any.  The ledger keeps the same record for reconciliation with the cash box.
    """

    count: int | None
    reason: LostReason
    transaction_id: str | None = None


class CoinAcceptorDetail(Message):
    """State detail.

    ``inhibited``: the acceptor refuses coins (true unless a deposit takes them).
    ``transactionId``, ``total`` and ``amountDue`` (whole VND) describe the active
    deposit, null without one.  ``cashBox`` is ``ok`` or ``full``; ``cashBoxCoins``
    counts coins in it since the last collection.  ``unsettled`` counts ``unknown``
    transactions waiting for ``depositEnd``.
    """

    inhibited: bool = True
    transaction_id: str | None = None
    total: int | None = None
    amount_due: int | None = None
    cash_box: CashBoxState = CashBoxState.OK
    cash_box_coins: int = 0
    unsettled: int = 0


def transaction_message(record: TransactionRecord) -> DepositTransaction:
    """Convert a ledger transaction to its wire form."""
    return DepositTransaction(
        transaction_id=record.id,
        state=record.state,
        currency=record.currency,
        amount_due=record.amount_due,
        total=record.total,
        overpayment_amount=record.overpayment,
        overpayment=record.overpayment,
        reason=record.reason,
        orphan=record.orphan,
        started_ts=record.started_ms,
        deadline_ts=record.deadline_ms,
        ended_ts=record.ended_ms,
        recovered_ts=record.recovered_ms,
        settled_ts=record.settled_ms,
        coins=[
            CoinRecord(
                index=c.index,
                value=c.value,
                ts=c.ts_ms,
                overpaid=c.overpayment,
                overpayment=c.overpayment,
                device_id=c.device_id,
            )
            for c in record.credits
        ],
        lost_events=record.lost_events,
        lost_unknown=record.lost_unknown,
        devices=shares_message(record),
    )


def shares_message(record: TransactionRecord) -> list[DepositShare]:
    """What each acceptor took in a ledger transaction, in its wire form."""
    return [
        DepositShare(device_id=s.device_id, items=s.items, total=s.total) for s in record.shares
    ]
