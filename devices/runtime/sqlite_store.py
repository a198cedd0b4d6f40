"""An SQLite database confined to one worker thread: the base of every store of the daemon.

The connection is opened, used and closed on the store's :class:`~.worker.Worker`
only (a commit with ``synchronous=FULL`` is an fsync, milliseconds on eMMC and
up to hundreds on a worn SD card).  The journal is always WAL; how durable a
commit is, is the store's choice (:class:`Synchronous`):

- ``FULL``: every commit is an fsync of the WAL; a committed transaction
  survives a power cut (the coin ledger, the idempotency record written before
  a side effect).
- ``NORMAL``: a commit only writes the WAL; it is synced at checkpoints, so a
  power cut may lose the last commits but never corrupts the file (telemetry).

A store may switch one transaction's level with :meth:`SqliteStore.transaction`
(``synchronous=``); the connection returns to its own level afterwards.

:func:`connect` and :func:`transaction` are the same steps for code that owns
its connection on a thread of its own choosing (the coin ledger, whose CLI
reads it without a worker).
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import sqlite3
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import ParamSpec, TypeVar

from .worker import Worker

_P = ParamSpec("_P")
_T = TypeVar("_T")

#: Seconds :meth:`SqliteStore.close` waits for queued work before it leaves it to the thread.
CLOSE_TIMEOUT_S = 10.0


class Synchronous(enum.Enum):
    """SQLite's ``PRAGMA synchronous`` levels a store may use in WAL mode."""

    FULL = "FULL"
    NORMAL = "NORMAL"


#: ``PRAGMA synchronous`` reads back a number.
_LEVELS = {Synchronous.NORMAL: 1, Synchronous.FULL: 2}


class StoreClosedError(sqlite3.ProgrammingError):
    """The store is not open (used before :meth:`SqliteStore.open` or after close)."""


def connect(path: Path, *, synchronous: Synchronous, busy_timeout_s: float) -> sqlite3.Connection:
    """Open ``path`` (its folder must exist) in WAL mode at ``synchronous``, checked.

    The connection is confined to the calling thread and in autocommit mode
    (``isolation_level=None``): transactions are explicit (:func:`transaction`).
    Switching a new file to WAL while another connection opens it fails at
    once with "database is locked" (SQLite does not call the busy handler for
    it): the switch is retried until ``busy_timeout_s`` passes, so two devices
    may open one ledger file together.

    Raises:
        sqlite3.Error: the file cannot be opened or is not a database.
        sqlite3.OperationalError: WAL or the synchronous level did not take
            (a read-only folder, some file systems).

    """
    db = sqlite3.connect(path, timeout=busy_timeout_s, isolation_level=None)
    try:
        mode = _journal_mode_wal(db, time.monotonic() + busy_timeout_s)
        db.execute(f"PRAGMA synchronous={synchronous.value}")
        (level,) = db.execute("PRAGMA synchronous").fetchone()
        if str(mode).lower() != "wal" or level != _LEVELS[synchronous]:
            msg = f"{path} is not durable (journal_mode={mode}, synchronous={level})"
            raise sqlite3.OperationalError(msg)  # noqa: TRY301 - closed below, then raised
    except BaseException:
        db.close()
        raise
    return db


def _journal_mode_wal(db: sqlite3.Connection, deadline: float) -> object:
    """``PRAGMA journal_mode=WAL``, retried while the file is locked until ``deadline``."""
    while True:
        try:
            (mode,) = db.execute("PRAGMA journal_mode=WAL").fetchone()
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() >= deadline:
                raise
            time.sleep(0.01)  # on the connection's own thread, never the event loop
        else:
            return mode


