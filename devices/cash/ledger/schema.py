"""The ledger file's format: its SQL schema, version and the upgrade of older files.

One SQLite file per board (:data:`LEDGER_FILE` in the daemon's state directory).
Money is whole units of the currency in INTEGER columns; timestamps are Unix
epoch ms.  Credits, collections and lost events are append-only, transactions
are kept, and a transaction's state only moves ``active -> ended|unknown`` and
``unknown -> settled``: triggers enforce both, so no later bug can rewrite history.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from .records import LedgerError

#: File name of the ledger inside the daemon's state directory.
LEDGER_FILE = "ledger.sqlite3"
#: 1: no lost events nor counters; 2: an acceptor's counter up to 255 (ccTalk's ring);
#: 3: any counter from 0 (an SSP validator's stacked count is 32-bit); 4: a credit names
#: the acceptor that took it (``credits.device_id``; NULL: the transaction's device), so one
#: deposit takes money from several acceptors of the board; 5: an acceptor's reading of what
#: it buffered before a start, while unfinished (``catch_ups``), survives a crash.
SCHEMA_VERSION = 5
#: How long a write waits for another process (``kioskd ledger collect``) to commit, in s.
BUSY_TIMEOUT_S = 5.0

SCHEMA = """
CREATE TABLE IF NOT EXISTS transactions (
    id TEXT PRIMARY KEY,
    device_id TEXT NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('active', 'ended', 'unknown', 'settled')),
    currency TEXT NOT NULL,
    amount_due INTEGER CHECK (amount_due IS NULL OR amount_due > 0),
    total INTEGER NOT NULL DEFAULT 0 CHECK (total >= 0),
    coins INTEGER NOT NULL DEFAULT 0 CHECK (coins >= 0),
    reason TEXT CHECK (reason IS NULL OR reason IN ('amountReached', 'timeout', 'ended')),
    orphan INTEGER NOT NULL DEFAULT 0 CHECK (orphan IN (0, 1)),
    started_ms INTEGER NOT NULL,
    timeout_ms INTEGER,
    deadline_ms INTEGER,
    ended_ms INTEGER,
    recovered_ms INTEGER,
    settled_ms INTEGER
) STRICT;
CREATE UNIQUE INDEX IF NOT EXISTS one_active_per_device
    ON transactions (device_id) WHERE state = 'active';
CREATE INDEX IF NOT EXISTS transactions_by_device
    ON transactions (device_id, state, started_ms);
CREATE TABLE IF NOT EXISTS credits (
    transaction_id TEXT NOT NULL REFERENCES transactions (id),
    idx INTEGER NOT NULL CHECK (idx >= 1),
    value INTEGER NOT NULL CHECK (value > 0),
    event_counter INTEGER,
    ts_ms INTEGER NOT NULL,
    overpayment INTEGER NOT NULL CHECK (overpayment IN (0, 1)), device_id TEXT,
    PRIMARY KEY (transaction_id, idx)
) STRICT;
CREATE TABLE IF NOT EXISTS cash_box (
    device_id TEXT PRIMARY KEY,
    coins INTEGER NOT NULL CHECK (coins >= 0),
    total INTEGER NOT NULL CHECK (total >= 0),
    since_ms INTEGER NOT NULL
) STRICT;
CREATE TABLE IF NOT EXISTS collections (
    id INTEGER PRIMARY KEY,
    device_id TEXT NOT NULL,
    ts_ms INTEGER NOT NULL,
    coins INTEGER NOT NULL,
    total INTEGER NOT NULL,
    since_ms INTEGER NOT NULL,
    note TEXT NOT NULL
) STRICT;
CREATE TABLE IF NOT EXISTS acceptor_counters (
    device_id TEXT PRIMARY KEY,
    counter INTEGER NOT NULL CHECK (counter >= 0),
    ts_ms INTEGER NOT NULL
) STRICT;
CREATE TABLE IF NOT EXISTS catch_ups (
    device_id TEXT PRIMARY KEY,
    transaction_id TEXT REFERENCES transactions (id),
    since_ms INTEGER NOT NULL
) STRICT;
CREATE TABLE IF NOT EXISTS lost_events (
    id INTEGER PRIMARY KEY,
    device_id TEXT NOT NULL,
    transaction_id TEXT REFERENCES transactions (id),
    ts_ms INTEGER NOT NULL,
    count INTEGER CHECK (count IS NULL OR count > 0),
    reason TEXT NOT NULL
) STRICT;
CREATE INDEX IF NOT EXISTS lost_events_by_transaction ON lost_events (transaction_id);
CREATE TRIGGER IF NOT EXISTS lost_events_append_only_u BEFORE UPDATE ON lost_events
    BEGIN SELECT RAISE(ABORT, 'lost events are append-only'); END;
CREATE TRIGGER IF NOT EXISTS lost_events_append_only_d BEFORE DELETE ON lost_events
    BEGIN SELECT RAISE(ABORT, 'lost events are append-only'); END;
