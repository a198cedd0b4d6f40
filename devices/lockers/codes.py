"""Collection codes: what staff assigned to each compartment, kept as salted scrypt hashes.

A citizen's ``open`` opens a compartment only with the code staff gave it at
``assign`` (the dossier code printed on the slip).  The code itself is never
stored: a row holds a 16-byte random salt and the scrypt hash of the
normalised code (surrounding blanks removed, upper case), compared in constant
time.  Wrong codes are counted per compartment: after :data:`MAX_WRONG_CODES`
the compartment refuses every code for :data:`LOCKOUT_S`, so a code cannot be
guessed by trying.  A collection (the door seen open after a right code) uses
the assignment up.

One SQLite table in ``{state_dir}/lockers-{device}-codes.sqlite3`` (WAL,
synchronous=FULL, so a restart forgets neither an assignment nor a lockout):
an :class:`~devices.runtime.sqlite_store.SqliteStore` opened on first use; every
access, and scrypt (~16 MiB, tens of ms on a Pi) too, runs in order on its
worker thread (``lockers-codes``) with a busy timeout, so the loop never blocks.
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import secrets
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from devices.runtime.clock import now_ms
from devices.runtime.sqlite_store import SqliteStore, Synchronous

#: Wrong codes in a row after which a compartment locks out.
MAX_WRONG_CODES = 5
#: How long a locked-out compartment refuses every code, seconds.
LOCKOUT_S = 15 * 60.0
#: Longest code accepted, characters (a dossier code is about 12).
MAX_CODE_CHARS = 64
SALT_BYTES = 16
#: scrypt cost: N=2^14, r=8, p=1 (16 MiB), 32-byte hash.
_SCRYPT = {"n": 2**14, "r": 8, "p": 1, "maxmem": 64 * 1024 * 1024, "dklen": 32}
#: How long an access waits for the database lock, seconds.
BUSY_TIMEOUT_S = 2.0

_SCHEMA = """
CREATE TABLE IF NOT EXISTS compartments (
    compartment INTEGER PRIMARY KEY,
    salt BLOB,
    hash BLOB,
    assigned_ms INTEGER,
    wrong INTEGER NOT NULL DEFAULT 0,
    locked_until_ms INTEGER NOT NULL DEFAULT 0
);
"""


class Verdict(enum.Enum):
    """What a check of a citizen's code found."""

    RIGHT = "right"
    WRONG = "wrong"
    LOCKED_OUT = "lockedOut"


@dataclass(frozen=True, slots=True)
class Check:
    """The outcome of :meth:`CodeStore.check`.

    Attributes:
        verdict: right, wrong (counted) or refused unchecked during a lockout.
        tries_left: wrong codes still allowed before a lockout (0 once locked out).
        locked_for_s: seconds the lockout still lasts (0 when not locked out).

    """

    verdict: Verdict
    tries_left: int
    locked_for_s: float


def normalise(code: str) -> str:
    """The form a code is hashed in: surrounding blanks removed, upper case."""
    return code.strip().upper()


def hash_code(code: str, salt: bytes) -> bytes:
    """Scrypt-hash the normalised ``code`` over ``salt`` (CPU and memory bound: on a thread)."""
    return hashlib.scrypt(normalise(code).encode(), salt=salt, **_SCRYPT)


def codes_path(state_dir: Path, device_id: str) -> Path:
    """Where the codes of locker bank ``device_id`` live."""
    return state_dir / f"lockers-{device_id}-codes.sqlite3"


class CodeStore(SqliteStore):
    """The assignments and wrong-code counters of one locker bank.

    ``clock`` returns wall-clock milliseconds (the lockout survives restarts,
    so it is wall time, not the loop's).  :meth:`close` stops its thread.
    """

    def __init__(
        self,
        path: Path,
        *,
        max_wrong: int = MAX_WRONG_CODES,
        lockout_s: float = LOCKOUT_S,
        clock: Callable[[], int] = now_ms,
    ) -> None:
        super().__init__(
            path,
            synchronous=Synchronous.FULL,
            thread_name="lockers-codes",
            busy_timeout_s=BUSY_TIMEOUT_S,
        )
        self.max_wrong = max_wrong
        self.lockout_ms = round(lockout_s * 1000)
        self._clock = clock

    def _setup(self, db: sqlite3.Connection) -> None:
        db.executescript(_SCHEMA)

    def _assign(self, compartment: int, code: str) -> None:
        salt = secrets.token_bytes(SALT_BYTES)
        digest = hash_code(code, salt)
        self.opened().execute(
            "INSERT OR REPLACE INTO compartments"
            " (compartment, salt, hash, assigned_ms, wrong, locked_until_ms)"
            " VALUES (?, ?, ?, ?, 0, 0)",
            (compartment, salt, digest, self._clock()),
        )

    def _check(self, compartment: int, code: str) -> Check:
        self.opened()
        with self.transaction() as db:
            return self._judge(db, compartment, code)

    def _judge(self, db: sqlite3.Connection, compartment: int, code: str) -> Check:
        """Check ``code`` and count a wrong one, inside the caller's transaction."""
        row = db.execute(
            "SELECT salt, hash, wrong, locked_until_ms FROM compartments WHERE compartment = ?",
            (compartment,),
        ).fetchone()
        salt, want, wrong, locked_until = row or (None, None, 0, 0)
        now = self._clock()
        if locked_until > now:
            return Check(Verdict.LOCKED_OUT, 0, (locked_until - now) / 1000)
        # An unassigned compartment costs the same hash: the time tells nothing.
        got = hash_code(code, salt or bytes(SALT_BYTES))
        if want is not None and hmac.compare_digest(got, want):
            db.execute("UPDATE compartments SET wrong = 0 WHERE compartment = ?", (compartment,))
            return Check(Verdict.RIGHT, self.max_wrong, 0.0)
        wrong += 1
        locked_until = now + self.lockout_ms if wrong >= self.max_wrong else 0
        db.execute(
            "INSERT INTO compartments (compartment, wrong, locked_until_ms) VALUES (?, ?, ?)"
            " ON CONFLICT (compartment) DO UPDATE"
            " SET wrong = excluded.wrong, locked_until_ms = excluded.locked_until_ms",
            (compartment, 0 if locked_until else wrong, locked_until),
        )
        if locked_until:
            return Check(Verdict.WRONG, 0, self.lockout_ms / 1000)
        return Check(Verdict.WRONG, self.max_wrong - wrong, 0.0)

    def _collected(self, compartment: int) -> None:
        self.opened().execute(
            "UPDATE compartments SET salt = NULL, hash = NULL, assigned_ms = NULL"
            " WHERE compartment = ?",
            (compartment,),
        )

    async def assign(self, compartment: int, code: str) -> None:
        """Give ``compartment`` a new code (a fresh salt); clears its wrong codes and lockout.

        Raises:
            sqlite3.Error: the database cannot be written.

        """
        await self.run(self._assign, compartment, code)

    async def check(self, compartment: int, code: str) -> Check:
        """Check a citizen's code; a wrong one is counted, the last allowed one locks out.

        During a lockout the code is not looked at.  A compartment with no
        assignment (never assigned, or collected) takes every code as wrong.

        Raises:
            sqlite3.Error: the database cannot be read or written.

        """
        return await self.run(self._check, compartment, code)

    async def collected(self, compartment: int) -> None:
        """Use the assignment up (its door was opened with the right code).

        Raises:
            sqlite3.Error: the database cannot be written.

        """
        await self.run(self._collected, compartment)
