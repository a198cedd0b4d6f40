"""The ledger on its own worker thread, for the event loop.

A commit with ``synchronous=FULL`` is an fsync, 1-5 ms on eMMC but hundreds of
ms on a busy SD card, and must not stall MQTT or other devices' serial I/O.
The ledger file is an :class:`~devices.runtime.sqlite_store.SqliteStore`
(``synchronous=FULL``): its connection lives on one worker thread
(``kioskd-ledger``) that runs calls in submission order.  The seam's one
cancellation rule is the one a coin needs: a call, once submitted, runs to
completion even when the awaiting coroutine is cancelled (a failure it meets
then is logged), so a credit is never abandoned half-way by a cancelled driver
task.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Concatenate, ParamSpec, TypeVar

from devices.runtime.sqlite_store import SqliteStore, StoreClosedError, Synchronous

from .records import LedgerError
from .schema import BUSY_TIMEOUT_S, prepare
from .store import Ledger

_P = ParamSpec("_P")
_T = TypeVar("_T")


class _LedgerFile(SqliteStore):
    """The ledger file on its worker thread."""

    def __init__(self, path: Path) -> None:
        super().__init__(
            path,
            synchronous=Synchronous.FULL,
            thread_name="kioskd-ledger",
            busy_timeout_s=BUSY_TIMEOUT_S,
        )
        self._ledger: Ledger | None = None

    @property
    def ledger(self) -> Ledger:
        """The ledger on this file's connection (worker thread only).

        Raises:
            StoreClosedError: the file is not open.

        """
        if self._ledger is None:
            raise StoreClosedError(f"{self.path} is not open")
        return self._ledger

    def _setup(self, db: sqlite3.Connection) -> None:
        prepare(db, self.path)
        self._ledger = Ledger(db, self.path)


class LedgerRunner:
    """Runs one :class:`Ledger` on its own worker thread, for the event loop."""

    def __init__(self, file: _LedgerFile) -> None:
        self._file = file

    @classmethod
    async def open(cls, path: Path) -> LedgerRunner:
        """Open the ledger at ``path`` on a new worker thread.

        Raises:
            LedgerError: see :meth:`Ledger.open`.

        """
        file = _LedgerFile(path)
        try:
            await file.open()
        except sqlite3.Error as exc:
            await file.close()
            raise LedgerError(f"cannot open the coin ledger {path}: {exc}") from exc
        except BaseException:
            await file.close()
            raise
        return cls(file)

    @property
    def path(self) -> Path:
        """The ledger file."""
        return self._file.path

    async def call(
        self,
        fn: Callable[Concatenate[Ledger, _P], _T],
        *args: _P.args,
        **kwargs: _P.kwargs,
    ) -> _T:
        """Run ``fn(ledger, *args, **kwargs)`` on the ledger thread and return its result.

        Raises:
            LedgerError: whatever ``fn`` raises.

        """
        return await self._file.run(fn, self._file.ledger, *args, **kwargs)

    async def aclose(self) -> None:
        """Close the connection after every submitted call and let the worker thread end."""
        await self._file.close()