@contextlib.contextmanager
def transaction(db: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """``BEGIN IMMEDIATE`` .. ``COMMIT``; on any error (the commit's too) ``ROLLBACK``, re-raise.

    Raises:
        sqlite3.Error: the transaction could not begin or commit; it is rolled back.

    """
    db.execute("BEGIN IMMEDIATE")
    try:
        yield db
        db.execute("COMMIT")
    except BaseException:
        with contextlib.suppress(sqlite3.Error):  # nothing to roll back after a failed COMMIT
            db.execute("ROLLBACK")
        raise


class SqliteStore:
    """One SQLite file on its own worker thread; subclasses add their schema and queries.

    Loop side: :meth:`open`, :meth:`close`, :meth:`run` (await a thread-side
    method) and :meth:`submit` (queue one and get a future).  Thread side:
    :attr:`db`, :meth:`opened` (for a store opened on first use),
    :meth:`transaction`, :meth:`execute` and the :meth:`_setup` hook.

    Args:
        path: the database file (its folder is created).
        synchronous: the connection's durability level.
        thread_name: the worker thread's name.
        busy_timeout_s: how long a statement waits for another process's lock, seconds.

    """

    def __init__(
        self,
        path: Path,
        *,
        synchronous: Synchronous,
        thread_name: str,
        busy_timeout_s: float = 5.0,
    ) -> None:
        self.path = path
        self.synchronous = synchronous
        self._busy_timeout_s = busy_timeout_s
        self._worker = Worker(thread_name)
        self._db: sqlite3.Connection | None = None

    # -- loop side ------------------------------------------------------------------

    async def open(self) -> None:
        """Open (creating) the database on the worker thread and run :meth:`_setup`.

        Raises:
            sqlite3.Error: the file cannot be opened, is corrupt, or refuses WAL.

        """
        await self._worker.call(None, self._open)

    async def close(self) -> None:
        """Finish queued work, close the connection and stop the thread (idempotent).

        Waits up to :data:`CLOSE_TIMEOUT_S` for queued work.
        """
        with contextlib.suppress(RuntimeError):  # the worker is closed already
            await self._worker.call(CLOSE_TIMEOUT_S, self._close)
        await self._worker.aclose(CLOSE_TIMEOUT_S)

    async def run(self, fn: Callable[_P, _T], /, *args: _P.args, **kwargs: _P.kwargs) -> _T:
        """Run ``fn`` on the worker thread after every queued call; see :mod:`.worker`.

        Raises:
            StoreClosedError: the store is not open.
            Exception: whatever ``fn`` raises.

        """
        return await self._worker.call(None, fn, *args, **kwargs)

    def submit(
        self, fn: Callable[_P, _T], /, *args: _P.args, **kwargs: _P.kwargs
    ) -> asyncio.Future[_T]:
        """Queue ``fn`` on the worker thread now; the future resolves when it has run."""
        return self._worker.submit(fn, *args, **kwargs)

    # -- worker thread --------------------------------------------------------------

    @property
    def db(self) -> sqlite3.Connection:
        """The connection (worker thread only).

        Raises:
            StoreClosedError: the store is not open.

        """
        if self._db is None:
            raise StoreClosedError(f"{self.path} is not open")
        return self._db

    def opened(self) -> sqlite3.Connection:
        """The connection, opened (and :meth:`_setup` run) on first use (worker thread only).

        For a store its owner opens when it is first used, not at start (the
        lockers' codes and audit); once :meth:`close` has run, the worker takes
        no more calls.

        Raises:
            sqlite3.Error: the file cannot be opened, is corrupt, or refuses WAL.

        """
        if self._db is None:
            self._open()
        return self.db

    @contextlib.contextmanager
    def transaction(
        self, *, synchronous: Synchronous | None = None
    ) -> Iterator[sqlite3.Connection]:
        """``BEGIN IMMEDIATE`` .. ``COMMIT``; on any error ``ROLLBACK`` and re-raise.

        ``synchronous`` sets this commit's durability (None: the store's level).
        """
        with self._level(synchronous) as db, transaction(db):
            yield db

    def execute(
        self, sql: str, args: tuple[object, ...] = (), *, synchronous: Synchronous | None = None
    ) -> None:
        """One statement committed on its own (autocommit), at ``synchronous``.

        One call into SQLite where :meth:`transaction` takes three, for a write
        that is a single statement.

        Raises:
            sqlite3.Error: the statement failed; nothing of it is committed.

        """
        with self._level(synchronous) as db:
            db.execute(sql, args)

    @contextlib.contextmanager
    def _level(self, synchronous: Synchronous | None) -> Iterator[sqlite3.Connection]:
        """The connection at ``synchronous`` (None: the store's level), restored after."""
        db = self.db
        level = synchronous or self.synchronous
        if level is not self.synchronous:
            db.execute(f"PRAGMA synchronous={level.value}")
        try:
            yield db
        finally:
            if level is not self.synchronous:
                db.execute(f"PRAGMA synchronous={self.synchronous.value}")

    def _setup(self, db: sqlite3.Connection) -> None:
        """Create the schema and load what the store keeps in memory (worker thread)."""

    def _open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        db = connect(self.path, synchronous=self.synchronous, busy_timeout_s=self._busy_timeout_s)
        try:
            self._db = db
            self._setup(db)
        except BaseException:
            self._db = None
            db.close()
            raise

    def _close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None
