"""``kioskd ledger``: the money ledger (coins and notes) for technicians — show, export, collect.

Reads ``{state_dir}/ledger.sqlite3`` directly (SQLite lets the running daemon
keep writing: WAL readers never block it, and ``collect`` waits at most
5 s for the daemon's current commit).  ``collect`` is the only write: an
append-only audit row with the counts it resets, so the coin box or note
stacker a technician empties can be reconciled with the credits afterwards (``show``
and ``collect`` list what a box holds by value: a stacker's denominations).
"""

from __future__ import annotations

import csv
import datetime as dt
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Annotated

import msgspec
import typer

from daemon.config import EX_CONFIG, ConfigError, load
from devices.cash.ledger import (
    LEDGER_FILE,
    Ledger,
    LedgerError,
    TransactionRecord,
    TransactionState,
)
from devices.runtime.clock import now_ms

app = typer.Typer(
    name="ledger",
    help="The coin ledger: show it, export it, record a cash box collection.",
    no_args_is_help=True,
)

EX_DATAERR = 65

ConfigOption = Annotated[
    Path | None,
    typer.Option(
        "--config", "-c", help="TOML config file (for [daemon] state_dir).", dir_okay=False
    ),
]
StateDirOption = Annotated[
    Path | None,
    typer.Option("--state-dir", help="The daemon's state directory (instead of --config)."),
]
DeviceOption = Annotated[
    str | None, typer.Option("--device", help="Only this acceptor (device id).")
]


def _fail(message: str, code: int) -> typer.Exit:
    typer.echo(f"kioskd ledger: {message}", err=True)
    return typer.Exit(code)


def _open(config: Path | None, state_dir: Path | None) -> Ledger:
    if state_dir is None:
        if config is None:
            raise _fail("give --config PATH or --state-dir DIR", 64)
        try:
            state_dir = Path(load(config).daemon.state_dir)
        except ConfigError as exc:
            raise _fail(f"invalid config: {exc}", EX_CONFIG) from None
    path = state_dir / LEDGER_FILE
    if not path.exists():
        raise _fail(f"no ledger at {path}", EX_DATAERR)
    try:
        return Ledger.open(path)
    except LedgerError as exc:
        raise _fail(str(exc), EX_DATAERR) from None


def _when(ms: int | None) -> str:
    if ms is None:
        return "-"
    return dt.datetime.fromtimestamp(ms / 1000, dt.UTC).isoformat(timespec="seconds")


def _by_value(by_value: list[tuple[int, int]]) -> str:
    """``; by value: 500000 x 2, 10000 x 1`` (a note stacker's denominations), or nothing."""
    if not by_value:
        return ""
    return "; by value: " + ", ".join(f"{value} x {items}" for value, items in by_value)


def _devices(record: TransactionRecord) -> set[str]:
    """The acceptors of a transaction: the one it was opened on and every one that took money."""
    return {record.device_id} | {c.device_id for c in record.credits}


def _share(record: TransactionRecord, device_id: str) -> str:
    """``notes: 20000 x 1 = 20000``: what one acceptor took in a transaction, by value."""
    values: dict[int, int] = {}
    for c in record.credits:
        if c.device_id == device_id:
            values[c.value] = values.get(c.value, 0) + 1
    by_value = " + ".join(f"{v} x {n}" for v, n in sorted(values.items(), reverse=True))
    return f"{device_id}: {by_value} = {sum(v * n for v, n in values.items())}"


def _ms(text: str | None) -> int | None:
    if text is None:
        return None
    try:
        moment = dt.datetime.fromisoformat(text)
    except ValueError:
        raise _fail(f"not an ISO date or time: {text!r}", 64) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    return int(moment.timestamp() * 1000)


