"""The uplink's store-and-forward outbox: every fleet message is in SQLite before it is sent.

WAL with ``synchronous=NORMAL``: a commit is not an fsync (the WAL is synced at
checkpoints), so a power cut may lose the last moments of telemetry but never
corrupts the file; the money ledger keeps FULL.  Rows are deleted only after the
broker's PUBACK, in batches.  The outbox is bounded by bytes and by age: the
oldest rows go first and every one dropped is counted in ``meta``.  The
connection-attempt counter (``bdSeq``) lives here too, so it survives restarts.

``dropped`` counts messages that will never reach the broker, and nothing else.
Rows a connection has read for sending are *claimed*: when the bound removes a
claimed row, it is counted only if its PUBACK has not come by the time the
connection ends (:meth:`Outbox.release`), since a row read is sent from memory.
A daemon crash in that window leaves such a row uncounted.

All SQLite work runs on one named worker thread (``uplink-outbox``), in
submission order.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import time
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

_SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (
    id INTEGER PRIMARY KEY,
    ts_ms INTEGER NOT NULL,
    topic TEXT NOT NULL,
    payload BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
"""
#: SQLite's own cost per row beyond the topic and payload, counted against ``max_bytes``.
ROW_OVERHEAD = 32
_TRIM_BATCH = 512


def row_size(topic: str, payload: bytes) -> int:
    """Bytes a row counts against the bound."""
    return len(topic) + len(payload) + ROW_OVERHEAD


@dataclass(frozen=True, slots=True)
class Row:
    """One stored message: id (the message id), creation time (epoch ms), topic and payload."""

    id: int
    ts_ms: int
    topic: str
    payload: bytes


@dataclass(frozen=True, slots=True)
class OutboxStats:
    """Depth (messages), size (bytes), drops since creation, oldest row's ``ts`` (epoch ms)."""

    messages: int
    bytes: int
    dropped: int
    oldest_ts: int | None


