"""The ``[devices.<id>]`` options every banknote validator driver has (drivers add their own)."""

from __future__ import annotations

from typing import Annotated

import msgspec
from msgspec import Meta

from devices.coin_acceptor.messages import Amount, Currency

#: Vietnamese notes in circulation, whole VND: paper 1 000-5 000, polymer 10 000-500 000.
VND_NOTES = (1_000, 2_000, 5_000, 10_000, 20_000, 50_000, 100_000, 200_000, 500_000)


class NoteTable(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """``[devices.<id>]`` options every banknote validator driver has.

    ``notes``: values (whole ``currency`` units) this kiosk takes; a note the
    validator knows but not listed here is returned from escrow (``notAccepted``).
    ``currency``: ISO 4217 code.  ``stacker_capacity``: notes the stacker holds
    before it is ``full``.  ``max_overpayment``: most a note may pay above a
    deposit's ``amountDue`` (whole units; the kiosk gives no change), else it is
    returned from escrow (``overpayment``).
    """

    notes: tuple[Amount, ...] = VND_NOTES
    currency: Currency = "VND"
    stacker_capacity: Annotated[int, Meta(gt=0, le=10_000)] = 1_000
    max_overpayment: Annotated[int, Meta(ge=0)] = 50_000

    def __post_init__(self) -> None:
        """Reject an empty or repetitive note list (msgspec reports it as the key's error)."""
        if not self.notes or len(set(self.notes)) != len(self.notes):
            raise ValueError("notes must list distinct values")
