"""The idempotency store's commits: one fsync per side effect, before it; what a reopen finds."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import threading
from typing import TYPE_CHECKING

from daemon.api.idempotency import IdempotencyStore
from tests.support import SLIP_FIELDS

if TYPE_CHECKING:
    from pathlib import Path

    from tests.conftest import RunningDaemon
    from tests.uiclient import UiClient


def _store(path: Path) -> IdempotencyStore:
    return IdempotencyStore(path, window_s=3600, max_records=100, max_per_client=10)


async def test_only_the_record_before_the_side_effect_is_a_full_commit(tmp_path: Path) -> None:
    """begin is FULL (an fsync); finish and forget are NORMAL (synced by the next FULL).

    Every statement SQLite runs is traced with the level it runs at (``PRAGMA
    synchronous`` switches are statements too).
    """
    applied: list[tuple[str, str]] = []
    level = ["FULL"]

    def trace(sql: str) -> None:
        if sql.startswith("PRAGMA synchronous="):
            level[0] = sql.removeprefix("PRAGMA synchronous=")
        elif sql.startswith(("INSERT", "UPDATE", "DELETE")):
            applied.append((sql.split(maxsplit=1)[0], level[0]))

    store = _store(tmp_path / "idem.sqlite3")
    await store.open()
    try:
        await store.run(lambda: store.db.set_trace_callback(trace))
        await store.begin("ui", "r1", "printer", "cut")
        await store.finish("ui", "r1", {"completionCode": "success"})
        await store.begin("ui", "r2", "printer", "cut")
        await store.forget("ui", "r2")
    finally:
        await store.close()
    assert applied == [
        ("INSERT", "FULL"),
        ("UPDATE", "NORMAL"),
        ("INSERT", "FULL"),
        ("DELETE", "NORMAL"),
    ]


async def test_records_pushed_out_are_deleted_with_the_record_that_pushes_them(
    tmp_path: Path,
) -> None:
    """A client over its share loses its oldest record, in memory and on disk, in one commit."""
    path = tmp_path / "idem.sqlite3"
    store = IdempotencyStore(path, window_s=3600, max_records=100, max_per_client=2)
    await store.open()
    try:
        for request_id in ("r1", "r2", "r3"):
            await store.begin("ui", request_id, "printer", "cut")
        await store.begin("other", "r1", "printer", "cut")
        assert store.lookup("ui", "r1") is None
        assert store.lookup("other", "r1") is not None
    finally:
        await store.close()
    with contextlib.closing(sqlite3.connect(path)) as db:
        rows = db.execute("SELECT client_id, request_id FROM requests ORDER BY rowid").fetchall()
    assert sorted(rows) == [("other", "r1"), ("ui", "r2"), ("ui", "r3")]


async def test_a_lower_limit_at_start_drops_the_oldest_from_disk_too(tmp_path: Path) -> None:
    path = tmp_path / "idem.sqlite3"
    store = _store(path)
    await store.open()
    for n in range(5):
        await store.begin("ui", f"r{n}", "printer", "cut")
    await store.close()
    smaller = IdempotencyStore(path, window_s=3600, max_records=3, max_per_client=10)
    await smaller.open()
    try:
        assert [smaller.lookup("ui", f"r{n}") is not None for n in range(5)] == [
            False,
            False,
            True,
            True,
            True,
        ]
    finally:
        await smaller.close()
    with contextlib.closing(sqlite3.connect(path)) as db:
        (count,) = db.execute("SELECT count(*) FROM requests").fetchone()
    assert count == 3


async def test_a_reopened_store_replays_completions_and_knows_unfinished_requests(
    tmp_path: Path,
) -> None:
    path = tmp_path / "idem.sqlite3"
    store = _store(path)
    await store.open()
    await store.begin("ui", "done", "printer", "cut")
    await store.finish("ui", "done", {"completionCode": "success", "result": None})
    await store.begin("ui", "running", "printer", "cut")
    await store.begin("ui", "never-ran", "printer", "cut")
    await store.forget("ui", "never-ran")
    await store.close()

    again = _store(path)
    await again.open()
    try:
        done = again.lookup("ui", "done")
        assert done is not None
        assert done.completion == {"completionCode": "success", "result": None}
        running = again.lookup("ui", "running")
        assert running is not None
        assert (running.device, running.command, running.completion) == ("printer", "cut", None)
        assert again.lookup("ui", "never-ran") is None
    finally:
        await again.close()


async def test_a_side_effect_waits_for_its_record_on_disk(
    ui: UiClient, daemon: RunningDaemon
) -> None:
    """The record's write overlaps the printer's status check, never the print itself.

    The store's thread is held busy: the slip is acked and not printed until the
    record behind it is committed, then it prints once and completes.
    """
    held = threading.Event()
    busy = daemon.app.store.submit(held.wait, 10)
    slip_topic = f"{ui.root}/sim/printer/out/slip"
    try:
        async with ui.subscription(slip_topic) as printed:
            job = await ui.start(
                ui.request_topic("printSlip", "printer"),
                {"template": "appointment", "fields": dict(SLIP_FIELDS)},
            )
            assert (await job.next())["type"] == "ack"
            await asyncio.sleep(0.5)
            assert printed.empty(), "printed before its idempotency record was committed"
            assert job.replies.empty()
            held.set()
            assert (await job.completion())["completionCode"] == "success"
            await asyncio.wait_for(printed.get(), 5)
    finally:
        held.set()
        await busy


async def test_a_side_effect_stopped_while_its_record_is_written_is_forgotten(
    ui: UiClient, daemon: RunningDaemon
) -> None:
    """The daemon stops before the record is on disk: answered, nothing ran, nothing kept."""
    held = threading.Event()
    busy = daemon.app.store.submit(held.wait, 10)
    path = daemon.app.store.path
    try:
        job = await ui.start(ui.request_topic("cut", "printer"), {}, request_id="cut-at-stop")
        assert (await job.next())["type"] == "ack"
        await asyncio.sleep(0.2)  # the worker has taken it and waits for its record
        stopping = asyncio.create_task(daemon.shutdown())
        done = await job.completion()
        assert (done["completionCode"], done["errorDescription"]) == (
            "internalError",
            "the daemon is stopping",
        )
    finally:
        held.set()
        await busy
    await stopping
    with contextlib.closing(sqlite3.connect(path)) as db:
        kept = db.execute("SELECT request_id FROM requests").fetchall()
    assert ("cut-at-stop",) not in kept
