"""The ledger on its own worker thread, for the event loop.

A commit with ``synchronous=FULL`` is an fsync, 1-5 ms on eMMC but hundreds of
ms on a busy SD card, and must not stall MQTT or other devices' serial I/O.
One thread keeps the connection confined and runs calls in submission order.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Concatenate, ParamSpec, TypeVar

from .store import Ledger

log = logging.getLogger(__name__)

_P = ParamSpec("_P")
_T = TypeVar("_T")


class LedgerRunner:
    """Runs one :class:`Ledger` on its own worker thread, for the event loop.

    Calls run one at a time in submission order.  A call, once submitted, runs
    to completion even when the awaiting coroutine is cancelled: a coin's
    credit is never abandoned half-way by a cancelled driver task.
    """

    def __init__(self, executor: ThreadPoolExecutor, ledger: Ledger) -> None:
        self._executor = executor
        self._ledger = ledger

    @classmethod
    async def open(cls, path: Path) -> LedgerRunner:
        """Open the ledger at ``path`` on a new worker thread.

        Raises:
            LedgerError: see :meth:`Ledger.open`.

        """
        executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="kioskd-ledger")
        try:
            ledger = await asyncio.get_running_loop().run_in_executor(executor, Ledger.open, path)
        except BaseException:
            executor.shutdown(wait=False)
            raise
        return cls(executor, ledger)

    @property
    def path(self) -> Path:
        """The ledger file."""
        return self._ledger.path

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
        job = functools.partial(fn, self._ledger, *args, **kwargs)
        future = asyncio.get_running_loop().run_in_executor(self._executor, job)
        try:
            return await asyncio.shield(future)
        except asyncio.CancelledError:
            future.add_done_callback(_log_unawaited)
            raise

    async def aclose(self) -> None:
        """Close the connection and let the worker thread end."""
        try:
            await self.call(Ledger.close)
        finally:
            self._executor.shutdown(wait=False)


def _log_unawaited(future: asyncio.Future[Any]) -> None:
    """Report the failure of a ledger call whose caller was cancelled (it still ran)."""
    if not future.cancelled() and (exc := future.exception()) is not None:
        log.error("coin ledger call failed after its caller was cancelled: %s", exc)
