"""The ``sensors`` class's sim actions, declared once.

Its behavioural simulator and its wire simulators apply these same values to
their methods, so the vocabulary (names, parameters, descriptions) cannot drift
between them.
"""

from __future__ import annotations

from devices.base import NoParams, Params, sim_action


class DoorParams(Params):
    """``sim/{d}/door``: the technician opens or closes the cabinet door."""

    open: bool


DOOR = sim_action("door", DoorParams, "open or close the cabinet door")
TAMPER = sim_action("tamper", NoParams, "trip the tamper switch")
