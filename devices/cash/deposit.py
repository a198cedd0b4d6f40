"""Deposits of money into an acceptor: one service for every acceptor device class.

A :class:`DepositService` holds what a deposit means, whatever takes the money
(a coin acceptor today, a banknote validator next); its :class:`DepositOwner`
(the device) moves the hardware and says on the wire what happened.  Amounts
are whole currency units; an *item* is one coin or one note.

- :meth:`~DepositService.start` opens a transaction in the ledger and enables
  the acceptor.  The transaction then lives on its own, in a task owned by the
  service, until ``amount_due`` is reached, its deadline passes (the loop's
  monotonic clock) or :meth:`~DepositService.end` asks; each of these inhibits
  the acceptor, ends the transaction in the ledger and reports it
  (:meth:`DepositOwner.on_deposit_ended`).
- Every item is committed to the ledger (fsynced) *before* it is reported
  (:meth:`DepositOwner.on_credit`).  An item the hardware took while no
  deposit was active (it should have been inhibited) is never dropped: it is
  recorded in an ``unknown`` orphan transaction and reported like any other.
- The acceptor is inhibited at start and whenever no deposit takes money
  (none active, ending, cash box full, fraud, ledger failure, device being left).
- At :meth:`~DepositService.open`, transactions a crashed run left ``active``
  become ``unknown`` with every item (``unsettled`` in the status).  Items an
  acceptor buffered while the daemon was down are credited to the transaction
  the crash left open, until the first :meth:`~DepositService.hardware_ready`;
  events that fell out of the buffer are recorded with their count
  (:meth:`~DepositService.record_lost`), never guessed.  Then every unsettled
  transaction is reported once per start (:meth:`DepositOwner.on_recovered`);
  :meth:`~DepositService.end` settles one.
- When the cash box holds its capacity of items the acceptor is inhibited and
  the condition is ``userError`` until a collection
  (:meth:`~DepositService.refresh_cash_box` re-reads the counters).
- An acceptor with escrow (a note validator) holds an item before it takes it:
  :meth:`~DepositService.hold` says whether the active deposit takes it now and,
  if so, keeps that deposit from ending until :meth:`~DepositService.release`
  (the item stacked and credited, or returned), at most :data:`HOLD_WAIT_S`, so
  an item stacked as its deposit times out is still that deposit's.
  :meth:`~DepositService.block` inhibits the acceptor while its hardware cannot
  take money (stacker removed or full).

Several acceptors, one deposit: a board with a coin acceptor and a note
validator takes one fee across both.  Each acceptor keeps its own service (its
fraud latch, stacker or cash box, inhibit, crash recovery), and the services of
a board join one :class:`Till` (:meth:`~DepositService.join`; the daemon does
it for every acceptor it configures): the ledger, the one active deposit and the
lock that orders credits are the till's.  :meth:`~DepositService.start` on any
member opens the board's deposit (in the ledger under that member's device id)
and enables every member that can take money (one offline, blocked, in fraud or
still reading its buffer stays inhibited until it can); every credit goes into
that one transaction with the device that took it, into that device's cash box; ``end`` and
``transactions`` on any member answer for it; the end is reported once, by the
member that opened it.  A crash leaves the one transaction active: every member's
buffered items are credited to it at the next start.  A member reads its buffer
until its first :meth:`~DepositService.hardware_ready`, and what it reads then is
never the board's active deposit's, even when another member came up first and a
deposit started on it: it goes to the transaction the crash left open, else to an
orphan (a coin of the crashed payment is not the next citizen's money).

Order of calls for the owner's driver: :meth:`~DepositService.open` first, then
the credits of what the acceptor buffered (with its event counter), then
:meth:`~DepositService.hardware_ready` once the acceptor answers.
:meth:`~DepositService.credit` may await :meth:`DepositOwner.set_inhibit`, so
call it without holding the lock that ``set_inhibit`` needs (e.g. the serial
link's), and keep every I/O of ``set_inhibit`` under its own timeout.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import ClassVar, Protocol

from devices.base import DeviceState
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
from devices.runtime.clock import now_ms

from .ledger import (
    CashBox,
    Credit,
    CreditRecord,
    EndReason,
    Ledger,
    LedgerError,
    LedgerRunner,
    LostReason,
    TransactionRecord,
    TransactionState,
)

log = logging.getLogger(__name__)

#: Called with each credit right after its commit, before anything about it is reported.
CommitHook = Callable[[CreditRecord], None]

#: Longest an ending deposit waits for its held items to be stacked or returned, in s
#: (an SSP validator stacks a note in about 2 s; a unit that never reports one is faulty).
HOLD_WAIT_S = 10.0


@dataclass(frozen=True, slots=True)
class DepositStatus:
    """What the deposit logic shows in its device's state detail.

    Attributes:
        inhibited: the acceptor refuses money (true unless a deposit takes it).
        transaction_id: the active deposit, None without one.
        total: the active deposit's total so far (whole units), None without one.
        amount_due: the active deposit's amount due (whole units), None without one.
        box_full: the cash box holds its capacity.
        box_items: items in the cash box since its last collection.
        unsettled: ``unknown`` transactions waiting to be settled.

    """

    inhibited: bool = True
    transaction_id: str | None = None
    total: int | None = None
    amount_due: int | None = None
    box_full: bool = False
    box_items: int = 0
    unsettled: int = 0


class DepositOwner(Protocol):
    """The acceptor device a :class:`DepositService` works for.

    The service calls it on the event loop.  The ``on_*`` methods report (state,
    events) and must neither block nor raise; only :meth:`set_inhibit` does I/O.
    """

    @property
    def condition(self) -> DeviceState:
        """The device's condition (a deposit starts only when ``online``)."""
        ...

    @property
    def currency(self) -> str:
        """ISO 4217 code of the money the acceptor takes."""
        ...

    @property
    def cash_box_capacity(self) -> int:
        """Items the cash box holds before it is full."""
        ...

    async def set_inhibit(self, inhibited: bool) -> None:
        """Make the hardware refuse (True) or accept (False) money.

        Raises:
            DeviceError: the acceptor does not answer or refused.

        """
        ...

    def on_status(self, status: DepositStatus) -> None:
        """The status changed (publish it in the state detail)."""
        ...

    def on_condition(self) -> None:
        """:attr:`DepositService.condition` may have changed (recompute the device's)."""
        ...

    def on_credit(self, credit: Credit) -> None:
        """An item is committed to the ledger (announce it)."""
        ...

    def on_deposit_ended(self, record: TransactionRecord, reason: EndReason) -> None:
        """A deposit ended and is recorded so (announce it)."""
        ...

    def on_recovered(self, record: TransactionRecord) -> None:
        """An ``unknown`` transaction waits to be settled (announced once per start)."""
        ...

    def on_events_lost(
        self, count: int | None, reason: LostReason, transaction_id: str | None
    ) -> None:
        """Acceptor events went unseen and are recorded so (announce it)."""
        ...


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
    #: The money it takes (ISO 4217): a member of another currency stays inhibited.
    currency: str
    #: The member that opened it; it reports the end.
    opener: DepositService
    reason: EndReason | None = None
    end_requested: asyncio.Event = field(default_factory=asyncio.Event)
    task: asyncio.Task[None] | None = None
    #: Items held in escrow for this deposit (:meth:`DepositService.hold`).
    held: int = 0
    released: asyncio.Event = field(default_factory=asyncio.Event)

    def request_end(self, reason: EndReason) -> None:
        """Ask the deposit's task to end it; the first reason wins."""
        if self.reason is None:
            self.reason = reason
            self.end_requested.set()


