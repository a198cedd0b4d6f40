"""Staged releases: a stable sample of boards for "a percentage" (docs/updates.md).

A board is in the p % sample when ``sha256(board id) mod 100 < p``: the sample
depends only on the id, so growing 10 % to 50 % keeps every board of the 10 %.
"""

from __future__ import annotations

import hashlib


def bucket(board: str) -> int:
    """The board's bucket, 0-99."""
    return int.from_bytes(hashlib.sha256(board.encode()).digest()[:8], "big") % 100


def in_sample(board: str, percent: int) -> bool:
    """Whether ``board`` is in the ``percent`` % sample (0: none, 100: all)."""
    return bucket(board) < percent
