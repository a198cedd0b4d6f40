"""The ``cashAcceptor`` class's sim actions, declared once.

Its behavioural simulator and its wire simulators apply these same values to
their methods, so the vocabulary (names, parameters, descriptions) cannot drift
between them.
"""

from __future__ import annotations

from typing import Annotated

from msgspec import Meta

from devices.base import Params, sim_action
from devices.cash_acceptor.messages import StackerState


class InsertNoteParams(Params):
    """``sim/{d}/insertNote``: a note of ``value`` whole VND (one not of VND is unknown).

    ``pullBack``: the citizen pulls it back out of escrow on a string (fraud).
    """

    value: Annotated[int, Meta(gt=0)]
    pull_back: bool = False


class StackerParams(Params):
    """``sim/{d}/stacker``: the stacker is ``ok`` (put back, emptied), ``full`` or ``removed``."""

    state: StackerState


INSERT_NOTE = sim_action("insertNote", InsertNoteParams, "feed a note")
STACKER = sim_action("stacker", StackerParams, "remove, fill or put back the stacker")
