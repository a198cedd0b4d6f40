"""The ``documentSlot`` class's sim actions, declared once.

Its behavioural simulator and its wire simulators apply these same values to
their methods, so the vocabulary (names, parameters, descriptions) cannot drift
between them.
"""

from __future__ import annotations

from devices.base import NoParams, sim_action

INSERT_DOCUMENT = sim_action("insertDocument", NoParams, "push a document into the open slot")
TAKE_DOCUMENT = sim_action("takeDocument", NoParams, "pull the document out of the slot's mouth")
