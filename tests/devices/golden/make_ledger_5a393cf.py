"""How ``ledger-5a393cf.sqlite3`` and ``.json`` were made (tests/devices/test_ledger_format.py).

The ledger file is written by the code of commit 5a393cf, the last one before
the ledger became a package, and the JSON holds what that code reads back.
It imports that commit's module, so it runs only in a checkout of it:

    git worktree add /tmp/kioskd-5a393cf 5a393cf
    PYTHONPATH=/tmp/kioskd-5a393cf python tests/devices/golden/make_ledger_5a393cf.py \\
        tests/devices/golden
"""

from __future__ import annotations

import json
import sys
from dataclasses import asdict
from pathlib import Path

from devices.coin_acceptor.ledger import EndReason, Ledger, LostReason, TransactionState

out = Path(sys.argv[1])
path = out / "ledger-5a393cf.sqlite3"
path.unlink(missing_ok=True)
led = Ledger.open(path)
# coin: a deposit ended by amountReached with overpayment
a = led.begin("coin", currency="VND", amount_due=3000, timeout_ms=120_000, at_ms=1_700_000_000_000)
led.credit(a.id, 2000, event_counter=1, at_ms=1_700_000_001_000)
led.credit(a.id, 2000, event_counter=2, at_ms=1_700_000_002_000)
led.end(a.id, EndReason.AMOUNT_REACHED, 1_700_000_002_100)
# coin: a deposit ended by timeout without coins
b = led.begin("coin", currency="VND", amount_due=None, timeout_ms=60_000, at_ms=1_700_000_010_000)
led.end(b.id, EndReason.TIMEOUT, 1_700_000_070_000)
# coin: a deposit a crash left active, recovered (unknown), with a lost-event report, then settled
c = led.begin(
    "coin", currency="VND", amount_due=10_000, timeout_ms=120_000, at_ms=1_700_000_100_000
)
led.credit(c.id, 5000, event_counter=3, at_ms=1_700_000_101_000)
led.record_lost(
    "coin",
    transaction_id=c.id,
    count=2,
    reason=LostReason.COUNTER_JUMP,
    at_ms=1_700_000_102_000,
    event_counter=6,
)
led.recover("coin", 1_700_000_200_000)
led.credit_recovered(c.id, 1000, event_counter=7, at_ms=1_700_000_200_500)
led.settle(c.id, 1_700_000_300_000)
# coin: an orphan coin (no deposit active), left unknown
led.credit_orphan(
    "coin", 2000, currency="VND", orphan_id=None, event_counter=8, at_ms=1_700_000_400_000
)
led.save_event_counter("coin", 9, 1_700_000_400_100)
# coin: a collection
led.collect("coin", 1_700_000_500_000, note="tech: seal 42")
led.record_lost(
    "coin",
    transaction_id=None,
    count=None,
    reason=LostReason.DEVICE_RESET,
    at_ms=1_700_000_600_000,
    event_counter=0,
)
# coin2: an active deposit left open (what a crash leaves), coins after the collection
d = led.begin("coin2", currency="VND", amount_due=5000, timeout_ms=120_000, at_ms=1_700_000_700_000)
led.credit(d.id, 1000, event_counter=None, at_ms=1_700_000_701_000)
led.record_lost(
    "coin2",
    transaction_id=d.id,
    count=None,
    reason=LostReason.UNKNOWN_PULSE_TRAIN,
    at_ms=1_700_000_702_000,
)
reads = {
    "transactions": [asdict(t) for t in led.transactions(limit=1000)],
    "open_coin": [asdict(t) for t in led.open_transactions("coin")],
    "open_coin2": [asdict(t) for t in led.open_transactions("coin2")],
    "cash_box": [asdict(led.cash_box(x)) for x in ("coin", "coin2", "nobody")],
    "collections": [asdict(x) for x in led.collections()],
    "lost_events": [asdict(x) for x in led.lost_events()],
    "export": [asdict(x) for x in led.export()],
    "counters": {x: led.last_event_counter(x) for x in ("coin", "coin2")},
    "counts": {s.value: led.count("coin", s) for s in TransactionState},
}
led._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
led.close()
(out / "ledger-5a393cf.json").write_text(json.dumps(reads, indent=1, sort_keys=True) + "\n")
