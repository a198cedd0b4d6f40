"""The ledger package keeps the on-disk format: a file written before the split opens unchanged.

``golden/ledger-5a393cf.sqlite3`` was written by the single-module ledger of
commit 5a393cf (the last before it became a package) with transactions in
every state, credits with and without event counters, lost events of every
kind, a collection and two devices; ``golden/ledger-5a393cf.json`` is what
that code read back from it (``golden/make_ledger_5a393cf.py`` made both).
That file is schema version 2; opening it upgrades it to version 3, whose only
change is the acceptors' counters without v2's bound of 255 (an SSP validator's
stacked count is 32-bit): every row stays as it was.
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


def reads(ledger: Ledger) -> dict[str, Any]:
    """Everything the ledger's readers return, as the generator recorded it (JSON values)."""
    out = {
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
    decoded: dict[str, Any] = json.loads(json.dumps(out))
    return decoded


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


def upgraded(old: tuple[int, list[tuple[str, str, str]]]) -> tuple[int, list[tuple[str, str, str]]]:
    """A version 2 schema as version 3 makes it: the counters' bound of 255 dropped."""
    assert old[0] == 2, "the golden file is version 2"
    bounded = "CHECK (counter BETWEEN 0 AND 255)"
    assert sum(bounded in sql for _, _, sql in old[1]) == 1
    return SCHEMA_VERSION, [
        (kind, name, sql.replace(bounded, "CHECK (counter >= 0)")) for kind, name, sql in old[1]
    ]


def rows(path: Path) -> dict[str, list[tuple[Any, ...]]]:
    """Every table's rows, sorted."""
    conn = sqlite3.connect(path)
    try:
        tables = [n for (n,) in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        return {t: sorted(conn.execute(f"SELECT * FROM {t}").fetchall()) for t in tables}
    finally:
        conn.close()


def copy(tmp_path: Path) -> Path:
    path = tmp_path / LEDGER_FILE
    shutil.copyfile(WRITTEN, path)
    return path


def test_the_old_file_reads_as_the_old_code_read_it_and_keeps_every_row(tmp_path: Path) -> None:
    path = copy(tmp_path)
    before = rows(path)
    ledger = Ledger.open(path)
    try:
        got = reads(ledger)
    finally:
        ledger.close()
    assert got == json.loads(READ_BACK.read_text(encoding="utf-8"))
    assert rows(path) == before, "opening and reading changed a row"
    assert schema(path) == upgraded(schema(WRITTEN))


def test_a_new_file_has_exactly_the_upgraded_schema(tmp_path: Path) -> None:
    Ledger.open(tmp_path / "new.sqlite3").close()
    assert schema(tmp_path / "new.sqlite3") == upgraded(schema(WRITTEN))


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
