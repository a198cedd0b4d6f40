"""Idempotency records of side-effect commands, kept in SQLite across restarts.

A record is written when a request enters its device queue and completed when
it ends.  A retry of the same ``(clientId, requestId)`` within the window is
answered from here, never run again.  A record without a completion means the
daemon stopped while the request ran: its outcome is unknown and it is not run
again either.  Requests that never ran (not ready, expired in the queue) are
forgotten.  SQLite work happens on the store's worker thread (``idempotency-db``,
:mod:`devices.runtime.sqlite_store`).

One fsync per side effect: the record written before the command runs is a
``synchronous=FULL`` commit (it must survive a crash, or a retry after the crash
would run the side effect twice); the completion and the forgetting of a request
that never ran are ``NORMAL`` commits, synced by the next FULL commit or
checkpoint.  A crash loses at most those: the retry then finds a record without
a completion and is answered "outcome unknown", never run again (a forgotten
request that comes back the same way is refused the same way, never run twice).
The record's commit is one INSERT (two b-tree pages) unless it pushes older
records out of the limits, which are then deleted by key in the same commit; the
lifecycle asks the device whether it is ready (``check_ready``, which moves
nothing) while the fsync runs, and starts the side effect once it has returned.

Memory is bounded by design: a record keeps what a replay needs (device, command,
the encoded completion, whose description the lifecycle has already cut to 300
characters), never the request's parameters; there are at most ``max_records`` of
them, and at most ``max_per_client`` of one client, so one client cannot push every
other client's records out.  At the defaults (10 000 and 1 000) a record takes about
0.5 kB of memory with 36-character ids and a short completion.
"""

from __future__ import annotations

import asyncio
import sqlite3
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec

from devices.runtime.clock import now_ms
from devices.runtime.sqlite_store import SqliteStore, Synchronous, transaction

_SCHEMA = """
CREATE TABLE IF NOT EXISTS requests (
    client_id TEXT NOT NULL,
    request_id TEXT NOT NULL,
    device TEXT NOT NULL,
    command TEXT NOT NULL,
    created_ms INTEGER NOT NULL,
    completion BLOB,
    PRIMARY KEY (client_id, request_id)
)
"""

#: Forget one record by its key ``(client_id, request_id)``.
_DELETE = "DELETE FROM requests WHERE client_id = ? AND request_id = ?"


@dataclass(frozen=True, slots=True)
class Record:
    """A remembered request; ``completion`` is None when its outcome is unknown."""

    device: str
    command: str
    completion: dict[str, Any] | None


class _Entry:
    """One record in memory: the completion stays encoded until a retry needs it."""

    __slots__ = ("command", "completion", "created_ms", "device")

    def __init__(
        self, created_ms: int, device: str, command: str, completion: bytes | None
    ) -> None:
        self.created_ms = created_ms
        # Interned: thousands of records share one string per device and command.
        self.device = sys.intern(device)
        self.command = sys.intern(command)
        self.completion = completion


#: One SQL statement and its arguments.
Statement = tuple[str, tuple[object, ...]]


