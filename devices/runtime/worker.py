"""The worker-thread seam: blocking calls run on one named thread, in order, off the loop.

Every blocking library the daemon drives (python-escpos, pyscard, V4L2, SQLite)
is called from exactly one :class:`Worker` per device or store, so calls on one
handle never overlap and the event loop never blocks.  Results come back to the
loop with ``loop.call_soon_threadsafe``.

Cancellation, the same for every user: a call once submitted always runs, in
submission order, to its end; nothing queued is ever skipped.  When the caller
stops waiting (its task is cancelled, or the call's ``timeout_s`` passes) it
sees ``CancelledError`` (``TimeoutError``) at once; the call keeps running, or
stays queued and runs in its turn, and its result is dropped; an exception it
raises is logged.  This is what the stores need (a coin's credit, an outbox row
or an idempotency record the loop has already counted is never lost half-way)
and what a device needs (a call on a handle cannot be interrupted anyway; the
driver's own timeouts bound it).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import functools
import logging
from collections.abc import Callable
from typing import ParamSpec, TypeVar

log = logging.getLogger(__name__)

_P = ParamSpec("_P")
_T = TypeVar("_T")


class Worker:
    """One named thread that runs blocking calls for the event loop, one at a time.

    Args:
        name: the thread's name prefix (``escpos-printer``, ``uplink-outbox``...).

    """

    def __init__(self, name: str) -> None:
        self.name = name
        self._executor = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix=name)

    def submit(
        self, fn: Callable[_P, _T], /, *args: _P.args, **kwargs: _P.kwargs
    ) -> asyncio.Future[_T]:
        """Queue ``fn(*args, **kwargs)`` now and return a future of its result.

        Cancelling the returned future drops the result; the call still runs.

        Raises:
            RuntimeError: the worker is closed.

        """
        loop = asyncio.get_running_loop()
        result: asyncio.Future[_T] = loop.create_future()
        done = self._executor.submit(functools.partial(fn, *args, **kwargs))
        done.add_done_callback(functools.partial(self._settle_threadsafe, loop, result))
        return result

    async def call(
        self,
        timeout_s: float | None,
        fn: Callable[_P, _T],
        /,
        *args: _P.args,
        **kwargs: _P.kwargs,
    ) -> _T:
        """Run ``fn(*args, **kwargs)`` on the thread and return its result.

        Raises:
            TimeoutError: no result within ``timeout_s`` seconds (None: no limit);
                the call still runs to its end, its result dropped.
            RuntimeError: the worker is closed.
            Exception: whatever ``fn`` raises.

        """
        future = self.submit(fn, *args, **kwargs)
        # asyncio.timeout, not wait_for: on 3.11 wait_for loses a cancellation that
        # arrives as the call completes, and the caller then outlives its task group.
        async with asyncio.timeout(timeout_s):
            return await future

    async def aclose(self, timeout_s: float) -> None:
        """Refuse new calls, wait up to ``timeout_s`` for the submitted ones, stop the thread.

        Calls still running or queued after ``timeout_s`` run on (their results are
        dropped) and the thread ends after the last; interpreter exit waits for it.
        Idempotent.
        """
        try:
            idle = self.submit(lambda: None)
        except RuntimeError:  # closed already
            return
        self._executor.shutdown(wait=False, cancel_futures=False)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout_s):
                await idle

    def _settle_threadsafe(
        self,
        loop: asyncio.AbstractEventLoop,
        result: asyncio.Future[_T],
        done: concurrent.futures.Future[_T],
    ) -> None:
        """On the worker thread: hand the outcome to the loop (gone at exit: nobody waits)."""
        with contextlib.suppress(RuntimeError):  # the loop is closed
            loop.call_soon_threadsafe(self._settle, result, done)

    def _settle(self, result: asyncio.Future[_T], done: concurrent.futures.Future[_T]) -> None:
        exc = done.exception()
        if result.cancelled():
            if exc is not None:
                log.error("%s: a call whose caller stopped waiting failed: %r", self.name, exc)
        elif exc is not None:
            result.set_exception(exc)
        else:
            result.set_result(done.result())
