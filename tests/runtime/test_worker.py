"""The one worker-thread seam: order, results, errors, and what cancellation does."""

from __future__ import annotations

import asyncio
import logging
import threading

import pytest

from devices.runtime.worker import Worker


async def test_calls_run_in_order_on_one_named_thread() -> None:
    worker = Worker("test-seam")
    seen: list[tuple[int, str]] = []

    def note(i: int) -> int:
        seen.append((i, threading.current_thread().name))
        return i * i

    try:
        results = await asyncio.gather(*(worker.call(5, note, i) for i in range(20)))
    finally:
        await worker.aclose(5)
    assert results == [i * i for i in range(20)]
    assert [i for i, _ in seen] == list(range(20))
    assert {name for _, name in seen} == {seen[0][1]}
    assert seen[0][1].startswith("test-seam")
    assert seen[0][1] != threading.current_thread().name


async def test_an_error_reaches_the_caller() -> None:
    worker = Worker("test-seam")

    def fail() -> None:
        raise OSError(5, "boom")

    try:
        with pytest.raises(OSError, match="boom"):
            await worker.call(5, fail)
    finally:
        await worker.aclose(5)


async def test_cancelled_caller_returns_at_once_and_every_submitted_call_still_runs(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The running call finishes, the queued one runs in its turn, results dropped, errors logged."""
    worker = Worker("test-seam")
    release = threading.Event()
    ran: list[str] = []

    def running() -> str:
        release.wait(5)
        ran.append("running")
        return "dropped"

    def queued() -> None:
        ran.append("queued")
        raise RuntimeError("queued call failed")

    first = asyncio.create_task(worker.call(None, running))
    second = asyncio.create_task(worker.call(None, queued))
    await asyncio.sleep(0.05)
    first.cancel()
    second.cancel()
    loop = asyncio.get_running_loop()
    started = loop.time()
    with pytest.raises(asyncio.CancelledError):
        await first
    with pytest.raises(asyncio.CancelledError):
        await second
    assert loop.time() - started < 0.5  # the callers did not wait for the thread
    assert ran == []
    with caplog.at_level(logging.ERROR, logger="devices.runtime.worker"):
        release.set()
        assert await worker.call(5, lambda: "after") == "after"
        await asyncio.sleep(0)  # the dropped error is reported on the loop
    assert ran == ["running", "queued"]
    assert "queued call failed" in caplog.text
    await worker.aclose(5)


async def test_timeout_raises_timeouterror_and_the_call_runs_on() -> None:
    worker = Worker("test-seam")
    release = threading.Event()
    finished = threading.Event()

    def slow() -> None:
        release.wait(5)
        finished.set()

    with pytest.raises(TimeoutError):
        await worker.call(0.05, slow)
    assert not finished.is_set()
    release.set()
    await worker.aclose(5)
    assert finished.is_set()


async def test_aclose_waits_for_submitted_calls_then_refuses_new_ones() -> None:
    worker = Worker("test-seam")
    done: list[int] = []
    futures = [worker.submit(done.append, i) for i in range(3)]
    await worker.aclose(5)
    assert done == [0, 1, 2]
    assert all(f.done() for f in futures)
    with pytest.raises(RuntimeError):
        await worker.call(5, done.append, 9)
    await worker.aclose(5)  # idempotent


async def test_aclose_returns_after_its_timeout_when_a_call_hangs() -> None:
    worker = Worker("test-seam")
    release = threading.Event()
    worker.submit(release.wait, 5)
    loop = asyncio.get_running_loop()
    started = loop.time()
    await worker.aclose(0.1)
    assert 0.09 <= loop.time() - started < 1.0
    release.set()
