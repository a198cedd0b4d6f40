"""The jittered exponential backoff of every reconnect and restart loop.

A retry loop asks :meth:`Backoff.failed` for the delay after each failure and
tells :meth:`Backoff.up` when an attempt got going (a link connected, a driver
started).  The delay after the n-th consecutive failure is drawn uniformly from
``[floor_s, ceiling]``, where the ceiling starts at ``first_s`` and doubles per
failure up to ``max_s`` ("full jitter" when ``floor_s`` is 0: many clients that
lost one broker do not come back in step).

Reset rule: a failure that comes at least ``stable_s`` seconds after the last
:meth:`Backoff.up` starts again from ``first_s``; an earlier one (or one with no
``up`` since the previous failure) continues the doubling.  ``stable_s=0`` means
any attempt that got up resets the backoff.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable


class Backoff:
    """Delays for one retry loop (seconds); not thread-safe, one loop owns it.

    Args:
        first_s: the first ceiling, seconds (> 0).
        max_s: the largest ceiling, seconds (>= ``first_s``).
        floor_s: the smallest delay, seconds (0 to ``first_s``).
        stable_s: how long an attempt must stay up to reset the backoff, seconds.
        rng: the source of jitter (a seeded ``random.Random`` in tests).
        clock: monotonic seconds (``time.monotonic``; the tests pass their own).

    Raises:
        ValueError: the bounds are not ``0 <= floor_s <= first_s <= max_s``, ``first_s > 0``.

    """

    def __init__(
        self,
        *,
        first_s: float,
        max_s: float,
        floor_s: float = 0.0,
        stable_s: float = 0.0,
        rng: random.Random | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not 0 <= floor_s <= first_s <= max_s or first_s <= 0 or stable_s < 0:
            msg = (
                f"backoff needs 0 <= floor_s <= first_s <= max_s, first_s > 0 and "
                f"stable_s >= 0 (got {floor_s}, {first_s}, {max_s}, {stable_s})"
            )
            raise ValueError(msg)
        self._first = first_s
        self._max = max_s
        self._floor = floor_s
        self._stable = stable_s
        self._rng = rng or random.Random()  # noqa: S311 - jitter, not crypto
        self._clock = clock
        self._ceiling = first_s
        self._up_since: float | None = None

    def up(self) -> None:
        """An attempt got going (connected, started): it resets the backoff once stable."""
        self._up_since = self._clock()

    def failed(self) -> float:
        """Record a failure and return the delay to wait before the next attempt (seconds)."""
        if self._up_since is not None and self._clock() - self._up_since >= self._stable:
            self._ceiling = self._first
        self._up_since = None
        delay = self._rng.uniform(self._floor, self._ceiling)
        self._ceiling = min(self._ceiling * 2, self._max)
        return delay
