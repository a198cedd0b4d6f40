"""Append-only audit of every compartment open, for disputes ("my papers were not there").

One SQLite table in ``{state_dir}/lockers-{device}.sqlite3``; triggers refuse
UPDATE and DELETE, so a row, once committed, stays.  A row holds the time, the
compartment, the action (``open`` for a citizen's collection, ``assign`` for a
staff load), the requester's MQTT client id and request id, and the outcome
(``opened``, ``timeOut``, ``canceled``, ``error``).  It never holds identity
data: no names, ID numbers, slip contents or photos.  The daemon writes it
through an :class:`~devices.runtime.sqlite_store.SqliteStore` opened on first
use (worker thread ``lockers-audit``, a busy timeout); a row is committed (WAL,
synchronous=FULL) before the command's completion is sent.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from devices.runtime.clock import now_ms
from devices.runtime.sqlite_store import SqliteStore, Synchronous, connect

_SCHEMA = """
CREATE TABLE IF NOT EXISTS opens (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    ts_ms INTEGER NOT NULL,
    compartment INTEGER NOT NULL,
    action TEXT NOT NULL CHECK (action IN ('open', 'assign')),
    client_id TEXT NOT NULL,
    request_id TEXT NOT NULL,
    outcome TEXT NOT NULL
);
CREATE TRIGGER IF NOT EXISTS opens_no_update BEFORE UPDATE ON opens
BEGIN SELECT RAISE(ABORT, 'the lockers audit is append-only'); END;
CREATE TRIGGER IF NOT EXISTS opens_no_delete BEFORE DELETE ON opens
BEGIN SELECT RAISE(ABORT, 'the lockers audit is append-only'); END;
"""
#: How long a write waits for a lock held by a reader (``kioskd lockers audit``), seconds.
BUSY_TIMEOUT_S = 2.0


@dataclass(frozen=True, slots=True)
class AuditRow:
    """One recorded open."""

    id: int
    ts_ms: int
    compartment: int
    action: str
    client_id: str
    request_id: str
    outcome: str


def audit_path(state_dir: Path, device_id: str) -> Path:
    """Where the audit of locker bank ``device_id`` lives."""
    return state_dir / f"lockers-{device_id}.sqlite3"


class AuditLog(SqliteStore):
    """The audit table of one locker bank; opened on first use.  :meth:`close` stops its thread."""

    def __init__(self, path: Path) -> None:
        super().__init__(
            path,
            synchronous=Synchronous.FULL,
            thread_name="lockers-audit",
            busy_timeout_s=BUSY_TIMEOUT_S,
        )

    def _setup(self, db: sqlite3.Connection) -> None:
        db.executescript(_SCHEMA)

    def _append(self, row: tuple[int, int, str, str, str, str]) -> None:
        self.opened().execute(
            "INSERT INTO opens (ts_ms, compartment, action, client_id, request_id, outcome)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            row,
        )

    async def append(
        self, compartment: int, action: str, client_id: str, request_id: str, outcome: str
    ) -> None:
        """Commit one row.

        Raises:
            sqlite3.Error: the database cannot be written (disk full, corrupted).

        """
        row = (now_ms(), compartment, action, client_id, request_id, outcome)
        await self.run(self._append, row)


def read_audit(path: Path) -> Iterator[AuditRow]:
    """Every row, oldest first (for ``kioskd lockers audit``); nothing if there is no table yet."""
    if not path.exists():
        return
    db = connect(path, synchronous=Synchronous.FULL, busy_timeout_s=BUSY_TIMEOUT_S)
    try:
        db.executescript(_SCHEMA)
        for row in db.execute(
            "SELECT id, ts_ms, compartment, action, client_id, request_id, outcome"
            " FROM opens ORDER BY id"
        ):
            yield AuditRow(*row)
    finally:
        db.close()
