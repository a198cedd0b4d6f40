"""The lockers' stores keep their on-disk format: files written before the move open unchanged.

``golden/lockers-codes-a4ca15b.sqlite3`` and ``golden/lockers-audit-a4ca15b.sqlite3``
were written by the stores of commit a4ca15b, which opened a connection per call
on asyncio's default executor (``golden/make_lockers_a4ca15b.py`` says what is
in them).  Today's stores, on their worker threads, read and extend them.
"""

from __future__ import annotations

import shutil
import threading
from pathlib import Path

from devices.lockers.audit import AuditLog, read_audit
from devices.lockers.codes import CodeStore, Verdict

GOLDEN = Path(__file__).parent / "golden"
NOW_MS = 1_700_000_000_000


async def test_codes_written_before_reopen(tmp_path: Path) -> None:
    path = tmp_path / "codes.sqlite3"
    shutil.copyfile(GOLDEN / "lockers-codes-a4ca15b.sqlite3", path)
    store = CodeStore(path, max_wrong=3, lockout_s=900, clock=lambda: NOW_MS)
    try:
        # Compartment 2's two counted wrong codes survive: one more locks it out.
        assert (await store.check(2, "WRONG")).verdict is Verdict.WRONG
        assert (await store.check(2, "HS-0002")).verdict is Verdict.LOCKED_OUT
        # Compartment 1's code is checked normalised, as it was hashed.
        right = await store.check(1, "  hs-0001 ")
        assert (right.verdict, right.tries_left) == (Verdict.RIGHT, 3)
        # Compartment 3 is still locked out, for what is left of its 900 s.
        locked = await store.check(3, "HS-0003")
        assert (locked.verdict, locked.locked_for_s) == (Verdict.LOCKED_OUT, 900.0)
        # Compartment 4 was collected: its code no longer opens it.
        assert (await store.check(4, "HS-0004")).verdict is Verdict.WRONG
        await store.assign(4, "HS-0040")
        assert (await store.check(4, "HS-0040")).verdict is Verdict.RIGHT
        assert any(t.name.startswith("lockers-codes") for t in threading.enumerate())
    finally:
        await store.close()


async def test_audit_written_before_reads_and_appends(tmp_path: Path) -> None:
    path = tmp_path / "audit.sqlite3"
    shutil.copyfile(GOLDEN / "lockers-audit-a4ca15b.sqlite3", path)
    before = [
        (r.id, r.compartment, r.action, r.client_id, r.request_id, r.outcome)
        for r in read_audit(path)
    ]
    assert before == [
        (1, 1, "assign", "staff1", "r1", "opened"),
        (2, 1, "open", "ui1", "r2", "opened"),
        (3, 2, "open", "ui1", "r3", "timeOut"),
    ]
    log = AuditLog(path)
    try:
        await log.append(5, "open", "ui2", "r4", "canceled")
    finally:
        await log.close()
    rows = list(read_audit(path))
    assert [(r.id, r.compartment, r.outcome) for r in rows[3:]] == [(4, 5, "canceled")]
    assert rows[3].ts_ms > rows[2].ts_ms
