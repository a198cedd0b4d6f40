"""The ``printer`` class's sim actions, declared once.

Its behavioural simulator and its wire simulator apply these values to their
methods, so the vocabulary (names, parameters, descriptions) cannot drift
between them.
"""

from __future__ import annotations

from typing import Annotated

import msgspec

from devices.base import Params, sim_action
from devices.printer.protocol import PaperLevel


class CoverParams(Params):
    """``sim/{d}/cover``: a person opens (``true``) or closes the paper lid."""

    open: bool


class PaperParams(Params):
    """``sim/{d}/paper``: ``full`` loads a new roll; ``low``/``out`` force the level."""

    level: PaperLevel


class EscposPaperParams(PaperParams):
    """``sim/{d}/paper``: as the behavioural printer's, plus ``remainingDots`` for ``low``.

    ``remainingDots``: dot rows (8 per mm) left on a ``low`` roll; printing past
    them runs the paper out mid-slip.
    """

    remaining_dots: Annotated[int, msgspec.Meta(ge=0)] | None = None


PAPER = sim_action("paper", PaperParams, "load a new roll (full) or force low/out")
#: The ESC/POS wire simulator's ``paper`` also takes ``remainingDots``.
ESCPOS_PAPER = sim_action("paper", EscposPaperParams, "load a new roll (full) or force low/out")
COVER = sim_action("cover", CoverParams, "open or close the paper lid")