@app.command()
def show(
    *,
    config: ConfigOption = None,
    state_dir: StateDirOption = None,
    device: DeviceOption = None,
    state: Annotated[
        TransactionState | None, typer.Option(help="Only transactions in this state.")
    ] = None,
    limit: Annotated[int, typer.Option(min=1, help="Newest transactions to list.")] = 20,
) -> None:
    """List transactions (newest first), cash boxes, collections and lost acceptor events."""
    ledger = _open(config, state_dir)
    try:
        records = ledger.transactions(device_id=device, state=state, limit=limit)
        devices = sorted(
            {d for r in ledger.transactions(limit=10_000) for d in _devices(r)}
            | ({device} if device else set())
        )
        boxes = [
            (ledger.cash_box(d), ledger.box_by_value(d)) for d in devices if device in (None, d)
        ]
        collections = ledger.collections(device)[:5]
        lost = ledger.lost_events(device)
    finally:
        ledger.close()
    typer.echo(
        f"{'started (UTC)':25} {'device':12} {'state':8} {'total':>10} {'due':>10}"
        " coins  transaction"
    )
    for r in records:
        flags = (" orphan" if r.orphan else "") + (
            f" lost={r.lost_events}{'+?' if r.lost_unknown else ''}"
            if r.lost_events or r.lost_unknown
            else ""
        )
        shares = r.shares
        if len(shares) > 1 or any(s.device_id != r.device_id for s in shares):
            flags += " (" + ", ".join(_share(r, s.device_id) for s in shares) + ")"
        typer.echo(
            f"{_when(r.started_ms):25} {r.device_id:12} {r.state.value:8} {r.total:>10}"
            f" {r.amount_due if r.amount_due is not None else '-':>10} {len(r.credits):>5}  {r.id}"
            f" {r.reason or ''}{flags}"
        )
    for box, by_value in boxes:
        typer.echo(
            f"cash box {box.device_id}: {box.coins} items, {box.total} since {_when(box.since_ms)}"
            + _by_value(by_value)
        )
    for c in collections:
        typer.echo(
            f"collected {c.device_id} at {_when(c.ts_ms)}: {c.coins} items, {c.total} ({c.note})"
        )
    for event in lost:
        count = "unknown number of" if event.count is None else str(event.count)
        typer.echo(
            f"LOST {_when(event.ts_ms)} {event.device_id}: {count} events ({event.reason.value})"
            f" in {event.transaction_id or '-'}"
        )


@app.command()
def export(
    *,
    config: ConfigOption = None,
    state_dir: StateDirOption = None,
    device: DeviceOption = None,
    fmt: Annotated[str, typer.Option("--format", help="csv or json.")] = "csv",
    since: Annotated[str | None, typer.Option(help="ISO time, inclusive (UTC if no zone).")] = None,
    until: Annotated[str | None, typer.Option(help="ISO time, exclusive.")] = None,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="File (default stdout).")
    ] = None,
) -> None:
    """Every credit with its transaction, oldest first, for reconciliation with the coin box."""
    if fmt not in ("csv", "json"):
        raise _fail(f"--format is csv or json, not {fmt!r}", 64)
    ledger = _open(config, state_dir)
    try:
        rows = ledger.export(device_id=device, since_ms=_ms(since), until_ms=_ms(until))
    finally:
        ledger.close()
    out = output.open("w", encoding="utf-8", newline="") if output else sys.stdout
    try:
        if fmt == "json":
            out.write(msgspec.json.encode([asdict(r) for r in rows]).decode() + "\n")
        else:
            writer = csv.writer(out)
            names = list(asdict(rows[0])) if rows else ["device_id", "transaction_id", "value"]
            writer.writerow(names)
            for row in rows:
                writer.writerow(asdict(row).values())
    finally:
        if output:
            out.close()


@app.command()
def collect(
    *,
    device: Annotated[str, typer.Option("--device", help="The acceptor whose box was emptied.")],
    technician: Annotated[str, typer.Option(help="Who emptied it (recorded).")],
    note: Annotated[str, typer.Option(help="Seal number or remark (never citizen data).")] = "",
    config: ConfigOption = None,
    state_dir: StateDirOption = None,
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask for confirmation.")] = False,
) -> None:
    """Record that the cash box was emptied: an audit row, then its counters back to zero."""
    ledger = _open(config, state_dir)
    try:
        box = ledger.cash_box(device)
        by_value = ledger.box_by_value(device)
        if not yes:
            typer.confirm(
                f"{device}: the box holds {box.coins} items ({box.total}); record it as emptied?",
                abort=True,
            )
        record = ledger.collect(device, now_ms(), note=f"{technician}: {note}".rstrip(": "))
    except LedgerError as exc:
        raise _fail(str(exc), EX_DATAERR) from None
    finally:
        ledger.close()
    typer.echo(
        f"collection {record.id}: {device}, {record.coins} items, {record.total},"
        f" since {_when(record.since_ms)}; counters reset" + _by_value(by_value)
    )
