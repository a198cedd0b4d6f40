"""The ``[devices.<id>]`` options every coin acceptor driver has (drivers add their own)."""

from __future__ import annotations

from typing import Annotated

import msgspec
from msgspec import Meta

from .messages import Amount, Currency


class CoinTable(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """``[devices.<id>]`` options every coin acceptor driver has.

    ``coins``: values (whole ``currency`` units) of the coins to accept (Vietnam has
    no coins in circulation; kiosks built for tokens or coins are configured with such
    a table).  ``currency``: ISO 4217 code.  ``cash_box_capacity``: coins the cash box
    holds before it is ``full``.
    """

    coins: tuple[Amount, ...] = (1000, 2000, 5000)
    currency: Currency = "VND"
    cash_box_capacity: Annotated[int, Meta(gt=0, le=100_000)] = 500

    def __post_init__(self) -> None:
        """Reject an empty or repetitive coin list (msgspec reports it as the key's error)."""
        if not self.coins or len(set(self.coins)) != len(self.coins):
            raise ValueError("coins must list distinct values")
