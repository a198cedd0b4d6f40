"""Latency samples and their summary."""

from __future__ import annotations

import math
from dataclasses import dataclass


def percentile(ordered: list[float], q: float) -> float:
    """The q-th percentile (0-100) of sorted samples, linearly interpolated."""
    if not ordered:
        raise ValueError("no samples")
    pos = (len(ordered) - 1) * q / 100
    lo, hi = math.floor(pos), math.ceil(pos)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


@dataclass(frozen=True, slots=True)
class Stats:
    """A latency distribution in milliseconds."""

    n: int
    p50: float
    p99: float
    max: float
    mean: float

    @classmethod
    def of(cls, seconds: list[float]) -> Stats:
        ms = sorted(s * 1000 for s in seconds)
        return cls(
            n=len(ms),
            p50=round(percentile(ms, 50), 3),
            p99=round(percentile(ms, 99), 3),
            max=round(ms[-1], 3),
            mean=round(sum(ms) / len(ms), 3),
        )