class IdempotencyStore(SqliteStore):
    """Records bounded by age (``window_s``), count (``max_records``) and per client.

    Lookups are answered from memory (loaded at :meth:`open`), so the request
    path stays synchronous and FIFO; writes go to SQLite in call order on the
    worker thread and return futures the caller may await.  When a client already
    has ``max_per_client`` records, its oldest is forgotten (memory and SQLite).
    """

    def __init__(
        self, path: Path, *, window_s: float, max_records: int, max_per_client: int
    ) -> None:
        super().__init__(path, synchronous=Synchronous.FULL, thread_name="idempotency-db")
        self._window_ms = int(window_s * 1000)
        self._max = max_records
        self._max_per_client = max_per_client
        # Both in insertion (= creation) order: the first entry is the oldest.
        self._records: dict[tuple[str, str], _Entry] = {}
        self._by_client: dict[str, dict[str, _Entry]] = {}

    def _setup(self, db: sqlite3.Connection) -> None:
        """Create the table, drop expired records and load the rest (worker thread)."""
        db.execute(_SCHEMA)
        # Records leave by key (memory picks them), so no query needs these indexes of
        # earlier versions; without them a record's commit writes half the pages.
        db.execute("DROP INDEX IF EXISTS requests_created")
        db.execute("DROP INDEX IF EXISTS requests_client")
        now = now_ms()
        db.execute("DELETE FROM requests WHERE created_ms < ?", (now - self._window_ms,))
        rows = db.execute(
            "SELECT client_id, request_id, device, command, created_ms, completion "
            "FROM requests ORDER BY created_ms",
        ).fetchall()
        dropped: list[tuple[str, str]] = []
        for client_id, request_id, device, command, created, blob in rows:
            dropped += self._add(client_id, request_id, _Entry(created, device, command, blob))
        dropped += self._trim_memory(now)
        if dropped:  # beyond limits lowered since the last run: gone from disk as from memory
            with transaction(db):
                db.executemany(_DELETE, dropped)

    def _write(self, synchronous: Synchronous, *statements: Statement) -> asyncio.Future[None]:
        """Commit statements on the worker thread: one commit, at ``synchronous``.

        A single statement is its own (autocommit) transaction: fewer calls into
        SQLite, each of which takes the GIL back from the event loop.
        """

        def work() -> None:
            if len(statements) == 1:
                self.execute(*statements[0], synchronous=synchronous)
                return
            with self.transaction(synchronous=synchronous) as db:
                for sql, args in statements:
                    db.execute(sql, args)

        return self.submit(work)

    def _add(self, client_id: str, request_id: str, entry: _Entry) -> list[tuple[str, str]]:
        """Insert (as the newest); drop the client's oldest beyond its share (returned)."""
        self._remove(client_id, request_id)
        self._records[(client_id, request_id)] = entry
        own = self._by_client.setdefault(client_id, {})
        own[request_id] = entry
        if len(own) <= self._max_per_client:
            return []
        oldest = next(iter(own))
        self._remove(client_id, oldest)
        return [(client_id, oldest)]

    def _remove(self, client_id: str, request_id: str) -> None:
        self._records.pop((client_id, request_id), None)
        own = self._by_client.get(client_id)
        if own is not None and own.pop(request_id, None) is not None and not own:
            del self._by_client[client_id]

    def _trim_memory(self, now_ms: int) -> list[tuple[str, str]]:
        """Drop records beyond the window or ``max_records``, oldest first; return their keys."""
        oldest_kept = now_ms - self._window_ms
        dropped: list[tuple[str, str]] = []
        while self._records:
            key, entry = next(iter(self._records.items()))
            if entry.created_ms >= oldest_kept and len(self._records) <= self._max:
                break
            self._remove(*key)
            dropped.append(key)
        return dropped

    def lookup(self, client_id: str, request_id: str) -> Record | None:
        """The record of a request within the window, if any."""
        entry = self._records.get((client_id, request_id))
        if entry is None or entry.created_ms < now_ms() - self._window_ms:
            return None
        completion = None if entry.completion is None else msgspec.msgpack.decode(entry.completion)
        return Record(entry.device, entry.command, completion)

    def begin(
        self,
        client_id: str,
        request_id: str,
        device: str,
        command: str,
    ) -> asyncio.Future[None]:
        """Remember a request entering its queue; await the result before running it.

        The future resolves once the record is on disk (an fsync).  The records
        this one pushes out of the limits (memory decides which) are deleted by key
        in the same commit; usually there are none, and the commit is one INSERT.
        """
        now = now_ms()
        dropped = self._add(client_id, request_id, _Entry(now, device, command, None))
        dropped += self._trim_memory(now)
        return self._write(
            Synchronous.FULL,
            *((_DELETE, key) for key in dropped),
            (
                "INSERT OR REPLACE INTO requests VALUES (?, ?, ?, ?, ?, NULL)",
                (client_id, request_id, device, command, now),
            ),
        )

    def finish(
        self, client_id: str, request_id: str, completion: dict[str, Any]
    ) -> asyncio.Future[None]:
        """Store the completion replayed to retries (committed without an fsync)."""
        blob = msgspec.msgpack.encode(completion)
        entry = self._records.get((client_id, request_id))
        if entry is not None:
            entry.completion = blob
        return self._write(
            Synchronous.NORMAL,
            (
                "UPDATE requests SET completion = ? WHERE client_id = ? AND request_id = ?",
                (blob, client_id, request_id),
            ),
        )

    def forget(self, client_id: str, request_id: str) -> asyncio.Future[None]:
        """Drop the record of a request that did not run (committed without an fsync)."""
        self._remove(client_id, request_id)
        return self._write(Synchronous.NORMAL, (_DELETE, (client_id, request_id)))
