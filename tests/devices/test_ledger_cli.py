"""``kioskd ledger show|export|collect`` against a ledger with deposits, orphans and losses."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

from typer.testing import CliRunner

from daemon.cli import app
from devices.cash.ledger import LEDGER_FILE, EndReason, Ledger, LostReason

runner = CliRunner()


def fill(state: Path) -> str:
    state.mkdir()
    ledger = Ledger.open(state / LEDGER_FILE)
    try:
        tx = ledger.begin("coins", currency="VND", amount_due=3000, timeout_ms=60_000, at_ms=1_000)
        ledger.credit(tx.id, 2000, event_counter=1, at_ms=1_100)
        ledger.credit(tx.id, 2000, event_counter=2, at_ms=1_200)
        ledger.record_lost(
            "coins", transaction_id=tx.id, count=3, reason=LostReason.COUNTER_JUMP, at_ms=1_250
        )
        ledger.end(tx.id, EndReason.AMOUNT_REACHED, 1_300)
        ledger.credit_orphan(
            "coins", 1000, currency="VND", orphan_id=None, event_counter=3, at_ms=2_000
        )
    finally:
        ledger.close()
    return tx.id


def test_show_lists_transactions_boxes_and_losses(tmp_path: Path) -> None:
    tx = fill(tmp_path / "state")
    result = runner.invoke(app, ["ledger", "show", "--state-dir", str(tmp_path / "state")])
    assert result.exit_code == 0, result.output
    assert tx in result.output
    assert "amountReached lost=3" in result.output
    assert "orphan" in result.output
    assert "cash box coins: 3 items, 5000" in result.output
    assert "LOST" in result.output
    assert "counterJump" in result.output


def test_export_csv_and_json(tmp_path: Path) -> None:
    tx = fill(tmp_path / "state")
    state = str(tmp_path / "state")
    result = runner.invoke(app, ["ledger", "export", "--state-dir", state])
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(io.StringIO(result.output)))
    assert [(r["transaction_id"], r["value"], r["event_counter"]) for r in rows[:2]] == [
        (tx, "2000", "1"),
        (tx, "2000", "2"),
    ]
    assert rows[1]["overpayment"] == "True"
    out = tmp_path / "export.json"
    result = runner.invoke(
        app, ["ledger", "export", "--state-dir", state, "--format", "json", "-o", str(out)]
    )
    assert result.exit_code == 0, result.output
    data = json.loads(out.read_text())
    assert [d["value"] for d in data] == [2000, 2000, 1000]
    since = runner.invoke(
        app, ["ledger", "export", "--state-dir", state, "--since", "1970-01-01T00:00:01.500"]
    )
    assert [r["value"] for r in csv.DictReader(io.StringIO(since.output))] == ["1000"]


def test_collect_is_audited_and_resets_the_counters(tmp_path: Path) -> None:
    fill(tmp_path / "state")
    state = str(tmp_path / "state")
    refused = runner.invoke(
        app,
        ["ledger", "collect", "--state-dir", state, "--device", "coins", "--technician", "An"],
        input="n\n",
    )
    assert refused.exit_code != 0
    result = runner.invoke(
        app,
        [
            "ledger",
            "collect",
            "--state-dir",
            state,
            "--device",
            "coins",
            "--technician",
            "An",
            "--note",
            "seal 42",
            "--yes",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "3 items, 5000" in result.output
    ledger = Ledger.open(tmp_path / "state" / LEDGER_FILE)
    try:
        assert ledger.cash_box("coins").coins == 0
        (audit,) = ledger.collections("coins")
        assert (audit.coins, audit.total, audit.note) == (3, 5000, "An: seal 42")
    finally:
        ledger.close()


def test_missing_ledger_is_an_error(tmp_path: Path) -> None:
    result = runner.invoke(app, ["ledger", "show", "--state-dir", str(tmp_path)])
    assert result.exit_code == 65
    result = runner.invoke(app, ["ledger", "show"])
    assert result.exit_code == 64


def test_a_note_stacker_is_shown_and_collected_by_denomination(tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir()
    ledger = Ledger.open(state / LEDGER_FILE)
    try:
        tx = ledger.begin("notes", currency="VND", amount_due=None, timeout_ms=60_000, at_ms=1_000)
        for n, value in enumerate((500_000, 10_000, 500_000, 20_000), start=1):
            ledger.credit(tx.id, value, event_counter=n, at_ms=1_000 + n)
        ledger.end(tx.id, EndReason.ENDED, 2_000)
    finally:
        ledger.close()
    result = runner.invoke(app, ["ledger", "show", "--state-dir", str(state)])
    assert result.exit_code == 0, result.output
    by_value = "by value: 500000 x 2, 20000 x 1, 10000 x 1"
    assert "cash box notes: 4 items, 1030000 since" in result.output
    assert by_value in result.output
    argv = ["ledger", "collect", "--state-dir", str(state), "--device", "notes"]
    collected = runner.invoke(app, [*argv, "--technician", "An", "--yes"])
    assert collected.exit_code == 0, collected.output
    assert "4 items, 1030000" in collected.output
    assert by_value in collected.output
    after = runner.invoke(app, ["ledger", "show", "--state-dir", str(state)])
    assert "cash box notes: 0 items, 0 since" in after.output
    assert "by value" not in after.output.split("cash box notes")[1].splitlines()[0]


def test_one_fee_in_coins_and_notes_is_shown_per_acceptor_and_each_box_collected_alone(
    tmp_path: Path,
) -> None:
    """A deposit across the coin acceptor and the note validator: one transaction, two boxes."""
    state = tmp_path / "state"
    state.mkdir()
    ledger = Ledger.open(state / LEDGER_FILE)
    try:
        tx = ledger.begin("coins", currency="VND", amount_due=27_000, timeout_ms=60_000, at_ms=1).id
        ledger.credit(tx, 2000, event_counter=1, at_ms=2)
        ledger.credit(tx, 5000, event_counter=1, at_ms=3, device_id="notes")
        ledger.credit(tx, 20_000, event_counter=2, at_ms=4, device_id="notes")
        ledger.end(tx, EndReason.AMOUNT_REACHED, 5)
    finally:
        ledger.close()
    result = runner.invoke(app, ["ledger", "show", "--state-dir", str(state)])
    assert result.exit_code == 0, result.output
    (line,) = [x for x in result.output.splitlines() if tx in x]
    assert " coins " in line
    assert "27000" in line
    assert "(coins: 2000 x 1 = 2000, notes: 20000 x 1 + 5000 x 1 = 25000)" in line
    assert "cash box coins: 1 items, 2000 since" in result.output
    assert "cash box notes: 2 items, 25000 since" in result.output
    assert "by value: 20000 x 1, 5000 x 1" in result.output
    only_notes = runner.invoke(
        app, ["ledger", "show", "--state-dir", str(state), "--device", "notes"]
    )
    assert tx in only_notes.output, "the note validator took part in the coin acceptor's deposit"
    exported = runner.invoke(
        app, ["ledger", "export", "--state-dir", str(state), "--format", "json"]
    )
    assert [(r["device_id"], r["value"]) for r in json.loads(exported.output)] == [
        ("coins", 2000),
        ("notes", 5000),
        ("notes", 20_000),
    ]
    argv = ["ledger", "collect", "--state-dir", str(state), "--device", "notes"]
    collected = runner.invoke(app, [*argv, "--technician", "An", "--yes"])
    assert collected.exit_code == 0, collected.output
    assert "notes, 2 items, 25000" in collected.output
    after = runner.invoke(app, ["ledger", "show", "--state-dir", str(state)])
    assert "cash box notes: 0 items, 0 since" in after.output
    assert "cash box coins: 1 items, 2000 since" in after.output
