"""The idempotency store's commits: one fsync per side effect, and what a reopen finds."""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

from daemon.api.idempotency import IdempotencyStore
from devices.runtime.sqlite_store import SqliteStore, Synchronous

if TYPE_CHECKING:
    from pathlib import Path

_LEVELS = {1: "NORMAL", 2: "FULL"}


def _store(path: Path) -> IdempotencyStore:
    return IdempotencyStore(path, window_s=3600, max_records=100, max_per_client=10)


async def test_only_the_record_before_the_side_effect_is_a_full_commit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """begin is FULL (an fsync); finish and forget are NORMAL (synced by the next FULL)."""
    applied: list[str] = []
    plain = SqliteStore.transaction

    @contextlib.contextmanager
    def recording(
        self: SqliteStore, *, synchronous: Synchronous | None = None
    ) -> Iterator[sqlite3.Connection]:
        with plain(self, synchronous=synchronous) as db:
            applied.append(_LEVELS[db.execute("PRAGMA synchronous").fetchone()[0]])
            yield db

    monkeypatch.setattr(SqliteStore, "transaction", recording)
    store = _store(tmp_path / "idem.sqlite3")
    await store.open()
    try:
        await store.begin("ui", "r1", "printer", "cut")
        await store.finish("ui", "r1", {"completionCode": "success"})
        await store.begin("ui", "r2", "printer", "cut")
        await store.forget("ui", "r2")
    finally:
        await store.close()
    assert applied == ["FULL", "NORMAL", "FULL", "NORMAL"]


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
