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

All SQLite work runs on the store's worker thread (``uplink-outbox``,
:mod:`devices.runtime.sqlite_store`), in submission order.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from devices.runtime.clock import now_ms
from devices.runtime.sqlite_store import SqliteStore, Synchronous

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


class Outbox(SqliteStore):
    """The SQLite outbox at ``path``, bounded by ``max_bytes`` and ``max_age_s`` (seconds).

    Message ids are allocated on the event loop by :meth:`next_id`: microseconds
    since the epoch, or one more than the last id when the clock is behind it,
    so they increase across restarts and clock steps and fit in 63 bits.
    """

    def __init__(self, path: Path, *, max_bytes: int, max_age_s: float) -> None:
        super().__init__(path, synchronous=Synchronous.NORMAL, thread_name="uplink-outbox")
        self._max_bytes = max_bytes
        self._max_age_ms = int(max_age_s * 1000)
        self._last_id = 0
        # Maintained by the worker thread; read on the loop only through stats().
        self._count = 0
        self._bytes = 0
        self._dropped = 0
        self._claimed: set[int] = set()  # read by a connection, not yet acknowledged
        self._trimmed_claimed: set[int] = set()  # of those, removed by the bound

    # -- loop side ----------------------------------------------------------------------------

    def next_id(self) -> int:
        """Allocate the next message id (on the loop, before the row is written)."""
        self._last_id = max(self._last_id + 1, time.time_ns() // 1000)
        return self._last_id

    def append(self, row: Row) -> asyncio.Future[None]:
        """Queue ``row`` for writing now; the future resolves once it is committed.

        Rows are written in call order, so ids stay in write order.
        """
        return self.submit(self._append, row)

    async def last_id(self) -> int:
        """The highest stored id after every queued write (0 when empty)."""
        return await self.run(self._max_id)

    async def batch(self, after: int, upto: int | None, limit: int) -> list[Row]:
        """Claim up to ``limit`` rows with ``after < id <= upto`` (None: no bound), oldest first."""
        return await self.run(self._batch, after, upto, limit)

    async def delete(self, ids: Sequence[int]) -> None:
        """Delete acknowledged rows in one transaction (ids already gone are ignored)."""
        if ids:
            await self.run(self._delete, list(ids))

    async def release(self) -> None:
        """End every claim (the connection is gone): claimed rows the bound removed are dropped.

        Call it after deleting the rows this connection saw acknowledged.
        """
        await self.run(self._release)

    async def stats(self) -> OutboxStats:
        """Depth, size, drops and oldest ``ts``, after every queued write."""
        return await self.run(self._stats)

    async def next_bd_seq(self, modulo: int) -> int:
        """Increment and return the persisted connection counter (0 .. modulo-1)."""
        return await self.run(self._next_bd_seq, modulo)

    # -- worker thread ------------------------------------------------------------------------

    def _setup(self, db: sqlite3.Connection) -> None:
        """Create the tables, count what is stored and apply the bounds once."""
        # After a checkpoint the WAL file is cut back to 4 MiB instead of keeping its peak size.
        db.execute("PRAGMA journal_size_limit=4194304")
        db.executescript(_SCHEMA)
        count, size, last = db.execute(
            "SELECT count(*), coalesce(sum(length(topic) + length(payload)), 0),"
            " coalesce(max(id), 0) FROM outbox"
        ).fetchone()
        self._count, self._bytes = count, size + count * ROW_OVERHEAD
        self._dropped = self._meta("dropped")
        self._last_id = max(self._last_id, last)
        with self._transaction():
            self._trim()

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        """The store's transaction; on error (rolled back) recount from the table."""
        try:
            with self.transaction() as db:
                yield db
        except BaseException:
            self._resync()
            raise

    def _meta(self, key: str) -> int:
        row = self.db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return int(row[0]) if row else 0

    def _set_meta(self, key: str, value: int) -> None:
        self.db.execute(
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
        count, size = self.db.execute(
            "SELECT count(*), coalesce(sum(length(topic) + length(payload)), 0) FROM outbox"
        ).fetchone()
        self._count, self._bytes = count, size + count * ROW_OVERHEAD
        self._dropped = self._meta("dropped")
        # A rolled-back trim removed nothing: its claimed rows are claimed again.
        kept = [i for i in self._trimmed_claimed if self._exists(i)]
        self._trimmed_claimed.difference_update(kept)
        self._claimed.update(kept)

    def _exists(self, row_id: int) -> bool:
        query = "SELECT 1 FROM outbox WHERE id = ?"
        return self.db.execute(query, (row_id,)).fetchone() is not None

    def _trim(self) -> None:
        """Drop rows past the age bound, then the oldest while over the byte bound (in a txn)."""
        db = self.db
        dropped = removed = 0
        # Ids are creation microseconds (or later), so the age bound is a primary-key range.
        cutoff_id = (now_ms() - self._max_age_ms) * 1000
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
        row = self.db.execute("SELECT coalesce(max(id), 0) FROM outbox").fetchone()
        return int(row[0])

    def _batch(self, after: int, upto: int | None, limit: int) -> list[Row]:
        cur = self.db.execute(
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
        row = self.db.execute("SELECT ts_ms FROM outbox ORDER BY id LIMIT 1").fetchone()
        return OutboxStats(self._count, self._bytes, self._dropped, row[0] if row else None)

    def _next_bd_seq(self, modulo: int) -> int:
        with self._transaction():
            value = (self._meta("bd_seq") + 1) % modulo
            self._set_meta("bd_seq", value)
        return value