class Till:
    """The board's one deposit and its ledger, shared by the services that join it.

    Holds what is the board's: the ledger (opened by the first member that opens,
    closed by the last that closes), the active deposit (at most one), the lock that
    orders credits, their reports and the end of a deposit, and the transactions a
    crash left active (found by the first open).  What is each acceptor's stays in
    its :class:`DepositService`.
    """

    def __init__(self) -> None:
        self.members: list[DepositService] = []
        self.ledger: LedgerRunner | None = None
        self.deposit: _Deposit | None = None
        # Orders credits, their reports and the end of a transaction; never held across
        # hardware I/O, so a driver's poll task can always deliver an item.
        self.credit_lock = asyncio.Lock()
        self.open_lock = asyncio.Lock()
        #: ``(transaction id, device that opened it)`` a crash left active, oldest first.
        self.recovered: list[tuple[str, str]] = []
        #: Members that opened the ledger and have not closed it.
        self.users = 0

    def show_deposit(self, transaction_id: str | None, total: int | None, due: int | None) -> None:
        """Show the active deposit (or none) in every member's status."""
        for member in self.members:
            member.show_deposit(transaction_id, total, due)


class DepositService:
    """Deposits, the ledger and the inhibit of one acceptor; see the module docstring.

    ``device_id`` names the acceptor in the ledger; ``item`` names one piece of
    money in logs and errors (``coin``, ``note``).  The currency and the cash box
    capacity are the owner's (read when used: a driver's settings come after
    its base class is built).
    """

    #: The crash point of the chaos test (``tests/chaosdaemon.py`` sets it): called after
    #: each credit's commit, before it is reported.  None in production.
    after_commit: ClassVar[CommitHook | None] = None

    def __init__(
        self,
        owner: DepositOwner,
        device_id: str,
        *,
        item: str,
    ) -> None:
        self._owner = owner
        self.device_id = device_id
        self.item = item
        self._status = DepositStatus()
        self._till = Till()
        self._till.members.append(self)
        # This member opened the till's ledger (and has not closed it).
        self._open = False
        self._orphan_id: str | None = None
        # The transaction a crash left active: buffered items go to it until the first
        # hardware_ready(), which then announces every unsettled transaction.
        self._recovery_id: str | None = None
        self._announce_pending = False
        # From open() to the first hardware_ready(): the driver reads what the acceptor
        # buffered before this start.  None of it is the board's active deposit's (another
        # member may have opened one meanwhile), and the acceptor stays inhibited.
        self._catching_up = False
        self._fraud = False
        self._ledger_failed = False
        # Set by block(): the hardware cannot take money now (stacker removed or full).
        self._blocked = False
        # Set by leave(): the device is being left, nothing enables the acceptor again.
        self._leaving = False
        # Serializes set_inhibit calls; the wanted state is decided inside it.
        self._hw_lock = asyncio.Lock()

    def join(self, till: Till) -> None:
        """Take deposits with the other members of ``till`` (the board's acceptors).

        Call before :meth:`open`, once: the daemon joins every acceptor it
        configures to one till.
        """
        if self._open:
            raise RuntimeError(f"{self.device_id} joins a till after opening its ledger")
        self._till.members.remove(self)
        self._till = till
        till.members.append(self)

    @property
    def till(self) -> Till:
        """The till this acceptor shares (its own unless it joined another)."""
        return self._till

    @property
    def _deposit(self) -> _Deposit | None:
        return self._till.deposit

    @property
    def _credit_lock(self) -> asyncio.Lock:
        return self._till.credit_lock

    @property
    def _ledger(self) -> LedgerRunner | None:
        return self._till.ledger if self._open else None

    @property
    def status(self) -> DepositStatus:
        """The current status (active deposit, inhibit, cash box, unsettled count)."""
        return self._status

    @property
    def ledger(self) -> LedgerRunner | None:
        """The open ledger, None before :meth:`open` and after :meth:`aclose`."""
        return self._ledger

    @property
    def leaving(self) -> bool:
        """True once :meth:`leave` ran: nothing enables the acceptor again."""
        return self._leaving

    @property
    def condition(self) -> DeviceState:
        """The condition the money side imposes on a connected acceptor.

        ``hardwareError`` after a ledger failure, ``fraudAttempt`` after a fraud
        report (until :meth:`hardware_ready`), ``userError`` with a full cash box,
        else ``online``; drivers add their own faults on top.
        """
        if self._ledger_failed:
            return DeviceState.HARDWARE_ERROR
        if self._fraud:
            return DeviceState.FRAUD_ATTEMPT
        if self._status.box_full:
            return DeviceState.USER_ERROR
        return DeviceState.ONLINE

    # -- the acceptor's life -----------------------------------------------------------------

    async def open(self, path: Path) -> None:
        """Open the ledger at ``path`` once and recover a crashed run's deposits.

        Later calls return at once.  The first member of the till to open opens
        the ledger and turns every member's transaction left ``active`` into
        ``unknown``.  Until the first :meth:`hardware_ready` the acceptor reads what
        it buffered before this start: it stays inhibited, and its items go to the
        transaction the crash left open (the one this acceptor opened, else the
        board's latest: a deposit across several acceptors), else to an orphan,
        never to a deposit another member opened meanwhile.  The ledger keeps that
        choice until the reading ends: a run that dies before then leaves it to
        the next (a deposit opened in that run never had this acceptor enabled).

        Raises:
            LedgerError: the ledger cannot be opened, read or written.

        """
        if self._open:
            return
        till = self._till
        async with till.open_lock:
            if till.ledger is None:
                till.recovered = []
                runner = await LedgerRunner.open(path)
                try:
                    for member in till.members:
                        for tx_id in await runner.call(Ledger.recover, member.device_id, now_ms()):
                            till.recovered.append((tx_id, member.device_id))
                            log.warning(
                                "%s: deposit %s was active when the daemon stopped; now unknown",
                                member.device_id,
                                tx_id,
                            )
                except BaseException:
                    await runner.aclose()
                    raise
                till.ledger = runner
            try:
                records = await till.ledger.call(Ledger.open_transactions, self.device_id)
                box = await till.ledger.call(Ledger.cash_box, self.device_id)
                recovery_id = await self._catch_up_target(till.ledger)
            except BaseException:
                if till.users == 0:
                    runner, till.ledger = till.ledger, None
                    await runner.aclose()
                raise
            till.users += 1
            self._open = True
        self._recovery_id = recovery_id
        self._announce_pending = True
        self._catching_up = True
        self._set_box(box)
        unsettled = sum(r.state is TransactionState.UNKNOWN for r in records)
        self._show(replace(self._status, unsettled=unsettled))

    async def _catch_up_target(self, ledger: LedgerRunner) -> str | None:
        """Choose (and record) where the items buffered before this start go; None: an orphan.

        The transaction the crash left open that this acceptor opened, else the
        board's latest.  But when the last run died while still reading this
        acceptor's buffer, that run never enabled it: what is buffered now is what
        that run was reading for, never a deposit it opened meanwhile.

        Raises:
            LedgerError: the unfinished reading cannot be read or the new one recorded.

        """
        unfinished = await ledger.call(Ledger.unfinished_catch_up, self.device_id)
        if unfinished is not None:
            (target,) = unfinished
        else:
            recovered = self._till.recovered
            own = [tx_id for tx_id, device in recovered if device == self.device_id]
            board = [tx_id for tx_id, _ in recovered]
            latest = own or board
            target = latest[-1] if latest else None
        await ledger.call(Ledger.begin_catch_up, self.device_id, target, now_ms())
        return target

    async def hardware_ready(self) -> None:
        """The acceptor answers (again): set its inhibit; the first time, end crash recovery.

        The acceptor is enabled only for a deposit that takes money; the fraud
        latch of the previous connection is cleared.  The first call after
        :meth:`open` reports every unsettled transaction this acceptor opened
        (:meth:`DepositOwner.on_recovered`; one across several acceptors is
        reported once, by the one that opened it).

        Raises:
            DeviceError: from :meth:`DepositOwner.set_inhibit`.
            LedgerError: the unsettled transactions cannot be read.

        """
        self._fraud = False
        if self._catching_up:
            await self._require_ledger().call(Ledger.end_catch_up, self.device_id)
            self._catching_up = False
        await self.sync_inhibit(force=True)
        if self._announce_pending:
            self._announce_pending = False
            self._recovery_id = None
            unsettled = await self._require_ledger().call(Ledger.open_transactions, self.device_id)
            for record in unsettled:
                if record.state is TransactionState.UNKNOWN and record.device_id == self.device_id:
                    self._owner.on_recovered(record)

    async def fraud(self) -> None:
        """The acceptor reported manipulation: inhibit it until :meth:`hardware_ready`.

        An active deposit stays open for the UI to end.

        Raises:
            DeviceError: from :meth:`DepositOwner.set_inhibit`.

        """
        self._fraud = True
        self._owner.on_condition()
        await self.sync_inhibit()

    async def block(self, blocked: bool) -> None:
        """The hardware cannot (True) or can again (False) take money: set the inhibit.

        For a stacker removed or reported full by the hardware; an active deposit
        stays open for the UI to end.

        Raises:
            DeviceError: from :meth:`DepositOwner.set_inhibit`.

        """
        self._blocked = blocked
        self._owner.on_condition()
        await self.sync_inhibit()

    def hold(self) -> str | None:
        """An item is in escrow: return the deposit that takes it, or None to return it.

        A deposit takes it when it is active, not ending and takes money now;
        it then waits (at most :data:`HOLD_WAIT_S`) for :meth:`release` before
        it ends, so the item is credited to it once stacked.
        """
        deposit = self._taking_deposit()
        if deposit is None or self._should_inhibit():
            return None
        deposit.held += 1
        deposit.released.clear()
        return deposit.id

    def release(self, transaction_id: str) -> None:
        """The item :meth:`hold` kept for ``transaction_id`` is credited or gone."""
        deposit = self._deposit
        if deposit is not None and deposit.id == transaction_id and deposit.held > 0:
            deposit.held -= 1
            if deposit.held == 0:
                deposit.released.set()

    async def refresh_cash_box(self) -> None:
        """Re-read the cash box counters, e.g. after ``kioskd ledger collect`` emptied it.

        Clears ``box_full`` once the box has room and re-enables the acceptor
        for an active deposit.

        Raises:
            NotReady: the ledger is not open yet.
            LedgerError: the ledger cannot be read.
            DeviceError: from :meth:`DepositOwner.set_inhibit`.

        """
        box = await self._require_ledger().call(Ledger.cash_box, self.device_id)
        self._set_box(box)
        self._owner.on_condition()
        await self.sync_inhibit()

    async def leave(self) -> None:
        """Inhibit the acceptor for good, whatever the deposit state (the device is left).

        Raises:
            DeviceError: from :meth:`DepositOwner.set_inhibit`.

        """
        self._leaving = True
        async with self._hw_lock:
            await self._owner.set_inhibit(True)
            self._show(replace(self._status, inhibited=True))

    async def aclose(self) -> None:
        """Stop the board's deposit task and leave the ledger (daemon shutdown).

        An active deposit stays ``active`` in the ledger and is recovered as
        ``unknown`` at the next start, like after a crash.  The last member of
        the till to close closes the ledger.
        """
        till = self._till
        deposit, till.deposit = till.deposit, None
        if deposit is not None and deposit.task is not None:
            deposit.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await deposit.task
        if self._open:
            self._open = False
            till.users -= 1
            ledger, till.ledger = till.ledger, None
            if till.users == 0 and ledger is not None:
                await ledger.aclose()
            else:
                till.ledger = ledger

    # -- what the hardware did ---------------------------------------------------------------

    async def credit(self, value: int, event_counter: int | None = None) -> None:
        """Credit an item the hardware took (it is in the cash box).

        ``value`` is whole currency units; ``event_counter`` is the acceptor's
        counter for this credit if it has one (stored; see
        :meth:`last_event_counter`, drivers de-duplicate with it).  The credit
        is committed to the ledger, then reported; the deposit ends when
        ``amount_due`` is reached.

        Raises (only when the item is not recorded; after the commit nothing raises):
            ProtocolError: ``value`` is not positive (a driver bug).
            NotReady: the ledger is not open yet.
            LedgerError: the item could not be recorded; the acceptor is inhibited
                and stays so until the daemon restarts.

        """
        if value <= 0:
            raise ProtocolError(f"{self.item} value must be positive, got {value}")
        orphan = False
        try:
            async with self._credit_lock:
                # Buffered before this start: never the active deposit's (module docstring).
                deposit = None if self._catching_up else self._taking_deposit()
                recovering = deposit is None and self._recovery_id is not None
                orphan = deposit is None and not recovering
                credit = await self._commit(deposit, value, event_counter)
                hook = type(self).after_commit
                if hook is not None:
                    hook(credit.record)
                self._owner.on_credit(credit)
                if recovering:
                    log.warning(
                        "%s: a %s of %d %s buffered while the daemon was down; added to %s",
                        self.device_id,
                        self.item,
                        value,
                        self._owner.currency,
                        credit.record.transaction_id,
                    )
                elif deposit is None:
                    log.error(
                        "%s: a %s of %d %s came in with no deposit active; kept in %s",
                        self.device_id,
                        self.item,
                        value,
                        self._owner.currency,
                        credit.record.transaction_id,
                    )
                    if credit.new_transaction:
                        self._show(replace(self._status, unsettled=self._status.unsettled + 1))
                else:
                    self._till.show_deposit(deposit.id, credit.total, deposit.amount_due)
                    if deposit.amount_due is not None and credit.total >= deposit.amount_due:
                        deposit.request_end(EndReason.AMOUNT_REACHED)
                self._set_box(credit.box)
        except LedgerError:
            log.critical(
                "%s: a %s of %d %s was taken but NOT recorded; acceptor stopped",
                self.device_id,
                self.item,
                value,
                self._owner.currency,
            )
            self._ledger_failed = True
            self._owner.on_condition()
            await self.sync_inhibit_quietly(force=True)
            raise
        # An item with no deposit means the hardware ignored its inhibit: tell it again.  The
        # item is recorded: a failure now must not look like an unrecorded item to the driver
        # (it would credit it again); the inhibit is applied again when the acceptor answers.
        # A device being left is inhibited already.
        await self.sync_inhibit_quietly(force=orphan and not self._leaving)

    async def _commit(self, deposit: _Deposit | None, value: int, counter: int | None) -> Credit:
        """Commit an item to the active deposit, the recovered one, or an orphan."""
        ledger = self._require_ledger()
        if deposit is not None:
            return await ledger.call(
                Ledger.credit,
                deposit.id,
                value,
                event_counter=counter,
                at_ms=now_ms(),
                device_id=self.device_id,
            )
        if self._recovery_id is not None:
            try:
                return await ledger.call(
                    Ledger.credit_recovered,
                    self._recovery_id,
                    value,
                    event_counter=counter,
                    at_ms=now_ms(),
                    device_id=self.device_id,
                )
            except LedgerError:
                # Another acceptor's recovered deposit may be settled already (a UI heard
                # of it first): nothing was written, the item is kept as an orphan.
                record = await ledger.call(Ledger.get, self._recovery_id)
                if record is None or record.state is TransactionState.UNKNOWN:
                    raise
                self._recovery_id = None
        credit = await ledger.call(
            Ledger.credit_orphan,
            self.device_id,
            value,
            currency=self._owner.currency,
            orphan_id=self._orphan_id,
            event_counter=counter,
            at_ms=now_ms(),
        )
        self._orphan_id = credit.record.transaction_id
        return credit

    async def record_lost(
        self, count: int | None, reason: LostReason, *, event_counter: int | None = None
    ) -> None:
        """Record acceptor events the daemon could not see, then report them.

        ``count`` is None when unknown.  They are charged to the active deposit (not
        while the acceptor reads its buffer after a start: :meth:`open`),
        else to the transaction a crash left open (while recovering), else to none.
        ``event_counter``: the acceptor's counter after them, stored in the same
        commit (see :meth:`last_event_counter`).

        Raises:
            NotReady: the ledger is not open yet.
            LedgerError: the report could not be recorded.

        """
        async with self._credit_lock:
            deposit = None if self._catching_up else self._deposit
            tx_id = deposit.id if deposit is not None else self._recovery_id
            await self._require_ledger().call(
                Ledger.record_lost,
                self.device_id,
                transaction_id=tx_id,
                count=count,
                reason=reason,
                at_ms=now_ms(),
                event_counter=event_counter,
            )
            log.critical(
                "%s: %s acceptor events lost (%s)%s",
                self.device_id,
                "an unknown number of" if count is None else count,
                reason,
                f" during transaction {tx_id}" if tx_id else "",
            )
            self._owner.on_events_lost(count, reason, tx_id)

    async def save_event_counter(self, counter: int) -> None:
        """Persist the acceptor's event counter after events that credited nothing.

        Raises:
            NotReady: the ledger is not open yet.
            LedgerError: the ledger cannot be written.

        """
        await self._require_ledger().call(
            Ledger.save_event_counter, self.device_id, counter, now_ms()
        )

    async def last_event_counter(self) -> int | None:
        """Return the acceptor event counter last processed (credit or not).

        A driver whose acceptor buffers credits with a counter (ccTalk) reads it
        on connect and skips buffered events already credited, so a restart
        never credits an item twice.

        Raises:
            NotReady: the ledger is not open yet.
            LedgerError: the ledger cannot be read.

        """
        return await self._require_ledger().call(Ledger.last_event_counter, self.device_id)

    # -- what the requesters ask -------------------------------------------------------------

    async def start(
        self, currency: str, amount_due: int | None, timeout_ms: int, requester: str
    ) -> TransactionRecord:
        """Open the board's transaction for ``requester`` and enable the acceptors; returns it.

        ``amount_due`` (whole units) ends it once reached; ``timeout_ms`` (ms) is
        how long it takes money.  The transaction is this acceptor's in the ledger;
        every other member of the till that can take money now is enabled too (one
        that cannot stays inhibited until it can: offline, stacker out, fraud, still reading
        what it buffered before this start).

        Raises:
            InvalidData: ``currency`` is not the acceptor's.
            SequenceError: a deposit is already active (on any member of the till).
            MediaError: the cash box is full.
            FraudAttempt: the acceptor reported manipulation.
            HardwareError: the acceptor or the ledger failed.
            NotReady: the ledger is not open or the acceptor is not connected.

        """
        ledger = self._require_ledger()
        if currency != self._owner.currency:
            raise InvalidData(f"this acceptor takes {self._owner.currency}, not {currency}")
        if self._status.box_full:
            # A technician may have emptied the box from the CLI since.
            await self.refresh_cash_box()
        async with self._credit_lock:
            if self._deposit is not None:
                raise SequenceError(f"deposit {self._deposit.id} is active")
            self._check_accepting()
            record = await ledger.call(
                Ledger.begin,
                self.device_id,
                currency=self._owner.currency,
                amount_due=amount_due,
                timeout_ms=timeout_ms,
                at_ms=now_ms(),
            )
            loop = asyncio.get_running_loop()
            deposit = _Deposit(
                record.id,
                amount_due,
                loop.time() + timeout_ms / 1000,
                requester,
                self._owner.currency,
                self,
            )
            self._till.deposit = deposit
            deposit.task = asyncio.create_task(
                self._run_deposit(deposit),
                name=f"{self.device_id}-deposit-{record.id}",
            )
        self._till.show_deposit(record.id, 0, amount_due)
        try:
            await self.sync_inhibit()
        except BaseException:
            deposit.request_end(EndReason.ENDED)
            raise
        for member in self._others():
            await member.sync_inhibit_quietly()
        log.info(
            "%s: deposit %s started (due %s, timeout %d ms)",
            self.device_id,
            record.id,
            amount_due,
            timeout_ms,
        )
        return record

    async def end(self, transaction_id: str, requester: str, *, staff: bool) -> TransactionRecord:
        """End the active transaction, or settle an ``unknown`` one; returns it.

        A transaction that already ended (or was settled) is returned unchanged,
        so a UI racing the deadline or ``amount_due`` gets its final record.
        Only the requester that started the active transaction, or staff
        (logged with who), may end it.  Anyone may settle an ``unknown`` one:
        who started it is not known after a restart, and settling moves no
        money (it marks the ledger's record reconciled).

        A transaction of another acceptor of the till (one deposit across several)
        is ended or settled here the same way.

        Raises:
            InvalidData: no transaction of this till's acceptors has that id.
            Forbidden: another requester's active transaction, and the requester
                is not staff.
            NotReady: the ledger is not open yet.
            LedgerError: the ledger failed.

        """
        ledger = self._require_ledger()
        deposit = self._deposit
        if deposit is not None and deposit.id == transaction_id:
            if deposit.requester != requester:
                if not staff:
                    raise Forbidden(
                        f"ending {deposit.requester}'s deposit {deposit.id} is a staff"
                        " operation: it needs the technician role"
                    )
                log.info(
                    "%s: staff operation: ending %s's deposit %s by %s",
                    self.device_id,
                    deposit.requester,
                    deposit.id,
                    requester,
                )
            deposit.request_end(EndReason.ENDED)
            assert deposit.task is not None
            await asyncio.shield(deposit.task)
        record = await self._get(transaction_id)
        if record.state is TransactionState.UNKNOWN:
            record = await ledger.call(Ledger.settle, record.id, now_ms())
            for member in self._till.members:
                if record.id == member._orphan_id:  # noqa: SLF001 - a member of the same till
                    member._orphan_id = None  # noqa: SLF001
                if member._open:  # noqa: SLF001
                    await member.count_unsettled()
            log.info(
                "%s: transaction %s settled (%d %s)",
                self.device_id,
                record.id,
                record.total,
                record.currency,
            )
        return record

    async def transactions(self, transaction_id: str | None) -> list[TransactionRecord]:
        """One transaction by id, or the active one (first) and every unsettled one.

        The active one is the board's (whichever acceptor of the till opened it);
        the unsettled ones are those this acceptor opened or took money in.

        Raises:
            InvalidData: no transaction of this till's acceptors has that id.
            NotReady: the ledger is not open yet.
            LedgerError: the ledger failed.

        """
        ledger = self._require_ledger()
        if transaction_id is not None:
            return [await self._get(transaction_id)]
        records = await ledger.call(Ledger.open_transactions, self.device_id)
        deposit = self._till.deposit
        if deposit is not None and all(r.id != deposit.id for r in records):
            active = await ledger.call(Ledger.get, deposit.id)
            if active is not None and active.state is TransactionState.ACTIVE:
                records.insert(0, active)
        return records

    async def count_unsettled(self) -> None:
        """Count again the ``unknown`` transactions this acceptor opened or took money in.

        Raises:
            NotReady: the ledger is not open yet.
            LedgerError: the ledger failed.

        """
        records = await self._require_ledger().call(Ledger.open_transactions, self.device_id)
        unsettled = sum(r.state is TransactionState.UNKNOWN for r in records)
        self._show(replace(self._status, unsettled=unsettled))

    async def _get(self, transaction_id: str) -> TransactionRecord:
        """The transaction if an acceptor of the till opened it or took money in it.

        Raises:
            InvalidData: no such transaction.
            LedgerError: the ledger failed.

        """
        record = await self._require_ledger().call(Ledger.get, transaction_id)
        devices = {member.device_id for member in self._till.members}
        if record is None or (
            record.device_id not in devices and not devices & {c.device_id for c in record.credits}
        ):
            raise InvalidData(f"no transaction {transaction_id} on {self.device_id}")
        return record

    def _others(self) -> list[DepositService]:
        """The other members of the till whose ledger is open (their driver runs)."""
        return [m for m in self._till.members if m is not self and m._open]  # noqa: SLF001

    # -- the inhibit -------------------------------------------------------------------------

    async def sync_inhibit(self, *, force: bool = False) -> None:
        """Bring the hardware to the inhibit state the deposit calls for.

        Decided inside the lock, so concurrent callers end with the latest wish.
        Without ``force`` the command is skipped when the status already agrees.

        Raises:
            DeviceError: from :meth:`DepositOwner.set_inhibit`.

        """
        async with self._hw_lock:
            inhibited = self._should_inhibit()
            if not force and self._status.inhibited == inhibited:
                return
            await self._owner.set_inhibit(inhibited)
            self._show(replace(self._status, inhibited=inhibited))

    async def sync_inhibit_quietly(self, *, force: bool = False) -> None:
        """Like :meth:`sync_inhibit`, for paths that must go on when the hardware fails."""
        try:
            await self.sync_inhibit(force=force)
        except DeviceError as exc:
            log.warning("%s: could not set the acceptor's inhibit: %s", self.device_id, exc)

    def _taking_deposit(self) -> _Deposit | None:
        """The board's active deposit if it takes this acceptor's currency, else None."""
        deposit = self._till.deposit
        if deposit is None or deposit.currency != self._owner.currency:
            return None
        return deposit

    def show_deposit(self, transaction_id: str | None, total: int | None, due: int | None) -> None:
        """Show the board's active deposit (or none) in this acceptor's status."""
        self._show(
            replace(self._status, transaction_id=transaction_id, total=total, amount_due=due)
        )

    def _should_inhibit(self) -> bool:
        deposit = self._taking_deposit()
        return (
            deposit is None
            or deposit.reason is not None
            or self._status.box_full
            or self._fraud
            or self._ledger_failed
            or self._blocked
            or self._leaving
            or self._catching_up
        )

    # -- internals ---------------------------------------------------------------------------

    def _show(self, status: DepositStatus) -> None:
        self._status = status
        self._owner.on_status(status)

    def _require_ledger(self) -> LedgerRunner:
        if self._ledger is None:
            raise NotReady(f"the {self.item} ledger is not open yet")
        return self._ledger

    def _check_accepting(self) -> None:
        """Raise why no deposit can start now, if anything stops it."""
        if self._ledger_failed:
            raise HardwareError(
                f"the {self.item} ledger failed; the kiosk takes no money until checked"
            )
        if self._fraud:
            raise FraudAttempt("the acceptor reported a fraud attempt")
        if self._status.box_full:
            raise MediaError("the cash box is full")
        condition = self._owner.condition
        if condition is DeviceState.HARDWARE_ERROR:
            raise HardwareError(f"the {self.item} acceptor is faulty")
        if condition is not DeviceState.ONLINE:
            raise NotReady(f"the {self.item} acceptor is {condition}")

    def _set_box(self, box: CashBox) -> None:
        full = box.coins >= self._owner.cash_box_capacity
        if full and not self._status.box_full:
            log.warning(
                "%s: cash box full (%d %ss, %d %s)",
                self.device_id,
                box.coins,
                self.item,
                box.total,
                self._owner.currency,
            )
        became = full != self._status.box_full
        self._show(replace(self._status, box_full=full, box_items=box.coins))
        if became:
            self._owner.on_condition()

    async def _run_deposit(self, deposit: _Deposit) -> None:
        """Wait for an end request or the deadline, then end the deposit (its own task)."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout_at(deposit.deadline):
                await deposit.end_requested.wait()
        deposit.request_end(EndReason.TIMEOUT)
        assert deposit.reason is not None
        # Inhibit first: items the acceptors report until then still belong to this deposit,
        # and so do items held in escrow for it, once stacked.
        await self.sync_inhibit_quietly(force=True)
        for member in self._others():
            await member.sync_inhibit_quietly(force=True)
        if deposit.held:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(HOLD_WAIT_S):
                    await deposit.released.wait()
            if deposit.held:
                log.error(
                    "%s: deposit %s ends with %d %s(s) still held in escrow",
                    self.device_id,
                    deposit.id,
                    deposit.held,
                    self.item,
                )
        async with self._credit_lock:
            self._till.deposit = None
            try:
                record = await self._require_ledger().call(
                    Ledger.end,
                    deposit.id,
                    deposit.reason,
                    now_ms(),
                )
            except (LedgerError, NotReady):
                log.critical(
                    "%s: could not end deposit %s in the ledger", self.device_id, deposit.id
                )
                self._ledger_failed = True
                self._owner.on_condition()
                self._till.show_deposit(None, None, None)
                return
            self._till.show_deposit(None, None, None)
            log.info(
                "%s: deposit %s ended (%s): %d %s",
                self.device_id,
                deposit.id,
                deposit.reason,
                record.total,
                record.currency,
            )
            self._owner.on_deposit_ended(record, deposit.reason)
