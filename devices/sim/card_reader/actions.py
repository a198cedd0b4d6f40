"""The ``cardReader`` class's sim actions, declared once.

Its behavioural simulator and its wire simulators apply these same values to
their methods, so the vocabulary (names, parameters, descriptions) cannot drift
between them.
"""

from __future__ import annotations

from devices.base import NoParams, Params, sim_action
from devices.sim.card_reader.specimen_cards import DEFAULT_CARD


class PresentCardParams(Params):
    """``sim/{d}/presentCard``: a specimen card by name.

    ``default``, ``female``, ``expired``, ``noDg13``, ``garbledDg13`` (a DG13 the
    reader cannot decode: no ``dg13``, an ``unreadable`` issue) or ``jp2Portrait``
    (a JPEG 2000 portrait, hence ``face.displayJpeg``, and a DG13 with an
    ``unverified`` issue); see ``SPECIMEN_CARDS``.
    """

    card: str = DEFAULT_CARD


PRESENT_CARD = sim_action("presentCard", PresentCardParams, "place a specimen card on the reader")
REMOVE_CARD = sim_action("removeCard", NoParams, "take the card off the reader")
