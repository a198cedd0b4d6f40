"""The ledger keeps its on-disk format: files written by older code open with every row kept.

``golden/ledger-5a393cf.sqlite3`` was written by the single-module ledger of
commit 5a393cf (the last before it became a package) with transactions in
every state, credits with and without event counters, lost events of every
kind, a collection and two devices; ``golden/ledger-5a393cf.json`` is what
that code read back from it (``golden/make_ledger_5a393cf.py`` made both).
That file is schema version 2.  ``golden/ledger-1592b5a.sqlite3`` is schema
version 3, as the ledger of commit 1592b5a made it: the version 2 file upgraded,
with a note validator's deposit and an orphan note added
(``golden/make_ledger_1592b5a.py``).  Opening either upgrades it to version 5:
version 3 dropped the acceptors' counters' bound of 255 (an SSP validator's
stacked count is 32-bit), version 4 adds ``credits.device_id`` (the acceptor
that took a credit; NULL in every old row, read as the transaction's device),
version 5 the ``catch_ups`` table (empty).
Every row stays as it was, and every reader returns what the old code read,
each credit now naming its acceptor (the transaction's).
"""

from __future__ import annotations

import json
import shutil
import sqlite3
from dataclasses import asdict
from pathlib import Path
from typing import Any

from devices.cash.ledger import (
    LEDGER_FILE,
    SCHEMA_VERSION,
    EndReason,
    Ledger,
    TransactionState,
)

GOLDEN = Path(__file__).parent / "golden"
WRITTEN = GOLDEN / "ledger-5a393cf.sqlite3"
READ_BACK = GOLDEN / "ledger-5a393cf.json"
WRITTEN_V3 = GOLDEN / "ledger-1592b5a.sqlite3"
READ_BACK_V3 = GOLDEN / "ledger-1592b5a.json"
#: The acceptors of the version 3 file.
DEVICES_V3 = ("coin", "coin2", "notes")


def json_values(out: dict[str, Any]) -> dict[str, Any]:
    decoded: dict[str, Any] = json.loads(json.dumps(out))
    return decoded


def reads(ledger: Ledger) -> dict[str, Any]:
    """Everything the ledger's readers return, as the 5a393cf generator recorded it."""
    return json_values(
        {
            "transactions": [asdict(t) for t in ledger.transactions(limit=1000)],
            "open_coin": [asdict(t) for t in ledger.open_transactions("coin")],
            "open_coin2": [asdict(t) for t in ledger.open_transactions("coin2")],
            "cash_box": [asdict(ledger.cash_box(x)) for x in ("coin", "coin2", "nobody")],
            "collections": [asdict(x) for x in ledger.collections()],
            "lost_events": [asdict(x) for x in ledger.lost_events()],
            "export": [asdict(x) for x in ledger.export()],
            "counters": {x: ledger.last_event_counter(x) for x in ("coin", "coin2")},
            "counts": {s.value: ledger.count("coin", s) for s in TransactionState},
        }
    )


def reads_v3(ledger: Ledger) -> dict[str, Any]:
    """Everything the ledger's readers return, as the 1592b5a generator recorded it."""
    devices = DEVICES_V3
    return json_values(
        {
            "transactions": [asdict(t) for t in ledger.transactions(limit=1000)],
            "open": {x: [asdict(t) for t in ledger.open_transactions(x)] for x in devices},
            "cash_box": [asdict(ledger.cash_box(x)) for x in (*devices, "nobody")],
            "box_by_value": {x: ledger.box_by_value(x) for x in devices},
            "collections": [asdict(x) for x in ledger.collections()],
            "lost_events": [asdict(x) for x in ledger.lost_events()],
            "export": [asdict(x) for x in ledger.export()],
            "counters": {x: ledger.last_event_counter(x) for x in devices},
            "counts": {x: {s.value: ledger.count(x, s) for s in TransactionState} for x in devices},
        }
    )


def with_credit_devices(old: Any) -> Any:
    """What the old code read, as version 4 reads it: each credit names its transaction's device."""
    if isinstance(old, list):
        return [with_credit_devices(x) for x in old]
    if not isinstance(old, dict):
        return old
    new = {k: with_credit_devices(v) for k, v in old.items()}
    if "credits" in new and "device_id" in new:
        new["credits"] = [{**c, "device_id": new["device_id"]} for c in new["credits"]]
    return new


