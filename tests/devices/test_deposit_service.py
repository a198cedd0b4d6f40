"""The deposit service on its own: a real ledger file, an owner that records what it is told.

No device class and no wire messages: the owner here is a note acceptor (``item``
``note``, a cash box of three notes), the way a banknote validator will use the
service, so the money rules are shown to hold for any acceptor class.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from devices.base import DeviceState
from devices.cash.deposit import DepositService, DepositStatus
from devices.cash.ledger import (
    LEDGER_FILE,
    Credit,
    CreditRecord,
    EndReason,
    Ledger,
    LedgerError,
    LostReason,
    TransactionRecord,
    TransactionState,
)
from devices.errors import (
    Forbidden,
    FraudAttempt,
    HardwareError,
    InvalidData,
    MediaError,
    NotReady,
    SequenceError,
)
from devices.runtime.clock import now_ms

NOTES_PER_BOX = 3


@dataclass
class Owner:
    """A note acceptor as the service sees it: the inhibit line and what was reported.

    ``credits_on_disk`` is what another connection found in the ledger file at the
    moment each credit was reported (commit before publish).
    """

    path: Path
    condition: DeviceState = DeviceState.ONLINE
    currency: str = "VND"
    cash_box_capacity: int = NOTES_PER_BOX
    inhibits: list[bool] = field(default_factory=list)
    status: DepositStatus = field(default_factory=DepositStatus)
    conditions: int = 0
    credits: list[Credit] = field(default_factory=list)
    credits_on_disk: list[int] = field(default_factory=list)
    ended: list[tuple[TransactionRecord, EndReason]] = field(default_factory=list)
    recovered: list[TransactionRecord] = field(default_factory=list)
    lost: list[tuple[int | None, LostReason, str | None]] = field(default_factory=list)

    async def set_inhibit(self, inhibited: bool) -> None:
        self.inhibits.append(inhibited)

    def on_status(self, status: DepositStatus) -> None:
        self.status = status

    def on_condition(self) -> None:
        self.conditions += 1

    def on_credit(self, credit: Credit) -> None:
        conn = sqlite3.connect(self.path)
        try:
            (n,) = conn.execute(
                "SELECT count(*) FROM credits WHERE transaction_id = ? AND idx = ?",
                (credit.record.transaction_id, credit.record.index),
            ).fetchone()
        finally:
            conn.close()
        self.credits_on_disk.append(n)
        self.credits.append(credit)

    def on_deposit_ended(self, record: TransactionRecord, reason: EndReason) -> None:
        self.ended.append((record, reason))

    def on_recovered(self, record: TransactionRecord) -> None:
        self.recovered.append(record)

    def on_events_lost(
        self, count: int | None, reason: LostReason, transaction_id: str | None
    ) -> None:
        self.lost.append((count, reason, transaction_id))

    @property
    def inhibited(self) -> bool:
        """What the hardware was told last (inhibited before anything was said)."""
        return self.inhibits[-1] if self.inhibits else True


class Crash(BaseException):
    """Stands for the process dying (``kill -9``) at the injected crash point."""


@pytest.fixture
async def acceptor(tmp_path: Path) -> AsyncIterator[tuple[DepositService, Owner]]:
    service, owner = await open_service(tmp_path)
    await service.hardware_ready()
    try:
        yield service, owner
    finally:
        await service.aclose()


async def open_service(tmp_path: Path) -> tuple[DepositService, Owner]:
    owner = Owner(tmp_path / LEDGER_FILE)
    service = DepositService(owner, "notes", item="note")
    await service.open(owner.path)
    return service, owner


async def until_ended(owner: Owner, count: int = 1) -> None:
    async with asyncio.timeout(5):
        while len(owner.ended) < count:
            await asyncio.sleep(0.01)


def read_ledger(tmp_path: Path, tx_id: str) -> TransactionRecord:
    ledger = Ledger.open(tmp_path / LEDGER_FILE)
    try:
        record = ledger.get(tx_id)
    finally:
        ledger.close()
    assert record is not None
    return record


async def test_each_note_is_on_disk_before_it_is_reported_and_the_target_ends_the_deposit(
    acceptor: tuple[DepositService, Owner],
) -> None:
    service, owner = acceptor
    assert owner.inhibited
    record = await service.start("VND", 30_000, 60_000, "kiosk-ui")
    assert not owner.inhibited
    assert (owner.status.transaction_id, owner.status.total) == (record.id, 0)
    await service.credit(20_000)
    await service.credit(20_000)
    assert owner.credits_on_disk == [1, 1]
    assert [c.total for c in owner.credits] == [20_000, 40_000]
    assert [c.record.overpayment for c in owner.credits] == [False, True]
    await until_ended(owner)
    ended, reason = owner.ended[0]
    assert (ended.id, ended.total, ended.overpayment, reason) == (
        record.id,
        40_000,
        10_000,
        EndReason.AMOUNT_REACHED,
    )
    assert owner.inhibited
    assert owner.status == DepositStatus(inhibited=True, box_items=2)


async def test_outside_a_deposit_the_acceptor_is_inhibited_and_a_stray_note_is_kept(
    acceptor: tuple[DepositService, Owner],
) -> None:
    service, owner = acceptor
    told = len(owner.inhibits)
    await service.credit(50_000)  # the hardware ignored its inhibit
    assert owner.inhibits[told:] == [True], "the inhibit is said again"
    (credit,) = owner.credits
    orphan = read_ledger(owner.path.parent, credit.record.transaction_id)
    assert (orphan.state, orphan.orphan, orphan.total) == (TransactionState.UNKNOWN, True, 50_000)
    assert owner.status.unsettled == 1
    settled = await service.end(orphan.id, "anyone", staff=False)
    assert settled.state is TransactionState.SETTLED
    assert owner.status.unsettled == 0


async def test_the_deposit_times_out_and_only_its_requester_or_staff_ends_it(
    acceptor: tuple[DepositService, Owner],
) -> None:
    service, owner = acceptor
    first = await service.start("VND", None, 50, "ui-a")
    await until_ended(owner)
    assert owner.ended[0][1] is EndReason.TIMEOUT
    assert owner.inhibited

    second = await service.start("VND", None, 60_000, "ui-a")
    with pytest.raises(SequenceError):
        await service.start("VND", None, 60_000, "ui-a")
    with pytest.raises(Forbidden):
        await service.end(second.id, "ui-b", staff=False)
    assert not owner.inhibited
    ended = await service.end(second.id, "technician", staff=True)
    assert (ended.state, ended.reason) == (TransactionState.ENDED, EndReason.ENDED)
    assert owner.inhibited
    # Ending again returns the final record unchanged.
    assert await service.end(first.id, "ui-a", staff=False) == read_ledger(
        owner.path.parent, first.id
    )
    with pytest.raises(InvalidData):
        await service.end("no-such-deposit", "ui-a", staff=False)
    with pytest.raises(InvalidData):
        await service.start("USD", None, 60_000, "ui-a")


async def test_a_crash_after_the_commit_loses_no_note_and_the_next_start_reports_it_unknown(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The crash point is injected (``after_commit``), as the chaos test does in a subprocess."""
    service, owner = await open_service(tmp_path)
    await service.hardware_ready()
    record = await service.start("VND", 100_000, 60_000, "kiosk-ui")
    await service.credit(10_000, event_counter=1)
    committed: list[CreditRecord] = []

    def crash(credit: CreditRecord) -> None:
        committed.append(credit)
        raise Crash

    monkeypatch.setattr(DepositService, "after_commit", crash)
    with pytest.raises(Crash):
        await service.credit(20_000, event_counter=2)
    monkeypatch.undo()
    assert [c.value for c in committed] == [20_000]
    assert [c.total for c in owner.credits] == [10_000], "the crashed credit was not reported"
    # The process is gone: its connection too (an active deposit stays active on disk).
    await service.aclose()

    again, owner = await open_service(tmp_path)
    try:
        assert owner.status.unsettled == 1
        # A note the validator stacked while the daemon was down joins the recovered deposit.
        await again.credit(50_000, event_counter=3)
        assert owner.credits[0].record.transaction_id == record.id
        await again.record_lost(1, LostReason.COUNTER_JUMP, event_counter=5)
        assert owner.lost == [(1, LostReason.COUNTER_JUMP, record.id)]
        assert await again.last_event_counter() == 5
        assert owner.recovered == []
        await again.hardware_ready()
        (recovered,) = owner.recovered
        assert recovered.id == record.id
        assert recovered.state is TransactionState.UNKNOWN
        assert [c.value for c in recovered.credits] == [10_000, 20_000, 50_000]
        assert (recovered.total, recovered.lost_events) == (80_000, 1)
        # Once recovery is over, a stray note is an orphan, not part of the old deposit.
        await again.credit(10_000)
        assert owner.credits[-1].record.transaction_id != record.id
        assert (await again.end(record.id, "kiosk-ui", staff=False)).state is (
            TransactionState.SETTLED
        )
    finally:
        await again.aclose()


