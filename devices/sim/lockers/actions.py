"""The ``lockers`` class's sim actions, declared once.

Its behavioural simulator and its wire simulators apply these same values to
their methods, so the vocabulary (names, parameters, descriptions) cannot drift
between them.
"""

from __future__ import annotations

from devices.base import Params, sim_action


class CompartmentParams(Params):
    """``sim/{d}/openCompartment`` / ``closeCompartment``: which door the citizen moves."""

    compartment: int


OPEN_COMPARTMENT = sim_action(
    "openCompartment", CompartmentParams, "pull a door (only a released one opens)"
)
CLOSE_COMPARTMENT = sim_action("closeCompartment", CompartmentParams, "shut a door")
