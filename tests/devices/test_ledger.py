"""Unit tests of the coin ledger (SQLite) and its worker-thread runner."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from devices.cash.ledger import (
    SCHEMA_VERSION,
    EndReason,
    Ledger,
    LedgerError,
    LedgerRunner,
    TransactionState,
)
from devices.errors import HardwareError


@pytest.fixture
def ledger(tmp_path: Path) -> Iterator[Ledger]:
    led = Ledger.open(tmp_path / "ledger.sqlite3")
    yield led
    led.close()


def begin(ledger: Ledger, device: str = "coin", due: int | None = None, at: int = 1_000) -> str:
    return ledger.begin(device, currency="VND", amount_due=due, timeout_ms=60_000, at_ms=at).id


def test_durability_pragmas(ledger: Ledger, tmp_path: Path) -> None:
    assert ledger._conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    assert ledger._conn.execute("PRAGMA synchronous").fetchone() == (2,)
    assert ledger._conn.execute("PRAGMA foreign_keys").fetchone() == (1,)
    # journal_mode is a property of the file: a fresh connection sees it too.
    other = sqlite3.connect(tmp_path / "ledger.sqlite3")
    try:
        assert other.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    finally:
        other.close()


def test_deposit_life(ledger: Ledger) -> None:
    record = ledger.begin("coin", currency="VND", amount_due=3000, timeout_ms=60_000, at_ms=10_000)
    assert (record.state, record.total, record.deadline_ms, record.credits) == (
        "active",
        0,
        70_000,
        (),
    )
    first = ledger.credit(record.id, 2000, event_counter=7, at_ms=10_100)
    second = ledger.credit(record.id, 2000, event_counter=8, at_ms=10_200)
    assert (first.record.index, first.total, first.record.overpayment) == (1, 2000, False)
    assert (second.record.index, second.total, second.record.overpayment) == (2, 4000, True)
    assert (second.box.coins, second.box.total) == (2, 4000)
    ended = ledger.end(record.id, EndReason.AMOUNT_REACHED, 10_300)
    assert (ended.state, ended.reason, ended.ended_ms, ended.total, ended.overpayment) == (
        "ended",
        "amountReached",
        10_300,
        4000,
        1000,
    )
    assert [(c.index, c.value, c.event_counter) for c in ended.credits] == [
        (1, 2000, 7),
        (2, 2000, 8),
    ]
    with pytest.raises(LedgerError):
        ledger.credit(record.id, 1000, event_counter=None, at_ms=10_400)
    with pytest.raises(LedgerError):
        ledger.end(record.id, EndReason.ENDED, 10_400)
    assert ledger.get(record.id) == ended


def test_one_active_transaction_per_device(ledger: Ledger) -> None:
    begin(ledger, "coin")
    with pytest.raises(LedgerError):
        begin(ledger, "coin")
    begin(ledger, "coin2")  # another acceptor on the same board is independent
    assert ledger.count("coin", TransactionState.ACTIVE) == 1


def test_history_cannot_be_rewritten(ledger: Ledger) -> None:
    tx = begin(ledger)
    ledger.credit(tx, 1000, event_counter=None, at_ms=2_000)
    ledger.end(tx, EndReason.ENDED, 3_000)
    ledger.collect("coin", 4_000)
    conn = ledger._conn
    for sql in (
        "UPDATE credits SET value = 5000",
        "DELETE FROM credits",
        "UPDATE collections SET total = 0",
        "DELETE FROM collections",
        "DELETE FROM transactions",
        "UPDATE transactions SET state = 'active'",
    ):
        with pytest.raises(sqlite3.IntegrityError):
            conn.execute(sql)
    assert ledger.get(tx) is not None
    assert ledger.get(tx).total == 1000  # type: ignore[union-attr]


def test_recover_and_settle(ledger: Ledger) -> None:
    tx = begin(ledger, at=1_000)
    ledger.credit(tx, 5000, event_counter=None, at_ms=1_100)
    ended = begin(ledger, "coin2")
    ledger.end(ended, EndReason.ENDED, 1_200)
    assert ledger.recover("coin", 9_000) == [tx]
    assert ledger.recover("coin", 9_500) == []
    record = ledger.get(tx)
    assert record is not None
    assert (record.state, record.recovered_ms, record.total) == ("unknown", 9_000, 5000)
    assert [t.id for t in ledger.open_transactions("coin")] == [tx]
    with pytest.raises(LedgerError):
        ledger.settle(ended, 9_600)  # only unknown transactions settle
    settled = ledger.settle(tx, 9_700)
    assert (settled.state, settled.settled_ms) == ("settled", 9_700)
    assert ledger.open_transactions("coin") == []
    assert ledger.get(tx, "coin2") is None  # scoped to its device


def test_open_transactions_lists_active_first(ledger: Ledger) -> None:
    old = begin(ledger, at=1_000)
    ledger.recover("coin", 2_000)
    orphan = ledger.credit_orphan(
        "coin", 1000, currency="VND", orphan_id=None, event_counter=None, at_ms=2_500
    )
    active = begin(ledger, at=3_000)
    assert [t.id for t in ledger.open_transactions("coin")] == [
        active,
        old,
        orphan.record.transaction_id,
    ]


def test_orphan_credits(ledger: Ledger) -> None:
    first = ledger.credit_orphan(
        "coin", 1000, currency="VND", orphan_id=None, event_counter=None, at_ms=1_000
    )
    assert first.new_transaction
    tx = first.record.transaction_id
    second = ledger.credit_orphan(
        "coin", 2000, currency="VND", orphan_id=tx, event_counter=None, at_ms=1_100
    )
    assert (
        second.new_transaction,
        second.record.transaction_id,
        second.record.index,
        second.total,
    ) == (
        False,
        tx,
        2,
        3000,
    )
    record = ledger.get(tx)
    assert record is not None
    assert (record.state, record.orphan, record.amount_due) == ("unknown", True, None)
    ledger.settle(tx, 1_200)
    third = ledger.credit_orphan(
        "coin", 5000, currency="VND", orphan_id=tx, event_counter=None, at_ms=1_300
    )
    assert third.new_transaction
    assert third.record.transaction_id != tx
    assert ledger.cash_box("coin").coins == 3


def test_cash_box_and_collections(ledger: Ledger) -> None:
    assert ledger.cash_box("coin").coins == 0
    tx = begin(ledger)
    for value in (1000, 2000, 5000):
        ledger.credit(tx, value, event_counter=None, at_ms=1_500)
    box = ledger.cash_box("coin")
    assert (box.coins, box.total, box.since_ms) == (3, 8000, 1_500)
    collection = ledger.collect("coin", 5_000, note="seal 42")
    assert (collection.coins, collection.total, collection.since_ms, collection.note) == (
        3,
        8000,
        1_500,
        "seal 42",
    )
    assert (ledger.cash_box("coin").coins, ledger.cash_box("coin").total) == (0, 0)
    ledger.credit(tx, 1000, event_counter=None, at_ms=6_000)
    empty = ledger.collect("coin2", 7_000)
    assert (empty.coins, empty.total) == (0, 0)
    assert [c.id for c in ledger.collections("coin")] == [collection.id]
    assert [c.device_id for c in ledger.collections()] == ["coin2", "coin"]
    # Collecting does not touch the credits themselves.
    assert ledger.get(tx).total == 9000  # type: ignore[union-attr]


def test_listing_and_export(ledger: Ledger) -> None:
    a = begin(ledger, due=2000, at=1_000)
    ledger.credit(a, 2000, event_counter=1, at_ms=1_100)
    ledger.end(a, EndReason.AMOUNT_REACHED, 1_200)
    b = begin(ledger, "coin2", at=2_000)
    ledger.credit(b, 1000, event_counter=None, at_ms=2_100)
    ledger.credit(b, 5000, event_counter=None, at_ms=2_200)

    assert [t.id for t in ledger.transactions()] == [b, a]
    assert [t.id for t in ledger.transactions(device_id="coin")] == [a]
    assert [t.id for t in ledger.transactions(state=TransactionState.ACTIVE)] == [b]
    assert [t.id for t in ledger.transactions(since_ms=1_500)] == [b]
    assert [t.id for t in ledger.transactions(limit=1)] == [b]

    rows = ledger.export()
    assert [(r.transaction_id, r.index, r.value, r.state) for r in rows] == [
        (a, 1, 2000, "ended"),
        (b, 1, 1000, "active"),
        (b, 2, 5000, "active"),
    ]
    assert rows[0].reason == "amountReached"
    assert [r.value for r in ledger.export(since_ms=2_100, until_ms=2_200)] == [1000]
    assert [r.value for r in ledger.export(device_id="coin2")] == [1000, 5000]


def test_last_event_counter(ledger: Ledger) -> None:
    assert ledger.last_event_counter("coin") is None
    tx = begin(ledger)
    ledger.credit(tx, 1000, event_counter=254, at_ms=5_000)
    # Insertion order counts, not the wall clock (which may step back).
    ledger.credit(tx, 1000, event_counter=255, at_ms=4_000)
    ledger.credit(tx, 1000, event_counter=None, at_ms=6_000)
    assert ledger.last_event_counter("coin") == 255
    assert ledger.last_event_counter("coin2") is None


def test_reopen_keeps_everything(tmp_path: Path) -> None:
    path = tmp_path / "ledger.sqlite3"
    first = Ledger.open(path)
    tx = begin(first)
    first.credit(tx, 2000, event_counter=None, at_ms=2_000)
    first.close()
    second = Ledger.open(path)
    try:
        record = second.get(tx)
        assert record is not None
        assert (record.state, record.total) == ("active", 2000)
    finally:
        second.close()


def test_open_errors(tmp_path: Path) -> None:
    with pytest.raises(LedgerError, match="cannot open"):
        Ledger.open(tmp_path / "missing-dir" / "ledger.sqlite3")
    path = tmp_path / "ledger.sqlite3"
    Ledger.open(path).close()
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA user_version = 99")
    conn.close()
    with pytest.raises(LedgerError, match="schema 99"):
        Ledger.open(path)
    assert issubclass(LedgerError, HardwareError)


async def test_runner_uses_one_worker_thread(tmp_path: Path) -> None:
    runner = await LedgerRunner.open(tmp_path / "ledger.sqlite3")
    try:
        names = {await runner.call(lambda _: threading.current_thread().name) for _ in range(5)}
        assert len(names) == 1
        assert names.pop().startswith("kioskd-ledger")
        assert threading.current_thread().name not in names
        with pytest.raises(LedgerError):
            await runner.call(Ledger.end, "no-such-id", EndReason.ENDED, 1)
    finally:
        await runner.aclose()


async def test_runner_finishes_a_write_whose_caller_was_cancelled(tmp_path: Path) -> None:
    runner = await LedgerRunner.open(tmp_path / "ledger.sqlite3")
    release = threading.Event()
    try:
        tx = (
            await runner.call(
                Ledger.begin, "coin", currency="VND", amount_due=None, timeout_ms=1000, at_ms=1
            )
        ).id
        # Occupy the worker so the credit is still queued when its caller is cancelled.
        blocker = asyncio.ensure_future(runner.call(lambda _: release.wait(5)))
        credit = asyncio.ensure_future(
            runner.call(Ledger.credit, tx, 2000, event_counter=None, at_ms=2)
        )
        await asyncio.sleep(0.05)
        credit.cancel()
        release.set()
        await blocker
        with pytest.raises(asyncio.CancelledError):
            await credit
        record = await runner.call(Ledger.get, tx)
        assert record is not None
        assert record.total == 2000
    finally:
        release.set()
        await runner.aclose()


def test_recovered_credits_and_lost_events(ledger: Ledger) -> None:
    from devices.cash.ledger import LostReason

    tx = begin(ledger, at=1_000)
    ledger.credit(tx, 1000, event_counter=4, at_ms=1_100)
    with pytest.raises(LedgerError):
        ledger.credit_recovered(tx, 2000, event_counter=5, at_ms=1_200)  # still active
    ledger.recover("coin", 2_000)
    credit = ledger.credit_recovered(tx, 2000, event_counter=5, at_ms=2_100)
    assert (credit.record.index, credit.total, credit.box.coins) == (2, 3000, 2)
    ledger.record_lost(
        "coin", transaction_id=tx, count=3, reason=LostReason.COUNTER_JUMP, at_ms=2_200
    )
    ledger.record_lost(
        "coin", transaction_id=tx, count=None, reason=LostReason.DEVICE_RESET, at_ms=2_300
    )
    record = ledger.get(tx)
    assert record is not None
    assert (record.state, record.total, record.lost_events, record.lost_unknown) == (
        "unknown",
        3000,
        3,
        True,
    )
    assert [(x.count, x.reason) for x in ledger.lost_events("coin")] == [
        (None, "deviceReset"),
        (3, "counterJump"),
    ]
    assert ledger.last_event_counter("coin") == 5
    ledger.save_event_counter("coin", 9, 2_400)
    assert ledger.last_event_counter("coin") == 9
    orphan = ledger.credit_orphan(
        "coin", 1000, currency="VND", orphan_id=None, event_counter=10, at_ms=2_500
    )
    with pytest.raises(LedgerError):  # an orphan is not a recovered deposit
        ledger.credit_recovered(orphan.record.transaction_id, 1000, event_counter=11, at_ms=2_600)
    with pytest.raises(sqlite3.IntegrityError):
        ledger._conn.execute("DELETE FROM lost_events")


def test_version_1_ledger_is_upgraded_with_its_counters(tmp_path: Path) -> None:
    path = tmp_path / "ledger.sqlite3"
    old = Ledger.open(path)
    tx = begin(old)
    old.credit(tx, 1000, event_counter=200, at_ms=2_000)
    old._conn.executescript(
        "DROP TABLE lost_events; DROP TABLE acceptor_counters; PRAGMA user_version = 1;"
    )
    old.close()
    upgraded = Ledger.open(path)
    try:
        assert upgraded._conn.execute("PRAGMA user_version").fetchone() == (SCHEMA_VERSION,)
        assert upgraded.last_event_counter("coin") == 200
        assert upgraded.get(tx).lost_events == 0  # type: ignore[union-attr]
    finally:
        upgraded.close()


def test_version_2_ledger_takes_counters_past_255(tmp_path: Path) -> None:
    """An SSP validator's stacked count is 32-bit: v2's bound of 255 (ccTalk's) is dropped.

    Found by the note chaos bench: the 256th note stacked could not be recorded.
    """
    path = tmp_path / "ledger.sqlite3"
    old = Ledger.open(path)
    tx = begin(old)
    old.credit(tx, 1000, event_counter=200, at_ms=2_000)
    old._conn.executescript(
        "BEGIN; DROP TABLE acceptor_counters;"
        " CREATE TABLE acceptor_counters (device_id TEXT PRIMARY KEY,"
        " counter INTEGER NOT NULL CHECK (counter BETWEEN 0 AND 255), ts_ms INTEGER NOT NULL)"
        " STRICT; INSERT INTO acceptor_counters VALUES ('coin', 200, 2000);"
        " PRAGMA user_version = 2; COMMIT;"
    )
    with pytest.raises(LedgerError, match="CHECK constraint"):
        old.save_event_counter("coin", 256, at_ms=2_100)
    old.close()
    upgraded = Ledger.open(path)
    try:
        assert upgraded._conn.execute("PRAGMA user_version").fetchone() == (SCHEMA_VERSION,)
        assert upgraded.last_event_counter("coin") == 200
        upgraded.credit(tx, 50_000, event_counter=70_000, at_ms=2_200)
        assert upgraded.last_event_counter("coin") == 70_000
        with pytest.raises(LedgerError, match="CHECK constraint"):
            upgraded.save_event_counter("coin", -1, at_ms=2_300)
    finally:
        upgraded.close()
