"""How ``ledger-1592b5a.sqlite3`` and ``.json`` were made (tests/devices/test_ledger_format.py).

A schema version 3 file, as the ledger of commit 1592b5a (the last before
schema 4's ``credits.device_id``) writes it: ``ledger-5a393cf.sqlite3`` (version
2) opened and so upgraded by that code, then a note validator's deposit
(``notes``) and an orphan note added.  The JSON holds what that code reads back.
It imports that commit's package, so it runs only in a checkout of it:

    git worktree add /tmp/kioskd-1592b5a 1592b5a
    PYTHONPATH=/tmp/kioskd-1592b5a python tests/devices/golden/make_ledger_1592b5a.py \\
        tests/devices/golden
"""

from __future__ import annotations

import json
import shutil
import sys
from dataclasses import asdict
from pathlib import Path

from devices.cash.ledger import EndReason, Ledger, TransactionState

out = Path(sys.argv[1])
path = out / "ledger-1592b5a.sqlite3"
path.unlink(missing_ok=True)
shutil.copyfile(out / "ledger-5a393cf.sqlite3", path)
led = Ledger.open(path)
# notes: a deposit ended by amountReached, two notes with the validator's stacked count
n = led.begin(
    "notes", currency="VND", amount_due=60_000, timeout_ms=120_000, at_ms=1_750_000_000_000
)
led.credit(n.id, 50_000, event_counter=123_456, at_ms=1_750_000_001_000)
led.credit(n.id, 20_000, event_counter=123_457, at_ms=1_750_000_002_000)
led.end(n.id, EndReason.AMOUNT_REACHED, 1_750_000_002_100)
# notes: a note stacked with no deposit active (an orphan)
led.credit_orphan(
    "notes", 10_000, currency="VND", orphan_id=None, event_counter=123_458, at_ms=1_750_000_100_000
)
devices = ("coin", "coin2", "notes")
reads = {
    "transactions": [asdict(t) for t in led.transactions(limit=1000)],
    "open": {x: [asdict(t) for t in led.open_transactions(x)] for x in devices},
    "cash_box": [asdict(led.cash_box(x)) for x in (*devices, "nobody")],
    "box_by_value": {x: led.box_by_value(x) for x in devices},
    "collections": [asdict(x) for x in led.collections()],
    "lost_events": [asdict(x) for x in led.lost_events()],
    "export": [asdict(x) for x in led.export()],
    "counters": {x: led.last_event_counter(x) for x in devices},
    "counts": {x: {s.value: led.count(x, s) for s in TransactionState} for x in devices},
}
led._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
led.close()
(out / "ledger-1592b5a.json").write_text(json.dumps(reads, indent=1, sort_keys=True) + "\n")