CREATE TRIGGER IF NOT EXISTS credits_append_only_u BEFORE UPDATE ON credits
    BEGIN SELECT RAISE(ABORT, 'credits are append-only'); END;
CREATE TRIGGER IF NOT EXISTS credits_append_only_d BEFORE DELETE ON credits
    BEGIN SELECT RAISE(ABORT, 'credits are append-only'); END;
CREATE TRIGGER IF NOT EXISTS collections_append_only_u BEFORE UPDATE ON collections
    BEGIN SELECT RAISE(ABORT, 'collections are append-only'); END;
CREATE TRIGGER IF NOT EXISTS collections_append_only_d BEFORE DELETE ON collections
    BEGIN SELECT RAISE(ABORT, 'collections are append-only'); END;
CREATE TRIGGER IF NOT EXISTS transactions_kept BEFORE DELETE ON transactions
    BEGIN SELECT RAISE(ABORT, 'transactions are kept'); END;
CREATE TRIGGER IF NOT EXISTS transactions_state_flow BEFORE UPDATE OF state ON transactions
    WHEN NOT (old.state = new.state
              OR (old.state = 'active' AND new.state IN ('ended', 'unknown'))
              OR (old.state = 'unknown' AND new.state = 'settled'))
    BEGIN SELECT RAISE(ABORT, 'illegal transaction state change'); END;
"""

#: A credit's acceptor: the one named on the credit, else the transaction's (rows of
#: files before version 4 name none).  ``c`` is the credit, ``t`` its transaction.
CREDIT_DEVICE = "coalesce(c.device_id, t.device_id)"

COUNTERS_FROM_CREDITS = """
INSERT OR IGNORE INTO acceptor_counters (device_id, counter, ts_ms)
    SELECT t.device_id, c.event_counter, c.ts_ms FROM credits c
    JOIN transactions t ON t.id = c.transaction_id
    WHERE c.event_counter IS NOT NULL ORDER BY c.rowid DESC;
"""

#: Version 2 -> 3: the counters' table without v2's upper bound of 255 (a CHECK
#: cannot be altered in SQLite: the table is rebuilt with its rows).
UNBOUNDED_COUNTERS = """
CREATE TABLE acceptor_counters_v3 (
    device_id TEXT PRIMARY KEY,
    counter INTEGER NOT NULL CHECK (counter >= 0),
    ts_ms INTEGER NOT NULL
) STRICT;
INSERT INTO acceptor_counters_v3 (device_id, counter, ts_ms)
    SELECT device_id, counter, ts_ms FROM acceptor_counters;
DROP TABLE acceptor_counters;
ALTER TABLE acceptor_counters_v3 RENAME TO acceptor_counters;
"""

#: Version 3 -> 4: a credit names its acceptor (SQLite places the column after
#: ``overpayment``, where :data:`SCHEMA` has it, so old and new files read the same).
CREDIT_DEVICES = "ALTER TABLE credits ADD COLUMN device_id TEXT;"


#: The columns of a transaction row, in the order :class:`~.store.Ledger` reads them.
TX_COLUMNS = (
    "id, device_id, state, currency, amount_due, total, reason, orphan, started_ms,"
    " timeout_ms, deadline_ms, ended_ms, recovered_ms, settled_ms"
)


def prepare(conn: sqlite3.Connection, path: Path) -> None:
    """Bring the file of ``conn`` to this schema and turn foreign keys on.

    ``conn`` comes from :func:`devices.runtime.sqlite_store.connect` with
    ``synchronous=FULL``, which already made and checked it durable (WAL). A file
    of an older version gains the tables it lacks in one commit; an existing file
    is otherwise opened unchanged.

    Raises:
        LedgerError: the file's schema is newer than this program.
        sqlite3.Error: SQLite failed.

    """
    conn.execute("PRAGMA foreign_keys=ON")
    (version,) = conn.execute("PRAGMA user_version").fetchone()
    if version > SCHEMA_VERSION:
        raise LedgerError(
            f"coin ledger {path} has schema {version}; this kioskd knows {SCHEMA_VERSION}",
        )
    if version < SCHEMA_VERSION:
        # Every statement of the schema is idempotent: a v1 file gains the tables it
        # lacks, and its acceptors' counters are carried over from their latest
        # credits; a v2 file's counters lose their bound of 255; a file before v4
        # gains its credits' device column (NULL in every row it has).
        columns = {row[1] for row in conn.execute("PRAGMA table_info(credits)")}
        upgrade = ""
        if columns:
            if version < 2:  # noqa: PLR2004
                upgrade = COUNTERS_FROM_CREDITS
            elif version < 3:  # noqa: PLR2004
                upgrade = UNBOUNDED_COUNTERS
            if "device_id" not in columns:
                upgrade += CREDIT_DEVICES
        conn.executescript(
            f"BEGIN IMMEDIATE; {SCHEMA} {upgrade} PRAGMA user_version = {SCHEMA_VERSION}; COMMIT;",
        )