def schema(path: Path) -> tuple[int, list[tuple[str, str, str]]]:
    """The file's schema version and every table, index and trigger with its SQL.

    A table renamed by an upgrade has its name quoted in its SQL; the quotes are
    dropped, so that an upgraded file and a new one compare equal.
    """
    conn = sqlite3.connect(path)
    try:
        (version,) = conn.execute("PRAGMA user_version").fetchone()
        objects = conn.execute(
            "SELECT type, name, sql FROM sqlite_master WHERE sql IS NOT NULL ORDER BY type, name"
        ).fetchall()
    finally:
        conn.close()
    return version, [(kind, name, sql.replace(f'"{name}"', name)) for kind, name, sql in objects]


#: Version 5's table: an acceptor's unfinished reading of what it buffered before a start.
CATCH_UPS = (
    "table",
    "catch_ups",
    "CREATE TABLE catch_ups (\n    device_id TEXT PRIMARY KEY,\n"
    "    transaction_id TEXT REFERENCES transactions (id),\n"
    "    since_ms INTEGER NOT NULL\n) STRICT",
)


def upgraded(old: tuple[int, list[tuple[str, str, str]]]) -> tuple[int, list[tuple[str, str, str]]]:
    """A version 2 or 3 schema as version 5 makes it.

    From 2: the counters' bound of 255 dropped; from 2 and 3: the credits' device column
    (version 4) and the ``catch_ups`` table (version 5).
    """
    version, objects = old
    assert version in (2, 3), "the golden files are versions 2 and 3"
    bounded = "CHECK (counter BETWEEN 0 AND 255)"
    assert sum(bounded in sql for _, _, sql in objects) == (1 if version == 2 else 0)
    last_credit_column = "CHECK (overpayment IN (0, 1)),"
    assert sum(last_credit_column in sql for _, _, sql in objects) == 1
    changed = [
        (
            kind,
            name,
            sql.replace(bounded, "CHECK (counter >= 0)").replace(
                last_credit_column, last_credit_column[:-1] + ", device_id TEXT,"
            ),
        )
        for kind, name, sql in objects
    ]
    return SCHEMA_VERSION, sorted([*changed, CATCH_UPS], key=lambda o: (o[0], o[1]))


