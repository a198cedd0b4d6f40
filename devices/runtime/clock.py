"""The wall clock of records and messages (deadlines use the loop's monotonic clock)."""

from __future__ import annotations

import time


def now_ms() -> int:
    """Wall-clock time as Unix epoch milliseconds."""
    return time.time_ns() // 1_000_000
