"""The ledger store: synchronous access to the ledger file, for one thread.

Durability: WAL journal with ``synchronous=FULL``
(:func:`devices.runtime.sqlite_store.connect`, checked), so every commit fsyncs
the WAL before it returns; a credit that returned survives
a crash or a power cut.

Threading: :class:`Ledger` is confined to the thread that opened it (sqlite3's
``check_same_thread``); the CLI uses it directly, the daemon through
:class:`~.runner.LedgerRunner`.
"""

from __future__ import annotations

import contextlib
import sqlite3
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from devices.runtime.sqlite_store import Synchronous, connect, transaction

from .export import ExportRow, export_rows
from .records import (
    CashBox,
    Collection,
    Credit,
    CreditRecord,
    EndReason,
    LedgerError,
    LostReason,
    LostRecord,
    TransactionRecord,
    TransactionState,
)
from .schema import BUSY_TIMEOUT_S, CREDIT_DEVICE, TX_COLUMNS, prepare


class Ledger:
    """Synchronous access to the ledger file; use it from one thread only.

    Every method raises :class:`LedgerError` when SQLite fails or when the
    requested change does not fit the transaction's state.
    """

    def __init__(self, conn: sqlite3.Connection, path: Path) -> None:
        self._conn = conn
        self.path = path

    @classmethod
    def open(cls, path: Path) -> Ledger:
        """Open (creating if needed) the ledger at ``path`` and check its durability settings.

        Raises:
            LedgerError: the file cannot be opened, WAL or ``synchronous=FULL``
                did not take, or the schema is newer than this program.

        """
        try:
            conn = connect(path, synchronous=Synchronous.FULL, busy_timeout_s=BUSY_TIMEOUT_S)
        except sqlite3.Error as exc:
            raise LedgerError(f"cannot open the coin ledger {path}: {exc}") from exc
        try:
            prepare(conn, path)
        except sqlite3.Error as exc:
            conn.close()
            raise LedgerError(f"cannot prepare the coin ledger {path}: {exc}") from exc
        except LedgerError:
            conn.close()
            raise
        return cls(conn, path)

    def close(self) -> None:
        """Close the connection (committed data is already on disk)."""
        self._conn.close()

    @contextlib.contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One write transaction, committed (fsynced) on success, rolled back on error."""
        try:
            with transaction(self._conn) as conn:
                yield conn
        except sqlite3.Error as exc:
            raise LedgerError(f"coin ledger write failed: {exc}") from exc

    @contextlib.contextmanager
    def _read(self) -> Iterator[sqlite3.Connection]:
        """Read in one snapshot across several statements."""
        conn = self._conn
        try:
            conn.execute("BEGIN")
            try:
                yield conn
            finally:
                conn.execute("COMMIT")
        except sqlite3.Error as exc:
            raise LedgerError(f"coin ledger read failed: {exc}") from exc

    # -- deposits ---------------------------------------------------------------------------

    def begin(
        self,
        device_id: str,
        *,
        currency: str,
        amount_due: int | None,
        timeout_ms: int,
        at_ms: int,
    ) -> TransactionRecord:
        """Open an ``active`` transaction (at most one per device).

        ``amount_due`` is whole currency units or None; ``timeout_ms`` is how long
        it may take coins, recorded with its wall-clock deadline.

        Raises:
            LedgerError: the device already has an active transaction, or SQLite failed.

        """
        tx_id = str(uuid.uuid4())
        with self._write() as conn:
            busy = conn.execute(
                "SELECT id FROM transactions WHERE device_id = ? AND state = 'active'",
                (device_id,),
            ).fetchone()
            if busy is not None:
                raise LedgerError(f"{device_id} already has active transaction {busy[0]}")
            conn.execute(
                "INSERT INTO transactions (id, device_id, state, currency, amount_due,"
                " started_ms, timeout_ms, deadline_ms) VALUES (?, ?, 'active', ?, ?, ?, ?, ?)",
                (tx_id, device_id, currency, amount_due, at_ms, timeout_ms, at_ms + timeout_ms),
            )
            return self._record(conn, tx_id)

    def credit(
        self,
        transaction_id: str,
        value: int,
        *,
        event_counter: int | None,
        at_ms: int,
        device_id: str | None = None,
    ) -> Credit:
        """Record a coin of ``value`` (whole units) in an ``active`` transaction; commit.

        ``device_id`` is the acceptor that took it (None: the transaction's); its
        cash box counters and event counter move in the same commit.

        Raises:
            LedgerError: no such active transaction, or SQLite failed.

        """
        return self._credit_into(
            transaction_id,
            value,
            state="active",
            refusal="is not active",
            device_id=device_id,
            event_counter=event_counter,
            at_ms=at_ms,
        )

    def credit_recovered(
        self,
        transaction_id: str,
        value: int,
        *,
        event_counter: int | None,
        at_ms: int,
        device_id: str | None = None,
    ) -> Credit:
        """Record a coin the acceptor buffered while the daemon was down; commit.

        It joins the transaction a crash left open, now ``unknown`` (not an
        orphan), in one commit with the cash box counters of ``device_id`` (the
        acceptor that took it; None: the transaction's).

        Raises:
            LedgerError: no such recovered transaction, or SQLite failed.

        """
        return self._credit_into(
            transaction_id,
            value,
            state="unknown",
            refusal="is not a recovered one",
            device_id=device_id,
            event_counter=event_counter,
            at_ms=at_ms,
        )

    def _credit_into(
        self,
        transaction_id: str,
        value: int,
        *,
        state: str,
        refusal: str,
        device_id: str | None,
        event_counter: int | None,
        at_ms: int,
    ) -> Credit:
        """Add a coin to the transaction if it is in ``state``; commit with the cash box.

        An ``unknown`` transaction takes coins only when a crash left it open (not an orphan).
        """
        with self._write() as conn:
            row = conn.execute(
                "UPDATE transactions SET total = total + ?, coins = coins + 1"
                " WHERE id = ? AND state = ? AND (state = 'active' OR orphan = 0)"
                " RETURNING device_id, total, coins, amount_due",
                (value, transaction_id, state),
            ).fetchone()
            if row is None:
                raise LedgerError(f"transaction {transaction_id} {refusal}")
            return self._insert_credit(
                conn,
                row,
                device_id=device_id or row[0],
                transaction_id=transaction_id,
                value=value,
                event_counter=event_counter,
                at_ms=at_ms,
                created=False,
            )

    def record_lost(
        self,
        device_id: str,
        *,
        transaction_id: str | None,
        count: int | None,
        reason: LostReason,
        at_ms: int,
        event_counter: int | None = None,
    ) -> LostRecord:
        """Record acceptor events that were never seen (``count`` None: unknown); commit.

        ``event_counter`` is the acceptor's counter after those events (the last
        lost one's, or 0 after a reset), stored in the same commit like a
        credit's, so a restart does not report them again.

        Raises:
            LedgerError: SQLite failed (or the transaction does not exist).

        """
        with self._write() as conn:
            (lost_id,) = conn.execute(
                "INSERT INTO lost_events (device_id, transaction_id, ts_ms, count, reason)"
                " VALUES (?, ?, ?, ?, ?) RETURNING id",
                (device_id, transaction_id, at_ms, count, reason.value),
            ).fetchone()
            if event_counter is not None:
                _store_counter(conn, device_id, event_counter, at_ms)
        return LostRecord(lost_id, device_id, transaction_id, at_ms, count, reason)

    def lost_events(self, device_id: str | None = None) -> list[LostRecord]:
        """Return the lost-event audit rows, newest first.

        Raises:
            LedgerError: SQLite failed.

        """
        with self._read() as conn:
            rows = conn.execute(
                "SELECT id, device_id, transaction_id, ts_ms, count, reason FROM lost_events"
                " WHERE ?1 IS NULL OR device_id = ?1 ORDER BY ts_ms DESC, id DESC",
                (device_id,),
            ).fetchall()
        return [
            LostRecord(lost_id, device, tx_id, ts, count, LostReason(reason))
            for lost_id, device, tx_id, ts, count, reason in rows
        ]

    def save_event_counter(self, device_id: str, counter: int, at_ms: int) -> None:
        """Remember the acceptor's event counter after events that credited nothing; commit.

        Credits store it in their own commit; this covers rejections and errors,
        so they are not reported again after a restart.

        Raises:
            LedgerError: SQLite failed.

        """
        with self._write() as conn:
            _store_counter(conn, device_id, counter, at_ms)

    def begin_catch_up(self, device_id: str, transaction_id: str | None, at_ms: int) -> None:
        """Record that the acceptor reads what it buffered before this start, for whom; commit.

        ``transaction_id`` is the ``unknown`` transaction those items go to (None:
        an orphan).  Kept until :meth:`end_catch_up`: a run that dies before then
        leaves it for the next, whose reading continues it (:meth:`unfinished_catch_up`).

        Raises:
            LedgerError: SQLite failed (or no such transaction).

        """
        with self._write() as conn:
            conn.execute(
                "INSERT INTO catch_ups (device_id, transaction_id, since_ms) VALUES (?, ?, ?)"
                " ON CONFLICT (device_id) DO UPDATE SET transaction_id = excluded.transaction_id,"
                " since_ms = excluded.since_ms",
                (device_id, transaction_id, at_ms),
            )

    def end_catch_up(self, device_id: str) -> None:
        """The acceptor has read everything it buffered before this start; commit.

        Raises:
            LedgerError: SQLite failed.

        """
        with self._write() as conn:
            conn.execute("DELETE FROM catch_ups WHERE device_id = ?", (device_id,))

    def unfinished_catch_up(self, device_id: str) -> tuple[str | None] | None:
        """The target of a catch-up an earlier run began and never finished, else None.

        Returns a 1-tuple: the transaction id that run credited its acceptor's buffered
        items to, or None (an orphan).

        Raises:
            LedgerError: SQLite failed.

        """
        with self._read() as conn:
            row = conn.execute(
                "SELECT transaction_id FROM catch_ups WHERE device_id = ?", (device_id,)
            ).fetchone()
            return None if row is None else (row[0],)

    def credit_orphan(
        self,
        device_id: str,
        value: int,
        *,
        currency: str,
        orphan_id: str | None,
        event_counter: int | None,
        at_ms: int,
    ) -> Credit:
        """Record a coin taken while no deposit was active; never drops it.

        It joins ``orphan_id`` while that orphan transaction is still unsettled,
        otherwise a new ``unknown`` orphan transaction is opened, in one commit.

        Raises:
            LedgerError: SQLite failed.

        """
        with self._write() as conn:
            row = None
            if orphan_id is not None:
                row = conn.execute(
                    "UPDATE transactions SET total = total + ?, coins = coins + 1"
                    " WHERE id = ? AND device_id = ? AND state = 'unknown' AND orphan = 1"
                    " RETURNING device_id, total, coins, amount_due",
                    (value, orphan_id, device_id),
                ).fetchone()
            created = row is None
            if row is None:
                orphan_id = str(uuid.uuid4())
                row = conn.execute(
                    "INSERT INTO transactions (id, device_id, state, currency, total, coins,"
                    " orphan, started_ms) VALUES (?, ?, 'unknown', ?, ?, 1, 1, ?)"
                    " RETURNING device_id, total, coins, amount_due",
                    (orphan_id, device_id, currency, value, at_ms),
                ).fetchone()
            assert orphan_id is not None
            return self._insert_credit(
                conn,
                row,
                device_id=device_id,
                transaction_id=orphan_id,
                value=value,
                event_counter=event_counter,
                at_ms=at_ms,
                created=created,
            )

    @staticmethod
    def _insert_credit(
        conn: sqlite3.Connection,
        row: tuple[str, int, int, int | None],
        *,
        device_id: str,
        transaction_id: str,
        value: int,
        event_counter: int | None,
        at_ms: int,
        created: bool,
    ) -> Credit:
        _, total, index, amount_due = row
        over = amount_due is not None and total > amount_due
        conn.execute(
            "INSERT INTO credits (transaction_id, idx, value, event_counter, ts_ms, overpayment,"
            " device_id) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (transaction_id, index, value, event_counter, at_ms, int(over), device_id),
        )
        box = conn.execute(
            "INSERT INTO cash_box (device_id, coins, total, since_ms) VALUES (?, 1, ?, ?)"
            " ON CONFLICT (device_id) DO UPDATE SET coins = coins + 1, total = total + ?"
            " RETURNING coins, total, since_ms",
            (device_id, value, at_ms, value),
        ).fetchone()
        if event_counter is not None:
            _store_counter(conn, device_id, event_counter, at_ms)
        record = CreditRecord(transaction_id, index, value, event_counter, at_ms, over, device_id)
        return Credit(record, total, created, CashBox(device_id, *box))

    def end(self, transaction_id: str, reason: EndReason, at_ms: int) -> TransactionRecord:
        """End an ``active`` transaction for ``reason``; commit.

        Raises:
            LedgerError: no such active transaction, or SQLite failed.

        """
        with self._write() as conn:
            changed = conn.execute(
                "UPDATE transactions SET state = 'ended', reason = ?, ended_ms = ?"
                " WHERE id = ? AND state = 'active'",
                (reason.value, at_ms, transaction_id),
            ).rowcount
            if changed != 1:
                raise LedgerError(f"transaction {transaction_id} is not active")
            return self._record(conn, transaction_id)

    def settle(self, transaction_id: str, at_ms: int) -> TransactionRecord:
        """Mark an ``unknown`` transaction ``settled`` (a UI acknowledged its coins); commit.

        Raises:
            LedgerError: no such unknown transaction, or SQLite failed.

        """
        with self._write() as conn:
            changed = conn.execute(
                "UPDATE transactions SET state = 'settled', settled_ms = ?"
                " WHERE id = ? AND state = 'unknown'",
                (at_ms, transaction_id),
            ).rowcount
            if changed != 1:
                raise LedgerError(f"transaction {transaction_id} is not unknown")
            return self._record(conn, transaction_id)

    def recover(self, device_id: str | None, at_ms: int) -> list[str]:
        """Turn every transaction a previous run left ``active`` into ``unknown``; commit.

        Call once when the board's acceptors start (``device_id`` None: every
        device's), before one opens a transaction.  Coins are kept.  Returns the
        ids recovered, oldest first.

        Raises:
            LedgerError: SQLite failed.

        """
        with self._write() as conn:
            rows = conn.execute(
                "UPDATE transactions SET state = 'unknown', recovered_ms = ?1"
                " WHERE (?2 IS NULL OR device_id = ?2) AND state = 'active'"
                " RETURNING id, started_ms",
                (at_ms, device_id),
            ).fetchall()
        return [tx_id for tx_id, _ in sorted(rows, key=lambda row: row[1])]

    def get(self, transaction_id: str, device_id: str | None = None) -> TransactionRecord | None:
        """Return the transaction with its credits, or None.

        With ``device_id``, None also when that device neither opened it nor
        took any of its money.

        Raises:
            LedgerError: SQLite failed.

        """
        with self._read() as conn:
            row = conn.execute(
                f"SELECT {TX_COLUMNS} FROM transactions t WHERE id = ?1"  # noqa: S608 - constant
                f" AND (?2 IS NULL OR {_took_part('?2')})",
                (transaction_id, device_id),
            ).fetchone()
            if row is None:
                return None
            return self._build(conn, row)

    def open_transactions(self, device_id: str) -> list[TransactionRecord]:
        """Return the device's ``active`` transaction (first) and ``unknown`` ones, oldest first.

        The device's: it opened them or took some of their money.

        Raises:
            LedgerError: SQLite failed.

        """
        with self._read() as conn:
            rows = conn.execute(
                f"SELECT {TX_COLUMNS} FROM transactions t"  # noqa: S608 - constant
                f" WHERE {_took_part('?1')} AND state IN ('active', 'unknown')"
                " ORDER BY state = 'active' DESC, started_ms, id",
                (device_id,),
            ).fetchall()
            return [self._build(conn, row) for row in rows]

    def count(self, device_id: str, state: TransactionState) -> int:
        """How many transactions of the device are in ``state``.

        Raises:
            LedgerError: SQLite failed.

        """
        with self._read() as conn:
            (n,) = conn.execute(
                "SELECT count(*) FROM transactions WHERE device_id = ? AND state = ?",
                (device_id, state.value),
            ).fetchone()
            return int(n)

    def transactions(
        self,
        device_id: str | None = None,
        state: TransactionState | None = None,
        since_ms: int | None = None,
        limit: int = 100,
    ) -> list[TransactionRecord]:
        """Transactions newest first, for ``kioskd ledger show``; filters are optional.

        ``device_id``: the transactions it opened or took money in.

        Raises:
            LedgerError: SQLite failed.

        """
        with self._read() as conn:
            rows = conn.execute(
                f"SELECT {TX_COLUMNS} FROM transactions t"  # noqa: S608 - constant
                f" WHERE (?1 IS NULL OR {_took_part('?1')}) AND (?2 IS NULL OR state = ?2)"
                " AND (?3 IS NULL OR started_ms >= ?3)"
                " ORDER BY started_ms DESC, id LIMIT ?4",
                (device_id, state.value if state else None, since_ms, limit),
            ).fetchall()
            return [self._build(conn, row) for row in rows]

    def export(
        self,
        device_id: str | None = None,
        since_ms: int | None = None,
        until_ms: int | None = None,
    ) -> list[ExportRow]:
        """Every credit with its transaction, oldest first, for ``kioskd ledger export``.

        ``since_ms``/``until_ms`` bound the credit time (inclusive/exclusive).

        Raises:
            LedgerError: SQLite failed.

        """
        with self._read() as conn:
            return export_rows(conn, device_id, since_ms, until_ms)

    def last_event_counter(self, device_id: str) -> int | None:
        """Return the acceptor event counter last processed (by a credit or otherwise).

        A driver whose hardware buffers credits with a counter (ccTalk) reads it
        after a restart so that a buffered coin is never credited twice.

        Raises:
            LedgerError: SQLite failed.

        """
        with self._read() as conn:
            row = conn.execute(
                "SELECT counter FROM acceptor_counters WHERE device_id = ?",
                (device_id,),
            ).fetchone()
            return None if row is None else int(row[0])

    # -- cash box ---------------------------------------------------------------------------

    def cash_box(self, device_id: str) -> CashBox:
        """Return the device's cash box counters (zero before its first coin).

        Raises:
            LedgerError: SQLite failed.

        """
        with self._read() as conn:
            row = conn.execute(
                "SELECT coins, total, since_ms FROM cash_box WHERE device_id = ?",
                (device_id,),
            ).fetchone()
        if row is None:
            return CashBox(device_id, 0, 0, 0)
        return CashBox(device_id, *row)

    def box_by_value(self, device_id: str) -> list[tuple[int, int]]:
        """Return ``(value, items)`` of what the cash box holds since its last collection.

        Highest value first; counted from the credits the device took since the
        box's ``since_ms`` (a note validator's stacker: per denomination), in its
        own transactions or in a deposit across several acceptors.

        Raises:
            LedgerError: SQLite failed.

        """
        with self._read() as conn:
            row = conn.execute(
                "SELECT since_ms FROM cash_box WHERE device_id = ?", (device_id,)
            ).fetchone()
            rows = conn.execute(
                "SELECT c.value, count(*) FROM credits c JOIN transactions t"  # noqa: S608
                f" ON t.id = c.transaction_id WHERE {CREDIT_DEVICE} = ? AND c.ts_ms >= ?"
                " GROUP BY c.value ORDER BY c.value DESC",
                (device_id, row[0] if row is not None else 0),
            ).fetchall()
        return [(value, items) for value, items in rows]

    def collect(self, device_id: str, at_ms: int, note: str = "") -> Collection:
        """Record that the cash box was emptied: an audit row, then counters to zero; commit.

        ``note`` is free text (technician, seal number); never citizen data.

        Raises:
            LedgerError: SQLite failed.

        """
        with self._write() as conn:
            row = conn.execute(
                "SELECT coins, total, since_ms FROM cash_box WHERE device_id = ?",
                (device_id,),
            ).fetchone()
            coins, total, since = row if row is not None else (0, 0, at_ms)
            (audit_id,) = conn.execute(
                "INSERT INTO collections (device_id, ts_ms, coins, total, since_ms, note)"
                " VALUES (?, ?, ?, ?, ?, ?) RETURNING id",
                (device_id, at_ms, coins, total, since, note),
            ).fetchone()
            conn.execute(
                "INSERT INTO cash_box (device_id, coins, total, since_ms) VALUES (?, 0, 0, ?)"
                " ON CONFLICT (device_id) DO UPDATE SET coins = 0, total = 0,"
                " since_ms = excluded.since_ms",
                (device_id, at_ms),
            )
        return Collection(audit_id, device_id, at_ms, coins, total, since, note)

    def collections(self, device_id: str | None = None) -> list[Collection]:
        """Return the collection audit rows, newest first.

        Raises:
            LedgerError: SQLite failed.

        """
        with self._read() as conn:
            rows = conn.execute(
                "SELECT id, device_id, ts_ms, coins, total, since_ms, note FROM collections"
                " WHERE ?1 IS NULL OR device_id = ?1 ORDER BY ts_ms DESC, id DESC",
                (device_id,),
            ).fetchall()
        return [Collection(*row) for row in rows]

    # -- helpers ----------------------------------------------------------------------------

    def _record(self, conn: sqlite3.Connection, transaction_id: str) -> TransactionRecord:
        row = conn.execute(
            f"SELECT {TX_COLUMNS} FROM transactions WHERE id = ?",  # noqa: S608 - constant
            (transaction_id,),
        ).fetchone()
        return self._build(conn, row)

    @staticmethod
    def _build(conn: sqlite3.Connection, row: tuple[Any, ...]) -> TransactionRecord:
        (
            tx_id,
            device_id,
            state,
            currency,
            amount_due,
            total,
            reason,
            orphan,
            started,
            timeout,
            deadline,
            ended,
            recovered,
            settled,
        ) = row
        lost, known, unknown = conn.execute(
            "SELECT count(*), coalesce(sum(count), 0), count(*) - count(count) FROM lost_events"
            " WHERE transaction_id = ?",
            (tx_id,),
        ).fetchone()
        coins = tuple(
            CreditRecord(str(tx_id), idx, value, counter, ts, bool(over), str(device or device_id))
            for idx, value, counter, ts, over, device in conn.execute(
                "SELECT idx, value, event_counter, ts_ms, overpayment, device_id FROM credits"
                " WHERE transaction_id = ? ORDER BY idx",
                (tx_id,),
            )
        )
        return TransactionRecord(
            id=str(tx_id),
            device_id=str(device_id),
            state=TransactionState(state),
            currency=str(currency),
            amount_due=amount_due,
            total=total,
            reason=None if reason is None else EndReason(reason),
            orphan=bool(orphan),
            started_ms=started,
            timeout_ms=timeout,
            deadline_ms=deadline,
            ended_ms=ended,
            recovered_ms=recovered,
            settled_ms=settled,
            credits=coins,
            lost_events=int(known) if lost else 0,
            lost_unknown=bool(unknown),
        )


def _took_part(param: str) -> str:
    """SQL: the device in parameter ``param`` opened transaction ``t`` or took some of its money."""
    return (
        f"(t.device_id = {param} OR EXISTS (SELECT 1 FROM credits c"  # noqa: S608 - a placeholder
        f" WHERE c.transaction_id = t.id AND c.device_id = {param}))"
    )


def _store_counter(conn: sqlite3.Connection, device_id: str, counter: int, at_ms: int) -> None:
    conn.execute(
        "INSERT INTO acceptor_counters (device_id, counter, ts_ms) VALUES (?, ?, ?)"
        " ON CONFLICT (device_id) DO UPDATE SET counter = excluded.counter, ts_ms = excluded.ts_ms",
        (device_id, counter, at_ms),
    )