async def test_a_full_cash_box_inhibits_until_a_collection(
    acceptor: tuple[DepositService, Owner],
) -> None:
    service, owner = acceptor
    record = await service.start("VND", None, 60_000, "kiosk-ui")
    for _ in range(NOTES_PER_BOX):
        await service.credit(10_000)
    assert owner.status.box_full
    assert service.condition is DeviceState.USER_ERROR
    assert owner.inhibited
    assert owner.status.transaction_id == record.id, "the deposit stays open for the UI"
    await service.end(record.id, "kiosk-ui", staff=False)
    with pytest.raises(MediaError):
        await service.start("VND", None, 60_000, "kiosk-ui")

    ledger = Ledger.open(owner.path)
    try:
        ledger.collect("notes", now_ms(), note="seal 7")
    finally:
        ledger.close()
    await service.start("VND", None, 60_000, "kiosk-ui")
    assert service.condition is DeviceState.ONLINE
    assert (owner.status.box_full, owner.status.box_items) == (False, 0)
    assert not owner.inhibited


async def test_fraud_and_an_offline_acceptor_refuse_a_deposit(
    acceptor: tuple[DepositService, Owner],
) -> None:
    service, owner = acceptor
    await service.fraud()
    assert service.condition is DeviceState.FRAUD_ATTEMPT
    with pytest.raises(FraudAttempt):
        await service.start("VND", None, 60_000, "kiosk-ui")
    await service.hardware_ready()
    assert service.condition is DeviceState.ONLINE
    owner.condition = DeviceState.OFFLINE
    with pytest.raises(NotReady):
        await service.start("VND", None, 60_000, "kiosk-ui")
    owner.condition = DeviceState.HARDWARE_ERROR
    with pytest.raises(HardwareError):
        await service.start("VND", None, 60_000, "kiosk-ui")


