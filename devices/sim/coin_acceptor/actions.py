"""The ``coinAcceptor`` class's sim actions, declared once.

Its behavioural simulator and its wire simulators apply these same values to
their methods, so the vocabulary (names, parameters, descriptions) cannot drift
between them.
"""

from __future__ import annotations

from typing import Annotated

from msgspec import Meta

from devices.base import Params, sim_action


class InsertCoinParams(Params):
    """``sim/{d}/insertCoin``: a coin of ``value`` whole VND; one outside the table is foreign."""

    value: Annotated[int, Meta(gt=0)]


INSERT_COIN = sim_action("insertCoin", InsertCoinParams, "drop a coin into the slot")
