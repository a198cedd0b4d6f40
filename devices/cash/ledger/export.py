"""What ``kioskd ledger export`` writes (CSV or JSON): every credit with its transaction, flat.

The CLI writes the rows (``daemon/cli/ledger.py``); this module says what a row
holds and reads them in one snapshot (:meth:`~.store.Ledger.export`).
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass

from .schema import CREDIT_DEVICE


@dataclass(frozen=True, slots=True)
class ExportRow:
    """One credit with its transaction, flat, for ``kioskd ledger export`` (CSV).

    ``device_id`` is the acceptor that took the credit (whose cash box holds it).
    """

    device_id: str
    transaction_id: str
    state: str
    currency: str
    amount_due: int | None
    reason: str | None
    started_ms: int
    ended_ms: int | None
    index: int
    value: int
    ts_ms: int
    overpayment: bool
    event_counter: int | None


def export_rows(
    conn: sqlite3.Connection,
    device_id: str | None,
    since_ms: int | None,
    until_ms: int | None,
) -> list[ExportRow]:
    """Every credit with its transaction, oldest first (see :meth:`~.store.Ledger.export`).

    Raises:
        sqlite3.Error: SQLite failed (the caller's read turns it into a ``LedgerError``).

    """
    rows = conn.execute(
        f"SELECT {CREDIT_DEVICE}, t.id, t.state, t.currency, t.amount_due, t.reason,"  # noqa: S608
        " t.started_ms, t.ended_ms, c.idx, c.value, c.ts_ms, c.overpayment,"
        " c.event_counter FROM credits c JOIN transactions t ON t.id = c.transaction_id"
        f" WHERE (?1 IS NULL OR {CREDIT_DEVICE} = ?1) AND (?2 IS NULL OR c.ts_ms >= ?2)"
        " AND (?3 IS NULL OR c.ts_ms < ?3) ORDER BY c.ts_ms, t.id, c.idx",
        (device_id, since_ms, until_ms),
    ).fetchall()
    return [
        ExportRow(
            device_id=device,
            transaction_id=tx_id,
            state=state,
            currency=currency,
            amount_due=due,
            reason=reason,
            started_ms=started,
            ended_ms=ended,
            index=idx,
            value=value,
            ts_ms=ts,
            overpayment=bool(over),
            event_counter=counter,
        )
        for (
            device,
            tx_id,
            state,
            currency,
            due,
            reason,
            started,
            ended,
            idx,
            value,
            ts,
            over,
            counter,
        ) in rows
    ]