async def test_a_ledger_that_cannot_record_stops_the_acceptor(
    acceptor: tuple[DepositService, Owner],
) -> None:
    service, owner = acceptor
    record = await service.start("VND", None, 60_000, "kiosk-ui")
    runner = service.ledger
    assert runner is not None
    await runner.call(lambda ledger: ledger._conn.execute("PRAGMA query_only = ON"))
    with pytest.raises(LedgerError):
        await service.credit(10_000)
    assert owner.credits == []
    assert owner.inhibited
    assert service.condition is DeviceState.HARDWARE_ERROR
    # Its end cannot be recorded either: it stays active on disk (unknown at the next start).
    assert (await service.end(record.id, "kiosk-ui", staff=False)).state is (
        TransactionState.ACTIVE
    )
    assert owner.ended == []
    with pytest.raises(HardwareError):
        await service.start("VND", None, 60_000, "kiosk-ui")


async def test_leaving_inhibits_for_good(acceptor: tuple[DepositService, Owner]) -> None:
    service, owner = acceptor
    record = await service.start("VND", None, 60_000, "kiosk-ui")
    await service.leave()
    assert service.leaving
    assert owner.inhibited
    await service.credit(10_000)  # taken before the inhibit reached the hardware: kept
    assert owner.credits[-1].record.transaction_id == record.id
    assert owner.inhibited


async def test_nothing_works_before_the_ledger_is_open(tmp_path: Path) -> None:
    owner = Owner(tmp_path / LEDGER_FILE)
    service = DepositService(owner, "notes", item="note")
    with pytest.raises(NotReady, match="note ledger"):
        await service.credit(10_000)
    with pytest.raises(NotReady):
        await service.start("VND", None, 60_000, "kiosk-ui")
    assert service.ledger is None


async def test_a_note_held_in_escrow_as_the_deposit_times_out_is_still_its_own(
    acceptor: tuple[DepositService, Owner],
) -> None:
    service, owner = acceptor
    record = await service.start("VND", None, 100, "kiosk-ui")
    assert service.hold() == record.id
    await asyncio.sleep(0.3)  # the deadline passes while the validator stacks the note
    assert owner.inhibited, "inhibited at the deadline"
    assert owner.ended == [], "the deposit waits for the note it holds"
    assert service.hold() is None, "an ending deposit takes no other note"
    await service.credit(100_000)
    service.release(record.id)
    await until_ended(owner)
    ended, reason = owner.ended[0]
    assert (ended.id, ended.total, reason) == (record.id, 100_000, EndReason.TIMEOUT)
    assert not ended.orphan
    assert owner.status.unsettled == 0


async def test_a_note_returned_from_escrow_lets_the_deposit_end(
    acceptor: tuple[DepositService, Owner],
) -> None:
    service, _owner = acceptor
    record = await service.start("VND", None, 60_000, "kiosk-ui")
    assert service.hold() == record.id
    ending = asyncio.create_task(service.end(record.id, "kiosk-ui", staff=False))
    await asyncio.sleep(0.1)
    assert not ending.done(), "depositEnd waits for the note in escrow"
    service.release(record.id)
    ended = await asyncio.wait_for(ending, 2)
    assert (ended.state, ended.total) == (TransactionState.ENDED, 0)


async def test_a_blocked_acceptor_is_inhibited_until_unblocked(
    acceptor: tuple[DepositService, Owner],
) -> None:
    service, owner = acceptor
    record = await service.start("VND", None, 60_000, "kiosk-ui")
    await service.block(True)  # stacker removed
    assert owner.inhibited
    assert service.hold() is None
    await service.block(False)
    assert not owner.inhibited
    assert service.hold() == record.id