def rows(path: Path) -> dict[str, list[tuple[Any, ...]]]:
    """Every table's rows, sorted."""
    conn = sqlite3.connect(path)
    try:
        tables = [n for (n,) in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        return {t: sorted(conn.execute(f"SELECT * FROM {t}").fetchall()) for t in tables}
    finally:
        conn.close()


def rows_upgraded(old: dict[str, list[tuple[Any, ...]]]) -> dict[str, list[tuple[Any, ...]]]:
    """An old file's rows after the upgrade: each credit gains a NULL device; no catch-up."""
    rows = {t: [(*r, None) for r in v] if t == "credits" else v for t, v in old.items()}
    return {**rows, "catch_ups": []}


def copy(tmp_path: Path, written: Path = WRITTEN) -> Path:
    path = tmp_path / LEDGER_FILE
    shutil.copyfile(written, path)
    return path


def test_the_old_file_reads_as_the_old_code_read_it_and_keeps_every_row(tmp_path: Path) -> None:
    path = copy(tmp_path)
    before = rows(path)
    ledger = Ledger.open(path)
    try:
        got = reads(ledger)
    finally:
        ledger.close()
    assert got == with_credit_devices(json.loads(READ_BACK.read_text(encoding="utf-8")))
    assert rows(path) == rows_upgraded(before), "opening and reading changed a row"
    assert schema(path) == upgraded(schema(WRITTEN))


def test_the_version_3_file_reads_as_its_code_read_it_and_keeps_every_row(
    tmp_path: Path,
) -> None:
    path = copy(tmp_path, WRITTEN_V3)
    before = rows(path)
    assert schema(path)[0] == 3
    ledger = Ledger.open(path)
    try:
        got = reads_v3(ledger)
    finally:
        ledger.close()
    expected = with_credit_devices(json.loads(READ_BACK_V3.read_text(encoding="utf-8")))
    assert got == expected
    assert got["box_by_value"]["notes"] == [[50_000, 1], [20_000, 1], [10_000, 1]]
    assert rows(path) == rows_upgraded(before), "opening and reading changed a row"
    assert schema(path) == upgraded(schema(WRITTEN_V3))


def test_a_new_file_has_exactly_the_upgraded_schema(tmp_path: Path) -> None:
    Ledger.open(tmp_path / "new.sqlite3").close()
    assert schema(tmp_path / "new.sqlite3") == upgraded(schema(WRITTEN))
    assert schema(tmp_path / "new.sqlite3") == upgraded(schema(WRITTEN_V3))


def test_the_old_file_takes_new_records_in_the_same_format(tmp_path: Path) -> None:
    """What a daemon does at its first start on the old file: recover, credit, settle, go on."""
    path = copy(tmp_path)
    ledger = Ledger.open(path)
    try:
        # coin2's deposit was left active (a crash): it becomes unknown with its coin.
        (recovered,) = ledger.recover("coin2", 1_800_000_000_000)
        credit = ledger.credit_recovered(
            recovered, 2000, event_counter=None, at_ms=1_800_000_000_500
        )
        assert (credit.record.index, credit.total, credit.box.coins) == (2, 3000, 2)
        settled = ledger.settle(recovered, 1_800_000_001_000)
        assert settled.state is TransactionState.SETTLED
        assert [c.value for c in settled.credits] == [1000, 2000]
        assert settled.lost_unknown
        # A new deposit on coin continues its cash box after the collection.
        tx = ledger.begin(
            "coin", currency="VND", amount_due=1000, timeout_ms=1000, at_ms=1_800_000_002_000
        )
        ledger.credit(tx.id, 1000, event_counter=1, at_ms=1_800_000_002_100)
        ended = ledger.end(tx.id, EndReason.AMOUNT_REACHED, 1_800_000_002_200)
        assert (ended.total, ended.reason) == (1000, EndReason.AMOUNT_REACHED)
        assert (ledger.cash_box("coin").coins, ledger.last_event_counter("coin")) == (1, 1)
        assert len(ledger.export()) == len(json.loads(READ_BACK.read_text())["export"]) + 2
    finally:
        ledger.close()
    assert schema(path) == upgraded(schema(WRITTEN))


def test_the_version_3_file_takes_a_deposit_across_two_acceptors(tmp_path: Path) -> None:
    """After the upgrade one transaction holds coins and notes, each in its own cash box."""
    path = copy(tmp_path, WRITTEN_V3)
    ledger = Ledger.open(path)
    try:
        notes_before = ledger.cash_box("notes")
        coin_before = ledger.cash_box("coin")
        tx = ledger.begin(
            "coin", currency="VND", amount_due=25_000, timeout_ms=1000, at_ms=1_800_000_000_000
        )
        ledger.credit(tx.id, 5000, event_counter=10, at_ms=1_800_000_000_100)
        note = ledger.credit(
            tx.id, 20_000, event_counter=123_459, at_ms=1_800_000_000_200, device_id="notes"
        )
        assert (note.total, note.box.device_id, note.box.coins) == (25_000, "notes", 4)
        ended = ledger.end(tx.id, EndReason.AMOUNT_REACHED, 1_800_000_000_300)
        assert [(c.device_id, c.value) for c in ended.credits] == [
            ("coin", 5000),
            ("notes", 20_000),
        ]
        assert [(s.device_id, s.items, s.total) for s in ended.shares] == [
            ("coin", 1, 5000),
            ("notes", 1, 20_000),
        ]
        assert ledger.cash_box("notes").total == notes_before.total + 20_000
        assert ledger.cash_box("coin").total == coin_before.total + 5000
        assert ledger.box_by_value("notes") == [(50_000, 1), (20_000, 2), (10_000, 1)]
        assert (ledger.last_event_counter("notes"), ledger.last_event_counter("coin")) == (
            123_459,
            10,
        )
        assert ledger.get(tx.id, "notes") == ended
        assert ledger.get(tx.id, "coin2") is None
        assert next(r.id for r in ledger.transactions(device_id="notes")) == tx.id
        exported = [(r.device_id, r.value) for r in ledger.export() if r.transaction_id == tx.id]
        assert exported == [("coin", 5000), ("notes", 20_000)]
    finally:
        ledger.close()
