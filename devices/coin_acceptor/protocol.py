"""The ``coinAcceptor`` device class: deposits with a durable ledger.

Drivers only move the hardware (:meth:`CoinAcceptor.set_inhibit`) and report
what it did (:meth:`CoinAcceptor.coin_inserted`, :meth:`CoinAcceptor.coin_rejected`,
:meth:`CoinAcceptor.fraud_detected`); this class holds the deposit semantics
shared by every driver:

- ``depositStart`` opens a transaction in the ledger, enables the acceptor and
  completes at once with its id.  The transaction then lives on its own, in a
  task owned by the device, until ``amountDue`` is reached, its deadline passes
  (the loop's monotonic clock) or ``depositEnd`` asks; each of these inhibits
  the acceptor, ends the transaction in the ledger and emits ``depositEnded``.
- Every coin is committed to the ledger (fsynced) *before* ``coinAccepted`` is
  emitted.  A coin the hardware took while no deposit was active (it should
  have been inhibited) is never dropped: it is recorded in an ``unknown``
  orphan transaction and announced like any other.
- The acceptor is inhibited at start and whenever no deposit takes coins
  (none active, ending, cash box full, fraud, ledger failure).
- At the first start of the device object, transactions a crashed run left
  ``active`` become ``unknown`` with every coin and are counted in the state
  detail (``unsettled``).  Coins an acceptor buffered while the daemon was down
  (ccTalk's event buffer) are credited to the transaction the crash left open,
  until the driver first reports :meth:`hardware_ready`; events that fell out
  of the buffer are reported with their count (:meth:`events_lost`), never
  guessed.  Then every unsettled transaction is announced once per start with
  ``depositRecovered``; ``depositEnd`` settles one.
- When the cash box holds its capacity of coins the acceptor is inhibited and
  the device is ``userError`` with ``cashBox: full`` until a collection
  (:meth:`CoinAcceptor.refresh_cash_box` re-reads the counters).

Driver contract: call :meth:`open_ledger` first in ``run()``, then read what
the acceptor buffered (credits through :meth:`coin_inserted` with their event
counter), then :meth:`hardware_ready` once the acceptor answers.  :meth:`coin_inserted` may
await :meth:`set_inhibit`, so call it without holding the lock that
``set_inhibit`` needs (e.g. the serial link's), and keep every I/O of
``set_inhibit`` under its own timeout.
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Annotated, Any, ClassVar

import msgspec
from msgspec import Meta

from devices.base import (
    UNREACHABLE,
    Command,
    CommandContext,
    Device,
    DeviceEnv,
    DeviceHost,
    DeviceState,
    Message,
    Params,
)
from devices.errors import (
    DeviceError,
    Forbidden,
    FraudAttempt,
    HardwareError,
    InvalidData,
    MediaError,
    NotReady,
    ProtocolError,
    SequenceError,
)

from .ledger import (
    LEDGER_FILE,
    CashBox,
    Credit,
    EndReason,
    Ledger,
    LedgerError,
    LedgerRunner,
    LostReason,
    TransactionRecord,
    TransactionState,
    now_ms,
)

log = logging.getLogger(__name__)

#: Test-only crash point (the chaos test): with ``KIOSKD_TEST_EXIT_AFTER_COMMIT=N`` the
#: process dies like ``kill -9`` right after the Nth coin's ledger commit of this run,
#: before anything about it is published.  Unset in production: nothing happens.
EXIT_AFTER_COMMIT_ENV = "KIOSKD_TEST_EXIT_AFTER_COMMIT"
_EXIT_AFTER_COMMIT = int(os.environ.get(EXIT_AFTER_COMMIT_ENV, "0") or "0")
_commits = 0


def _crash_point() -> None:
    """Die at the configured commit (tests only; see :data:`EXIT_AFTER_COMMIT_ENV`)."""
    global _commits  # noqa: PLW0603 - one counter per process, like the environment variable
    _commits += 1
    if _EXIT_AFTER_COMMIT and _commits >= _EXIT_AFTER_COMMIT:
        os._exit(137)


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


class CoinTable(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """``[devices.<id>]`` options every coin acceptor driver has.

    ``coins``: values (whole ``currency`` units) of the coins to accept (Vietnam has
    no coins in circulation; kiosks built for tokens or coins are configured with such
    a table).  ``currency``: ISO 4217 code.  ``cash_box_capacity``: coins the cash box
    holds before it is ``full``.
    """

    coins: tuple[Amount, ...] = (1000, 2000, 5000)
    currency: Currency = "VND"
    cash_box_capacity: Annotated[int, Meta(gt=0, le=100_000)] = 500

    def __post_init__(self) -> None:
        """Reject an empty or repetitive coin list (msgspec reports it as the key's error)."""
        if not self.coins or len(set(self.coins)) != len(self.coins):
            raise ValueError("coins must list distinct values")


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
    """One coin of a transaction.

    ``index`` is 1 for the first coin; ``value`` whole VND; ``ts`` Unix epoch ms;
    ``overpaid`` is true when the total after it exceeds ``amountDue``
    (``overpayment``: the same flag under its deprecated v1 name).
    """

    index: int
    value: int
    ts: int
    overpaid: bool = False
    overpayment: OverpaidFlag = False


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
    ``reason`` is ``amountReached``, ``timeout`` or ``ended``.
    """

    transaction_id: str
    total: int
    reason: EndReason
    amount_due: int | None = None
    overpayment_amount: int = 0
    overpayment: OverpaymentAmount = 0


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
            )
            for c in record.credits
        ],
        lost_events=record.lost_events,
        lost_unknown=record.lost_unknown,
    )


@dataclass(eq=False, slots=True)
class _Deposit:
    """The active deposit, in memory (the ledger holds its money).

    ``deadline`` is ``loop.time()`` in s; ``reason`` is set once an end was requested;
    ``requester`` started it (only it, or staff, may end it).
    """

    id: str
    amount_due: int | None
    deadline: float
    requester: str
    reason: EndReason | None = None
    end_requested: asyncio.Event = field(default_factory=asyncio.Event)
    task: asyncio.Task[None] | None = None

    def request_end(self, reason: EndReason) -> None:
        """Ask the deposit's task to end it; the first reason wins."""
        if self.reason is None:
            self.reason = reason
            self.end_requested.set()


class CoinAcceptor(Device):
    """Base of coin acceptor drivers; see the module docstring for the semantics."""

    device_class: ClassVar[str] = "coinAcceptor"
    commands: ClassVar[dict[str, Command]] = {
        # Not interruptible: opening or ending a transaction is a few ms of ledger and
        # hardware I/O (each under its own timeout); stopping it half-way would leave the
        # ledger and the acceptor disagreeing.  The max equals the longest transaction
        # timeout because the request's timeoutMs doubles as the transaction timeout.
        "depositStart": Command(
            "deposit_start",
            DepositStartParams,
            DepositStarted,
            10_000,
            MAX_DEPOSIT_TIMEOUT_MS,
            side_effect=True,
            interruptible=False,
        ),
        "depositEnd": Command(
            "deposit_end",
            DepositEndParams,
            DepositTransaction,
            10_000,
            30_000,
            side_effect=True,
            interruptible=False,
        ),
        "depositStatus": Command(
            "deposit_status",
            DepositStatusParams,
            DepositStatusResult,
            2_000,
            10_000,
            queued=False,
        ),
    }
    events: ClassVar[dict[str, type[Message]]] = {
        "coinAccepted": CoinAccepted,
        "coinRejected": CoinRejected,
        "depositEnded": DepositEnded,
        "depositRecovered": DepositTransaction,
        "fraudAttempt": FraudDetected,
        "eventsLost": EventsLost,
    }
    detail_type: ClassVar[type[Message]] = CoinAcceptorDetail

    #: The driver's options (a :class:`CoinTable` subclass); set by its ``__init__``.
    settings: CoinTable

    def __init__(self, device_id: str, host: DeviceHost, env: DeviceEnv) -> None:
        super().__init__(device_id, host, env)
        self._ledger: LedgerRunner | None = None
        self._deposit: _Deposit | None = None
        self._orphan_id: str | None = None
        # The transaction a crash left active: buffered coins go to it until the first
        # hardware_ready(), which then announces every unsettled transaction.
        self._recovery_id: str | None = None
        self._announce_pending = False
        self._box_full = False
        self._fraud = False
        self._ledger_failed = False
        # Set by safe_state(): the device is being left, nothing enables the acceptor again.
        self._leaving = False
        # Orders credits, their events and the end of a transaction; never held across
        # hardware I/O, so a driver's poll task can always deliver a coin.
        self._credit_lock = asyncio.Lock()
        # Serializes set_inhibit calls; the wanted state is decided inside it.
        self._hw_lock = asyncio.Lock()

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

    # -- what drivers provide ----------------------------------------------------------------

    @abc.abstractmethod
    async def set_inhibit(self, inhibited: bool) -> None:
        """Make the hardware refuse (True) or accept (False) coins.

        Raises:
            Offline: the acceptor does not answer.
            HardwareError: the acceptor refused or misbehaved.

        """

    # -- what drivers call -------------------------------------------------------------------

    async def open_ledger(self) -> None:
        """Open the ledger once per device object and recover a crashed run's deposits.

        Drivers call it first in ``run()``; later calls return at once.  Until the
        first :meth:`hardware_ready`, coins credited without a deposit go to the
        transaction the crash left open (if any).

        Raises:
            LedgerError: the ledger cannot be opened or read.

        """
        if self._ledger is not None:
            return
        runner = await LedgerRunner.open(self.env.state_dir / LEDGER_FILE)
        try:
            recovered = await runner.call(Ledger.recover, self.id, now_ms())
            unsettled = await runner.call(Ledger.open_transactions, self.id)
            box = await runner.call(Ledger.cash_box, self.id)
        except BaseException:
            await runner.aclose()
            raise
        self._ledger = runner
        for tx_id in recovered:
            log.warning(
                "%s: deposit %s was active when the daemon stopped; now unknown", self.id, tx_id
            )
        self._recovery_id = recovered[-1] if recovered else None
        self._announce_pending = True
        self._set_box(box)
        self.update_detail(unsettled=len(unsettled))

    async def hardware_ready(self) -> None:
        """Drivers call it each time the acceptor answers (again): sets inhibit and condition.

        The acceptor is enabled only for a deposit that takes coins; the fraud
        latch of the previous connection is cleared.  The first call after
        :meth:`open_ledger` ends crash recovery: every unsettled transaction is
        announced with ``depositRecovered`` before the device goes online.

        Raises:
            DeviceError: from :meth:`set_inhibit`.

        """
        self._fraud = False
        await self._sync_inhibit(force=True)
        if self._announce_pending:
            await self._announce_unsettled()
        self.set_condition(self.acceptor_condition())

    async def _announce_unsettled(self) -> None:
        """Emit ``depositRecovered`` for every unsettled transaction, once per start."""
        self._announce_pending = False
        self._recovery_id = None
        unsettled = await self._require_ledger().call(Ledger.open_transactions, self.id)
        for record in unsettled:
            if record.state is TransactionState.UNKNOWN:
                self.emit("depositRecovered", transaction_message(record))

    def acceptor_condition(self) -> DeviceState:
        """Condition of a connected acceptor; drivers extend it with their own faults."""
        if self._ledger_failed:
            return DeviceState.HARDWARE_ERROR
        if self._fraud:
            return DeviceState.FRAUD_ATTEMPT
        if self._box_full:
            return DeviceState.USER_ERROR
        return DeviceState.ONLINE

    async def coin_inserted(self, value: int, event_counter: int | None = None) -> None:
        """Credit a coin the hardware accepted (it is in the cash box).

        ``value`` is whole currency units; ``event_counter`` is the acceptor's
        counter for this credit if it has one (stored; see
        :meth:`last_event_counter`, drivers de-duplicate with it).  The
        credit is committed to the ledger, then ``coinAccepted`` is emitted; the
        deposit ends when ``amountDue`` is reached.

        Raises (only when the coin is not recorded; after the commit nothing raises):
            ProtocolError: ``value`` is not positive (a driver bug).
            NotReady: the ledger is not open yet.
            LedgerError: the coin could not be recorded; the acceptor is inhibited
                and stays so until the daemon restarts.

        """
        if value <= 0:
            raise ProtocolError(f"coin value must be positive, got {value}")
        orphan = False
        try:
            async with self._credit_lock:
                deposit = self._deposit
                recovering = deposit is None and self._recovery_id is not None
                orphan = deposit is None and not recovering
                credit = await self._credit(deposit, value, event_counter)
                if _EXIT_AFTER_COMMIT:
                    _crash_point()
                record = credit.record
                self.emit(
                    "coinAccepted",
                    CoinAccepted(
                        transaction_id=record.transaction_id,
                        index=record.index,
                        value=value,
                        total=credit.total,
                        overpaid=record.overpayment,
                        overpayment=record.overpayment,
                    ),
                )
                if recovering:
                    log.warning(
                        "%s: a coin of %d %s buffered while the daemon was down; added to %s",
                        self.id,
                        value,
                        self.currency,
                        record.transaction_id,
                    )
                elif deposit is None:
                    log.error(
                        "%s: a coin of %d %s came in with no deposit active; kept in %s",
                        self.id,
                        value,
                        self.currency,
                        record.transaction_id,
                    )
                    if credit.new_transaction:
                        self.update_detail(unsettled=self._detail_now().unsettled + 1)
                else:
                    self.update_detail(total=credit.total)
                    if deposit.amount_due is not None and credit.total >= deposit.amount_due:
                        deposit.request_end(EndReason.AMOUNT_REACHED)
                self._set_box(credit.box)
        except LedgerError:
            log.critical(
                "%s: a coin of %d %s was taken but NOT recorded; acceptor stopped",
                self.id,
                value,
                self.currency,
            )
            self._ledger_failed = True
            self._refresh_condition()
            await self._sync_inhibit_quietly(force=True)
            raise
        # A coin with no deposit means the hardware ignored its inhibit: tell it again.  The
        # coin is recorded: a failure now must not look like an unrecorded coin to the driver
        # (it would credit it again); the inhibit is applied again when the acceptor answers.
        # A device being left (safe_state) is inhibited already.
        await self._sync_inhibit_quietly(force=orphan and not self._leaving)

    async def _credit(self, deposit: _Deposit | None, value: int, counter: int | None) -> Credit:
        """Commit a coin to the active deposit, the recovered one, or an orphan."""
        ledger = self._require_ledger()
        if deposit is not None:
            return await ledger.call(
                Ledger.credit, deposit.id, value, event_counter=counter, at_ms=now_ms()
            )
        if self._recovery_id is not None:
            return await ledger.call(
                Ledger.credit_recovered,
                self._recovery_id,
                value,
                event_counter=counter,
                at_ms=now_ms(),
            )
        credit = await ledger.call(
            Ledger.credit_orphan,
            self.id,
            value,
            currency=self.currency,
            orphan_id=self._orphan_id,
            event_counter=counter,
            at_ms=now_ms(),
        )
        self._orphan_id = credit.record.transaction_id
        return credit

    async def events_lost(
        self, count: int | None, reason: LostReason, *, event_counter: int | None = None
    ) -> None:
        """Report acceptor events the daemon could not see: ledger first, then ``eventsLost``.

        ``count`` is None when unknown.  They are charged to the active deposit,
        else to the transaction a crash left open (while recovering), else to none.
        ``event_counter``: the acceptor's counter after them, stored in the same
        commit (see :meth:`last_event_counter`).

        Raises:
            NotReady: the ledger is not open yet.
            LedgerError: the report could not be recorded.

        """
        async with self._credit_lock:
            deposit = self._deposit
            tx_id = deposit.id if deposit is not None else self._recovery_id
            await self._require_ledger().call(
                Ledger.record_lost,
                self.id,
                transaction_id=tx_id,
                count=count,
                reason=reason,
                at_ms=now_ms(),
                event_counter=event_counter,
            )
            log.critical(
                "%s: %s acceptor events lost (%s)%s",
                self.id,
                "an unknown number of" if count is None else count,
                reason,
                f" during transaction {tx_id}" if tx_id else "",
            )
            self.emit("eventsLost", EventsLost(count=count, reason=reason, transaction_id=tx_id))

    async def save_event_counter(self, counter: int) -> None:
        """Persist the acceptor's event counter after events that credited nothing.

        Raises:
            NotReady: the ledger is not open yet.
            LedgerError: the ledger cannot be written.

        """
        await self._require_ledger().call(Ledger.save_event_counter, self.id, counter, now_ms())

    async def last_event_counter(self) -> int | None:
        """Return the acceptor event counter last processed (credit or not).

        A driver whose acceptor buffers credits with a counter (ccTalk) reads it
        on connect and skips buffered events already credited, so a restart
        never credits a coin twice.

        Raises:
            NotReady: the ledger is not open yet.
            LedgerError: the ledger cannot be read.

        """
        return await self._require_ledger().call(Ledger.last_event_counter, self.id)

    def coin_rejected(self, reason: RejectReason, value: int | None = None) -> None:
        """Report a coin the acceptor gave back; ``value`` (whole units) if it was identified."""
        self.emit("coinRejected", CoinRejected(value=value, reason=reason))

    async def fraud_detected(self, reason: str) -> None:
        """Report manipulation: ``fraudAttempt`` event and state, acceptor inhibited.

        The state stays ``fraudAttempt`` until the acceptor connects again
        (:meth:`hardware_ready`); an active deposit stays open for the UI to end.

        Raises:
            DeviceError: from :meth:`set_inhibit`.

        """
        log.warning("%s: fraud attempt reported: %s", self.id, reason)
        self._fraud = True
        self.emit("fraudAttempt", FraudDetected(reason=reason))
        self._refresh_condition()
        await self._sync_inhibit()

    async def refresh_cash_box(self) -> None:
        """Re-read the cash box counters, e.g. after ``kioskd ledger collect`` emptied it.

        Clears ``cashBox: full`` and its ``userError`` once the box has room and
        re-enables the acceptor for an active deposit.

        Raises:
            NotReady: the ledger is not open yet.
            LedgerError: the ledger cannot be read.
            DeviceError: from :meth:`set_inhibit`.

        """
        box = await self._require_ledger().call(Ledger.cash_box, self.id)
        self._set_box(box)
        self._refresh_condition()
        await self._sync_inhibit()

    # -- commands ----------------------------------------------------------------------------

    async def deposit_start(
        self,
        params: DepositStartParams,
        ctx: CommandContext,
    ) -> DepositStarted:
        """Open a transaction and enable the acceptor; completes at once.

        Raises:
            InvalidData: the currency is not the acceptor's.
            SequenceError: a deposit is already active.
            MediaError: the cash box is full.
            FraudAttempt: the acceptor reported manipulation.
            HardwareError: the acceptor or the ledger failed.
            NotReady: the ledger is not open or the acceptor is not connected.

        """
        ledger = self._require_ledger()
        if params.currency != self.currency:
            raise InvalidData(f"this acceptor takes {self.currency}, not {params.currency}")
        if self._box_full:
            # A technician may have emptied the box from the CLI since.
            await self.refresh_cash_box()
        timeout_ms = params.timeout_ms or DEFAULT_DEPOSIT_TIMEOUT_MS
        async with self._credit_lock:
            if self._deposit is not None:
                raise SequenceError(f"deposit {self._deposit.id} is active")
            self._check_accepting()
            record = await ledger.call(
                Ledger.begin,
                self.id,
                currency=self.currency,
                amount_due=params.amount_due,
                timeout_ms=timeout_ms,
                at_ms=now_ms(),
            )
            loop = asyncio.get_running_loop()
            deposit = _Deposit(
                record.id, params.amount_due, loop.time() + timeout_ms / 1000, ctx.client_id
            )
            self._deposit = deposit
            deposit.task = asyncio.create_task(
                self._run_deposit(deposit),
                name=f"{self.id}-deposit-{record.id}",
            )
        self.update_detail(transaction_id=record.id, total=0, amount_due=params.amount_due)
        try:
            await self._sync_inhibit()
        except BaseException:
            deposit.request_end(EndReason.ENDED)
            raise
        log.info(
            "%s: deposit %s started (due %s, timeout %d ms)",
            self.id,
            record.id,
            params.amount_due,
            timeout_ms,
        )
        assert record.deadline_ms is not None
        return DepositStarted(
            transaction_id=record.id,
            timeout_ms=timeout_ms,
            deadline_ts=record.deadline_ms,
        )

    async def deposit_end(
        self,
        params: DepositEndParams,
        ctx: CommandContext,
    ) -> DepositTransaction:
        """End the active transaction, or settle an ``unknown`` one; returns it.

        A transaction that already ended (or was settled) is returned unchanged,
        so a UI racing the deadline or ``amountReached`` gets its final record.
        Only the requester that started the active transaction, or staff
        (``ctx.staff``, logged with who), may end it.  Anyone may settle an
        ``unknown`` one: who started it is not known after a restart, and settling
        moves no money (it marks the ledger's record reconciled).

        Raises:
            InvalidData: no transaction of this device has that id.
            Forbidden: another requester's active transaction, and the requester
                is not staff.
            NotReady: the ledger is not open yet.
            LedgerError: the ledger failed.

        """
        ledger = self._require_ledger()
        deposit = self._deposit
        if deposit is not None and deposit.id == params.transaction_id:
            if deposit.requester != ctx.client_id:
                self._staff_only(ctx, f"ending {deposit.requester}'s deposit {deposit.id}")
            deposit.request_end(EndReason.ENDED)
            assert deposit.task is not None
            await asyncio.shield(deposit.task)
        record = await ledger.call(Ledger.get, params.transaction_id, self.id)
        if record is None:
            raise InvalidData(f"no transaction {params.transaction_id} on {self.id}")
        if record.state is TransactionState.UNKNOWN:
            record = await ledger.call(Ledger.settle, record.id, now_ms())
            if record.id == self._orphan_id:
                self._orphan_id = None
            self.update_detail(unsettled=max(0, self._detail_now().unsettled - 1))
            log.info(
                "%s: transaction %s settled (%d %s)",
                self.id,
                record.id,
                record.total,
                record.currency,
            )
        return transaction_message(record)

    def _staff_only(self, ctx: CommandContext, what: str) -> None:
        """Allow ``what`` to staff only, and log who did it (a user name, no identity data).

        Raises:
            Forbidden: the requester is not staff.

        """
        if not ctx.staff:
            raise Forbidden(f"{what} is a staff operation: it needs the technician role")
        log.info("%s: staff operation: %s by %s", self.id, what, ctx.client_id)

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
        ledger = self._require_ledger()
        if params.transaction_id is None:
            records = await ledger.call(Ledger.open_transactions, self.id)
        else:
            record = await ledger.call(Ledger.get, params.transaction_id, self.id)
            if record is None:
                raise InvalidData(f"no transaction {params.transaction_id} on {self.id}")
            records = [record]
        return DepositStatusResult(transactions=[transaction_message(r) for r in records])

    # -- lifecycle ---------------------------------------------------------------------------

    async def safe_state(self) -> None:
        """Inhibit the acceptor for good, whatever the deposit state; then :meth:`drain`.

        The device is being left (daemon stop, ``kioskd safe-state``): nothing
        enables the acceptor afterwards.  In a daemon (the ledger is open) the
        coins the acceptor took before the inhibit are then credited.

        Raises:
            DeviceError: from :meth:`set_inhibit`.

        """
        self._leaving = True
        async with self._hw_lock:
            await self.set_inhibit(True)
            self.update_detail(inhibited=True)
        if self._ledger is not None:
            await self.drain()

    async def drain(self) -> None:
        """Credit the coins a buffering acceptor took before the stop's inhibit.

        Called by :meth:`safe_state` when the ledger is open.  Drivers whose
        hardware reports each coin as it happens need nothing here; a driver
        that reads a buffer (ccTalk) reads it once more, so a coin that went in
        after the last read is recorded and announced by the run that saw it.
        Failures are logged, never raised: the coins stay in the acceptor's
        buffer for the next start.
        """

    async def aclose(self) -> None:
        """Stop the deposit task and close the ledger (daemon shutdown).

        An active deposit stays ``active`` in the ledger and is recovered as
        ``unknown`` at the next start, like after a crash.
        """
        deposit, self._deposit = self._deposit, None
        if deposit is not None and deposit.task is not None:
            deposit.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await deposit.task
        ledger, self._ledger = self._ledger, None
        if ledger is not None:
            await ledger.aclose()

    def capabilities(self) -> Mapping[str, Any]:
        """Currency, coin values (whole units) and cash box capacity (coins)."""
        return {
            "currency": self.currency,
            "coins": list(self.coin_values),
            "cashBoxCapacity": self.cash_box_capacity,
        }

    # -- internals ---------------------------------------------------------------------------

    def _detail_now(self) -> CoinAcceptorDetail:
        detail = self.detail
        assert isinstance(detail, CoinAcceptorDetail)
        return detail

    def _require_ledger(self) -> LedgerRunner:
        if self._ledger is None:
            raise NotReady("the coin ledger is not open yet")
        return self._ledger

    def _check_accepting(self) -> None:
        """Raise why no deposit can start now, if anything stops it."""
        if self._ledger_failed:
            raise HardwareError("the coin ledger failed; the kiosk takes no money until checked")
        if self._fraud:
            raise FraudAttempt("the acceptor reported a fraud attempt")
        if self._box_full:
            raise MediaError("the cash box is full")
        if self.condition is DeviceState.HARDWARE_ERROR:
            raise HardwareError("the coin acceptor is faulty")
        if self.condition is not DeviceState.ONLINE:
            raise NotReady(f"the coin acceptor is {self.condition}")

    def _should_inhibit(self) -> bool:
        deposit = self._deposit
        return (
            deposit is None
            or deposit.reason is not None
            or self._box_full
            or self._fraud
            or self._ledger_failed
            or self._leaving
        )

    async def _sync_inhibit(self, *, force: bool = False) -> None:
        """Bring the hardware to the inhibit state the deposit calls for.

        Decided inside the lock, so concurrent callers end with the latest wish.
        Without ``force`` the command is skipped when the detail already agrees.
        """
        async with self._hw_lock:
            inhibited = self._should_inhibit()
            if not force and self._detail_now().inhibited == inhibited:
                return
            await self.set_inhibit(inhibited)
            self.update_detail(inhibited=inhibited)

    async def _sync_inhibit_quietly(self, *, force: bool = False) -> None:
        """Like :meth:`_sync_inhibit`, for paths that must go on when the hardware fails."""
        try:
            await self._sync_inhibit(force=force)
        except DeviceError as exc:
            log.warning("%s: could not set the acceptor's inhibit: %s", self.id, exc)

    def _refresh_condition(self) -> None:
        if self.condition not in UNREACHABLE:
            self.set_condition(self.acceptor_condition())

    def _set_box(self, box: CashBox) -> None:
        full = box.coins >= self.cash_box_capacity
        if full and not self._box_full:
            log.warning(
                "%s: cash box full (%d coins, %d %s)", self.id, box.coins, box.total, self.currency
            )
        became = full != self._box_full
        self._box_full = full
        self.update_detail(
            cash_box=CashBoxState.FULL if full else CashBoxState.OK,
            cash_box_coins=box.coins,
        )
        if became:
            self._refresh_condition()

    async def _run_deposit(self, deposit: _Deposit) -> None:
        """Wait for an end request or the deadline, then end the deposit (its own task)."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout_at(deposit.deadline):
                await deposit.end_requested.wait()
        deposit.request_end(EndReason.TIMEOUT)
        assert deposit.reason is not None
        # Inhibit first: coins the acceptor reports until then still belong to this deposit.
        await self._sync_inhibit_quietly(force=True)
        async with self._credit_lock:
            self._deposit = None
            try:
                record = await self._require_ledger().call(
                    Ledger.end,
                    deposit.id,
                    deposit.reason,
                    now_ms(),
                )
            except (LedgerError, NotReady):
                log.critical("%s: could not end deposit %s in the ledger", self.id, deposit.id)
                self._ledger_failed = True
                self._refresh_condition()
                self.update_detail(transaction_id=None, total=None, amount_due=None)
                return
            self.update_detail(transaction_id=None, total=None, amount_due=None)
            log.info(
                "%s: deposit %s ended (%s): %d %s",
                self.id,
                deposit.id,
                deposit.reason,
                record.total,
                record.currency,
            )
            self.emit(
                "depositEnded",
                DepositEnded(
                    transaction_id=deposit.id,
                    total=record.total,
                    reason=deposit.reason,
                    amount_due=record.amount_due,
                    overpayment_amount=record.overpayment,
                    overpayment=record.overpayment,
                ),
            )