class Outbox:
    """The SQLite outbox at ``path``, bounded by ``max_bytes`` and ``max_age_s`` (seconds).

    Message ids are allocated on the event loop by :meth:`next_id`: microseconds
    since the epoch, or one more than the last id when the clock is behind it,
    so they increase across restarts and clock steps and fit in 63 bits.
    """

    def __init__(self, path: Path, *, max_bytes: int, max_age_s: float) -> None:
        self._path = path
        self._max_bytes = max_bytes
        self._max_age_ms = int(max_age_s * 1000)
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="uplink-outbox")
        self._db: sqlite3.Connection | None = None
        self._last_id = 0
        # Maintained by the worker thread; read on the loop only through stats().
        self._count = 0
        self._bytes = 0
        self._dropped = 0
        self._claimed: set[int] = set()  # read by a connection, not yet acknowledged
        self._trimmed_claimed: set[int] = set()  # of those, removed by the bound

    # -- loop side ----------------------------------------------------------------------------

    async def _call(self, fn: Any, *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self._pool, fn, *args)

    async def open(self) -> None:
        """Open (creating) the database and apply the bounds once.

        Raises:
            sqlite3.Error: the file cannot be opened or is corrupt.

        """
        await self._call(self._open)

    async def close(self) -> None:
        """Finish queued work, close the database and the worker thread."""
        await self._call(self._close)
        self._pool.shutdown(wait=True)

    def next_id(self) -> int:
        """Allocate the next message id (on the loop, before the row is written)."""
        self._last_id = max(self._last_id + 1, time.time_ns() // 1000)
        return self._last_id

    def append(self, row: Row) -> asyncio.Future[None]:
        """Queue ``row`` for writing now; the future resolves once it is committed.

        Rows are written in call order, so ids stay in write order.
        """
        return asyncio.get_running_loop().run_in_executor(self._pool, self._append, row)

    async def last_id(self) -> int:
        """The highest stored id after every queued write (0 when empty)."""
        result: int = await self._call(self._max_id)
        return result

    async def batch(self, after: int, upto: int | None, limit: int) -> list[Row]:
        """Claim up to ``limit`` rows with ``after < id <= upto`` (None: no bound), oldest first."""
        rows: list[Row] = await self._call(self._batch, after, upto, limit)
        return rows

    async def delete(self, ids: Sequence[int]) -> None:
        """Delete acknowledged rows in one transaction (ids already gone are ignored)."""
        if ids:
            await self._call(self._delete, list(ids))

    async def release(self) -> None:
        """End every claim (the connection is gone): claimed rows the bound removed are dropped.

        Call it after deleting the rows this connection saw acknowledged.
        """
        await self._call(self._release)

    async def stats(self) -> OutboxStats:
        """Depth, size, drops and oldest ``ts``, after every queued write."""
        result: OutboxStats = await self._call(self._stats)
        return result

    async def next_bd_seq(self, modulo: int) -> int:
        """Increment and return the persisted connection counter (0 .. modulo-1)."""
        result: int = await self._call(self._next_bd_seq, modulo)
        return result

    # -- worker thread ------------------------------------------------------------------------

    def _conn(self) -> sqlite3.Connection:
        assert self._db is not None, "outbox not open"
        return self._db

    def _open(self) -> None:
        self._path.parent.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(self._path, isolation_level=None, check_same_thread=False)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")
        # After a checkpoint the WAL file is cut back to 4 MiB instead of keeping its peak size.
        db.execute("PRAGMA journal_size_limit=4194304")
        db.executescript(_SCHEMA)
        self._db = db
        count, size, last = db.execute(
            "SELECT count(*), coalesce(sum(length(topic) + length(payload)), 0),"
            " coalesce(max(id), 0) FROM outbox"
        ).fetchone()
        self._count, self._bytes = count, size + count * ROW_OVERHEAD
        self._dropped = self._meta("dropped")
        self._last_id = max(self._last_id, last)
        with self._transaction():
            self._trim()

    def _close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        """BEGIN IMMEDIATE .. COMMIT; on error ROLLBACK and recount from the table."""
        db = self._conn()
        db.execute("BEGIN IMMEDIATE")
        try:
            yield db
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            self._resync()
            raise

    def _meta(self, key: str) -> int:
        row = self._conn().execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return int(row[0]) if row else 0

    def _set_meta(self, key: str, value: int) -> None:
        self._conn().execute(
            "INSERT INTO meta (key, value) VALUES (?, ?)"
            " ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            (key, value),
        )

    def _append(self, row: Row) -> None:
        with self._transaction() as db:
            db.execute(
                "INSERT INTO outbox (id, ts_ms, topic, payload) VALUES (?, ?, ?, ?)",
                (row.id, row.ts_ms, row.topic, row.payload),
            )
            self._count += 1
            self._bytes += row_size(row.topic, row.payload)
            self._trim()

    def _resync(self) -> None:
        count, size = (
            self._conn()
            .execute(
                "SELECT count(*), coalesce(sum(length(topic) + length(payload)), 0) FROM outbox"
            )
            .fetchone()
        )
        self._count, self._bytes = count, size + count * ROW_OVERHEAD
        self._dropped = self._meta("dropped")
        # A rolled-back trim removed nothing: its claimed rows are claimed again.
        kept = [i for i in self._trimmed_claimed if self._exists(i)]
        self._trimmed_claimed.difference_update(kept)
        self._claimed.update(kept)

    def _exists(self, row_id: int) -> bool:
        query = "SELECT 1 FROM outbox WHERE id = ?"
        return self._conn().execute(query, (row_id,)).fetchone() is not None

    def _trim(self) -> None:
        """Drop rows past the age bound, then the oldest while over the byte bound (in a txn)."""
        db = self._conn()
        dropped = removed = 0
        # Ids are creation microseconds (or later), so the age bound is a primary-key range.
        cutoff_id = (time.time_ns() // 1_000_000 - self._max_age_ms) * 1000
        for row_id, size in db.execute(
            "DELETE FROM outbox WHERE id < ? RETURNING id, length(topic) + length(payload)",
            (cutoff_id,),
        ).fetchall():
            dropped += self._forget(row_id)
            removed += 1
            self._bytes -= size + ROW_OVERHEAD
        while self._bytes > self._max_bytes:
            rows = db.execute(
                "SELECT id, length(topic) + length(payload) FROM outbox ORDER BY id LIMIT ?",
                (_TRIM_BATCH,),
            ).fetchall()
            if not rows:
                break
            doomed = []
            for row_id, size in rows:
                doomed.append(row_id)
                dropped += self._forget(row_id)
                self._bytes -= size + ROW_OVERHEAD
                if self._bytes <= self._max_bytes:
                    break
            db.execute("DELETE FROM outbox WHERE id <= ?", (doomed[-1],))
            removed += len(doomed)
        self._count -= removed
        self._add_dropped(dropped)

    def _forget(self, row_id: int) -> int:
        """Account for a row the bound removes: 1 if it is dropped now, 0 if it is claimed."""
        if row_id in self._claimed:
            self._claimed.discard(row_id)
            self._trimmed_claimed.add(row_id)
            return 0
        return 1

    def _add_dropped(self, count: int) -> None:
        if count:
            self._dropped += count
            self._set_meta("dropped", self._dropped)

    def _max_id(self) -> int:
        row = self._conn().execute("SELECT coalesce(max(id), 0) FROM outbox").fetchone()
        return int(row[0])

    def _batch(self, after: int, upto: int | None, limit: int) -> list[Row]:
        cur = self._conn().execute(
            "SELECT id, ts_ms, topic, payload FROM outbox"
            " WHERE id > ? AND (? IS NULL OR id <= ?) ORDER BY id LIMIT ?",
            (after, upto, upto, limit),
        )
        rows = [Row(*r) for r in cur.fetchall()]
        self._claimed.update(r.id for r in rows)
        return rows

    def _delete(self, ids: Iterable[int]) -> None:
        with self._transaction() as db:
            for row_id in ids:
                self._claimed.discard(row_id)
                self._trimmed_claimed.discard(row_id)  # acknowledged: delivered after all
                row = db.execute(
                    "DELETE FROM outbox WHERE id = ? RETURNING length(topic) + length(payload)",
                    (row_id,),
                ).fetchone()
                if row is not None:
                    self._count -= 1
                    self._bytes -= row[0] + ROW_OVERHEAD

    def _release(self) -> None:
        if self._trimmed_claimed:
            with self._transaction():
                self._add_dropped(len(self._trimmed_claimed))
        self._claimed.clear()
        self._trimmed_claimed.clear()

    def _stats(self) -> OutboxStats:
        row = self._conn().execute("SELECT ts_ms FROM outbox ORDER BY id LIMIT 1").fetchone()
        return OutboxStats(self._count, self._bytes, self._dropped, row[0] if row else None)

    def _next_bd_seq(self, modulo: int) -> int:
        with self._transaction():
            value = (self._meta("bd_seq") + 1) % modulo
            self._set_meta("bd_seq", value)
        return value
