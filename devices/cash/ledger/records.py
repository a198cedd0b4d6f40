"""What the ledger holds, as Python values: states, reasons, records and its error.

Amounts are whole units of the currency (VND); times are Unix epoch ms.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from devices.errors import HardwareError


class LedgerError(HardwareError):
    """The ledger could not be read or written (disk full, corrupt file, bad state).

    A :class:`HardwareError`: a technician must look at the board before the
    kiosk takes money again.
    """


class TransactionState(StrEnum):
    """Life of a deposit transaction.

    ``active`` takes coins; ``ended`` finished normally; ``unknown`` was left
    active by a crash (or holds coins taken with no deposit active) and waits
    for ``depositEnd``, which makes it ``settled``.
    """

    ACTIVE = "active"
    ENDED = "ended"
    UNKNOWN = "unknown"
    SETTLED = "settled"


class EndReason(StrEnum):
    """Why a transaction ended: ``amountDue`` reached, its deadline, or ``depositEnd``."""

    AMOUNT_REACHED = "amountReached"
    TIMEOUT = "timeout"
    ENDED = "ended"


class LostReason(StrEnum):
    """Why acceptor events went unseen (each is reported, never guessed).

    ``counterJump``: the event counter moved past more events than the acceptor
    buffers; ``deviceReset``: the counter went back to 0 (power cycle), so events
    since the previous read are unknown; ``unknownPulseTrain``: a pulse train
    that matches no coin, and ``unknownChannel``: a credit in a channel whose
    value is not configured (either way a coin of unknown value is in the box).
    """

    COUNTER_JUMP = "counterJump"
    DEVICE_RESET = "deviceReset"
    UNKNOWN_PULSE_TRAIN = "unknownPulseTrain"
    UNKNOWN_CHANNEL = "unknownChannel"


@dataclass(frozen=True, slots=True)
class CreditRecord:
    """One coin (or note) credited to a transaction.

    Attributes:
        transaction_id: the transaction it belongs to.
        index: position in the transaction, 1 for the first coin.
        value: whole currency units (VND).
        event_counter: the acceptor's event counter for it, when the hardware has one.
        ts_ms: when it was recorded, Unix epoch ms.
        overpayment: the total after it exceeds the amount due.
        device_id: the acceptor that took it (its cash box holds it); in a deposit
            across several acceptors not always the transaction's device.

    """

    transaction_id: str
    index: int
    value: int
    event_counter: int | None
    ts_ms: int
    overpayment: bool
    device_id: str


@dataclass(frozen=True, slots=True)
class DeviceShare:
    """What one acceptor took in a transaction: ``items`` coins or notes, ``total`` whole units."""

    device_id: str
    items: int
    total: int


@dataclass(frozen=True, slots=True)
class TransactionRecord:
    """A deposit transaction with its credits (amounts whole VND, times epoch ms)."""

    id: str
    device_id: str
    state: TransactionState
    currency: str
    amount_due: int | None
    total: int
    reason: EndReason | None
    orphan: bool
    started_ms: int
    timeout_ms: int | None
    deadline_ms: int | None
    ended_ms: int | None
    recovered_ms: int | None
    settled_ms: int | None
    credits: tuple[CreditRecord, ...]
    #: Acceptor events reported lost while it was open (known counts).
    lost_events: int = 0
    #: The acceptor reset while it was open: an unknown number of events may be lost.
    lost_unknown: bool = False

    @property
    def shares(self) -> list[DeviceShare]:
        """What each acceptor took, in the order of their first credit."""
        items: dict[str, int] = {}
        totals: dict[str, int] = {}
        for credit in self.credits:
            items[credit.device_id] = items.get(credit.device_id, 0) + 1
            totals[credit.device_id] = totals.get(credit.device_id, 0) + credit.value
        return [DeviceShare(d, n, totals[d]) for d, n in items.items()]

    @property
    def overpayment(self) -> int:
        """Whole currency units paid above ``amount_due`` (0 without an amount due)."""
        if self.amount_due is None:
            return 0
        return max(0, self.total - self.amount_due)


@dataclass(frozen=True, slots=True)
class CashBox:
    """What the cash box of one acceptor holds since its last collection."""

    device_id: str
    coins: int
    total: int
    since_ms: int


@dataclass(frozen=True, slots=True)
class Collection:
    """An audit row: a technician emptied a cash box (``kioskd ledger collect``)."""

    id: int
    device_id: str
    ts_ms: int
    coins: int
    total: int
    since_ms: int
    note: str


@dataclass(frozen=True, slots=True)
class LostRecord:
    """An audit row: acceptor events the daemon could not see.

    ``count`` is None when unknown (the acceptor reset); ``transaction_id`` is
    the deposit they happened in, when one was open.
    """

    id: int
    device_id: str
    transaction_id: str | None
    ts_ms: int
    count: int | None
    reason: LostReason


@dataclass(frozen=True, slots=True)
class Credit:
    """Result of recording a coin.

    Attributes:
        record: the credit row as written.
        total: the transaction's total after it, whole currency units.
        new_transaction: the credit opened a new orphan transaction.
        box: the cash box counters after it.

    """

    record: CreditRecord
    total: int
    new_transaction: bool
    box: CashBox
