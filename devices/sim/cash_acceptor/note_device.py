"""What both emulated note validators (``ssp_device``, ``cctalk_device``) share as processes.

A note fed in resolves with its :class:`Fate`.  Each device process takes the
same note options (:func:`note_arguments`) and answers the class's control
requests ``insertNote`` and ``stacker`` alike (:func:`note_controls`); its
``fault`` and ``stats`` are its own.
"""

from __future__ import annotations

import argparse
import asyncio
from enum import StrEnum
from typing import Protocol

from devices.cash_acceptor.messages import StackerState
from devices.cash_acceptor.settings import VND_NOTES
from devices.sim.support.device_process import Control, Request, process_arguments


class Fate(StrEnum):
    """What became of a note fed in."""

    STACKED = "stacked"
    RETURNED = "returned"


class NoteDevice(Protocol):
    """An emulated note validator, as its control requests see it."""

    #: How long the ``slow`` fault makes a note's validation take, in s.
    validation_s: float

    def insert_note(self, value: int, *, pull_back: bool = False) -> asyncio.Future[Fate]:
        """Feed a note of ``value``; the future resolves once it is stacked or given back."""
        ...

    def set_stacker(self, state: StackerState) -> None:
        """Remove, fill or put back the stacker."""
        ...


def note_controls(device: NoteDevice) -> dict[str, Control]:
    """The ``insertNote`` and ``stacker`` control requests of ``device``'s process.

    ``{"action": "insertNote", "value": 20000, "pullBack": false}`` -> ``{"fate":
    "stacked"}`` once the note is stacked or given back (under ``slow``, its
    validation delay first); ``{"action": "stacker", "state": "removed"}`` -> ``{}``.
    """

    async def insert_note(request: Request) -> Request:
        if device.validation_s:
            await asyncio.sleep(device.validation_s)
        fate = device.insert_note(int(request["value"]), pull_back=bool(request.get("pullBack")))
        return {"fate": (await fate).value}

    async def stacker(request: Request) -> Request:
        device.set_stacker(StackerState(request["state"]))
        return {}

    return {"insertNote": insert_note, "stacker": stacker}


def note_arguments(description: str, *, escrow_timeout_s: float) -> argparse.ArgumentParser:
    """The command line of a note device process: :func:`process_arguments` and the notes.

    ``--notes`` (values, comma separated, parsed to a list of ints; Vietnam's by
    default) and ``--escrow-timeout`` (s, ``escrow_timeout_s`` by default); the
    device adds its own.
    """
    parser = process_arguments(description)
    parser.add_argument(
        "--notes", type=_values, default=list(VND_NOTES), help="note values, comma separated"
    )
    parser.add_argument("--escrow-timeout", type=float, default=escrow_timeout_s)
    return parser


def _values(text: str) -> list[int]:
    return [int(v) for v in text.split(",")]
