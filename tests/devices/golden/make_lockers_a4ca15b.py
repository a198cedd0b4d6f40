"""How ``lockers-codes-a4ca15b.sqlite3`` and ``lockers-audit-a4ca15b.sqlite3`` were made.

Both are written by the lockers' stores of commit a4ca15b, the last before they
moved onto the worker-thread SQLite store (tests/devices/test_lockers_format.py
reopens them).  The codes use a fixed clock: compartment 1 holds ``HS-0001``,
compartment 2 ``HS-0002`` with two wrong codes counted, compartment 3 is locked
out until 1 700 000 900 000 ms, compartment 4 was collected.  The audit holds
three rows.  Run in a checkout of that commit:

    git worktree add /tmp/kioskd-a4ca15b a4ca15b
    PYTHONPATH=/tmp/kioskd-a4ca15b python tests/devices/golden/make_lockers_a4ca15b.py \\
        tests/devices/golden
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from devices.lockers.audit import AuditLog
from devices.lockers.codes import CodeStore

NOW_MS = 1_700_000_000_000


async def main(out: Path) -> None:
    """Write both files into ``out``."""
    codes_file = out / "lockers-codes-a4ca15b.sqlite3"
    audit_file = out / "lockers-audit-a4ca15b.sqlite3"
    codes_file.unlink(missing_ok=True)
    audit_file.unlink(missing_ok=True)
    codes = CodeStore(codes_file, max_wrong=3, lockout_s=900, clock=lambda: NOW_MS)
    await codes.assign(1, "HS-0001")
    await codes.assign(2, "hs-0002 ")
    for _ in range(2):
        await codes.check(2, "WRONG")
    await codes.assign(3, "HS-0003")
    for _ in range(3):
        await codes.check(3, "WRONG")
    await codes.assign(4, "HS-0004")
    await codes.check(4, "HS-0004")
    await codes.collected(4)
    audit = AuditLog(audit_file)
    await audit.append(1, "assign", "staff1", "r1", "opened")
    await audit.append(1, "open", "ui1", "r2", "opened")
    await audit.append(2, "open", "ui1", "r3", "timeOut")


asyncio.run(main(Path(sys.argv[1])))
