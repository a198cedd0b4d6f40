"""The ``scanner`` class's sim actions, declared once.

Its behavioural simulator and its wire simulators apply these same values to
their methods, so the vocabulary (names, parameters, descriptions) cannot drift
between them.
"""

from __future__ import annotations

from devices.base import Params, sim_action


class ScanParams(Params):
    """``sim/{d}/scan``: the code a person holds under the scanner."""

    text: str
    symbology: str = "qr"


SCAN = sim_action("scan", ScanParams, "present a code to the scanner")
