"""The SQLite-on-a-thread base: WAL, the synchronous level, transactions, close."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import pytest

from devices.runtime.sqlite_store import (
    SqliteStore,
    StoreClosedError,
    Synchronous,
    connect,
    transaction,
)


class _Counter(SqliteStore):
    """A tiny store: one table of numbers."""

    def _setup(self, db: sqlite3.Connection) -> None:
        db.execute("CREATE TABLE IF NOT EXISTS n (v INTEGER NOT NULL)")

    def add(self, *values: int, fail: bool = False) -> str:
        with self.transaction() as db:
            for v in values:
                db.execute("INSERT INTO n VALUES (?)", (v,))
            if fail:
                raise ValueError("refused half-way")
        return threading.current_thread().name

    def pragmas(self, level: Synchronous | None) -> tuple[str, int, int]:
        with self.transaction(synchronous=level) as db:
            inside = db.execute("PRAGMA synchronous").fetchone()[0]
        after = self.db.execute("PRAGMA synchronous").fetchone()[0]
        mode = self.db.execute("PRAGMA journal_mode").fetchone()[0]
        return mode, inside, after

    def add_alone(self, value: int | None, level: Synchronous | None) -> int:
        """One autocommitted INSERT at ``level``; the connection's level after it."""
        self.execute("INSERT INTO n VALUES (?)", (value,), synchronous=level)
        assert not self.db.in_transaction
        level_after: int = self.db.execute("PRAGMA synchronous").fetchone()[0]
        return level_after

    def values(self) -> list[int]:
        return [v for (v,) in self.db.execute("SELECT v FROM n ORDER BY rowid")]


_LEVEL = {Synchronous.NORMAL: 1, Synchronous.FULL: 2}


@pytest.mark.parametrize("level", list(Synchronous))
async def test_wal_and_the_level_and_one_commit_at_another_level(
    tmp_path: Path, level: Synchronous
) -> None:
    store = _Counter(tmp_path / "sub" / "n.sqlite3", synchronous=level, thread_name="test-store")
    await store.open()
    try:
        assert await store.run(store.pragmas, None) == ("wal", _LEVEL[level], _LEVEL[level])
        other = Synchronous.NORMAL if level is Synchronous.FULL else Synchronous.FULL
        assert await store.run(store.pragmas, other) == ("wal", _LEVEL[other], _LEVEL[level])
        assert await store.run(store.add_alone, 7, other) == _LEVEL[level]
        with pytest.raises(sqlite3.IntegrityError):
            await store.run(store.add_alone, None, other)  # v is NOT NULL
        assert await store.run(store.values) == [7]
        assert await store.run(store.pragmas, None) == ("wal", _LEVEL[level], _LEVEL[level])
    finally:
        await store.close()


async def test_work_runs_on_the_store_thread_and_a_failed_transaction_rolls_back(
    tmp_path: Path,
) -> None:
    store = _Counter(tmp_path / "n.sqlite3", synchronous=Synchronous.FULL, thread_name="test-store")
    await store.open()
    try:
        assert (await store.run(store.add, 1, 2)).startswith("test-store")
        with pytest.raises(ValueError, match="half-way"):
            await store.run(store.add, 3, 4, fail=True)
        assert await store.submit(store.add, 5) is not None
        assert await store.run(store.values) == [1, 2, 5]
    finally:
        await store.close()
    reopened = _Counter(tmp_path / "n.sqlite3", synchronous=Synchronous.FULL, thread_name="t")
    await reopened.open()
    try:
        assert await reopened.run(reopened.values) == [1, 2, 5]
    finally:
        await reopened.close()


async def test_closed_store_refuses_and_close_is_idempotent(tmp_path: Path) -> None:
    store = _Counter(tmp_path / "n.sqlite3", synchronous=Synchronous.NORMAL, thread_name="t")
    with pytest.raises(StoreClosedError):
        await store.run(store.values)
    await store.open()
    await store.close()
    await store.close()
    with pytest.raises(RuntimeError):
        await store.run(store.values)


async def test_a_file_that_is_not_a_database_fails_open_and_frees_the_connection(
    tmp_path: Path,
) -> None:
    path = tmp_path / "n.sqlite3"
    path.write_bytes(b"this is not an SQLite database, it is text" * 100)
    store = _Counter(path, synchronous=Synchronous.FULL, thread_name="t")
    with pytest.raises(sqlite3.DatabaseError):
        await store.open()
    with pytest.raises(StoreClosedError):
        await store.run(store.values)
    await store.close()


def test_connect_refuses_a_database_that_cannot_be_durable() -> None:
    """An in-memory database has no WAL: ``connect`` says so instead of running without it."""
    with pytest.raises(sqlite3.OperationalError, match="not durable"):
        connect(Path(":memory:"), synchronous=Synchronous.FULL, busy_timeout_s=1.0)


def _insert_then_fail(db: sqlite3.Connection) -> None:
    with transaction(db):
        db.execute("INSERT INTO n VALUES (1)")
        db.execute("INSERT INTO n VALUES (NULL)")  # NOT NULL


def test_transaction_rolls_back_and_the_connection_stays_usable(tmp_path: Path) -> None:
    db = connect(tmp_path / "t.sqlite3", synchronous=Synchronous.NORMAL, busy_timeout_s=1.0)
    try:
        db.execute("CREATE TABLE n (v INTEGER NOT NULL)")
        with pytest.raises(sqlite3.IntegrityError):
            _insert_then_fail(db)
        with transaction(db):
            db.execute("INSERT INTO n VALUES (3)")
        assert db.execute("SELECT v FROM n").fetchall() == [(3,)]
    finally:
        db.close()


def _open_together(path: Path, count: int) -> tuple[list[tuple[str]], list[BaseException]]:
    """``count`` threads connect to ``path`` at once and create a table, as a ledger does."""
    start = threading.Barrier(count)
    errors: list[BaseException] = []
    modes: list[tuple[str]] = []

    def open_one() -> None:
        start.wait()
        try:
            conn = connect(path, synchronous=Synchronous.FULL, busy_timeout_s=5.0)
            with transaction(conn):
                conn.execute("CREATE TABLE IF NOT EXISTS t (x)")
            modes.append(conn.execute("PRAGMA journal_mode").fetchone())
            conn.close()
        except sqlite3.Error as exc:
            errors.append(exc)

    threads = [threading.Thread(target=open_one) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return modes, errors


def test_connections_opening_a_new_file_together_all_get_wal(tmp_path: Path) -> None:
    # Two acceptors (coins, notes) open the one ledger file at start-up: the switch to WAL
    # failed at once with "database is locked" for one of them (about one round in 30).
    for round_ in range(60):
        modes, errors = _open_together(tmp_path / f"ledger-{round_}.sqlite3", 4)
        assert errors == []
        assert modes == [("wal",)] * 4
