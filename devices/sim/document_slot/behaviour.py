"""Behavioural document slot simulator: the mechanism's physics, driven by the class.

A person acts through ``sim/{d}/insertDocument`` (only into an open shutter)
and ``sim/{d}/takeDocument`` (a document in the mouth).  The rollers move a
document one stage (mouth -> escrow -> bin, or escrow -> mouth) every
``feed_ms`` while the motor runs, and report the entry and inside sensors to
the class.  ``out/motor`` and ``out/shutter`` show what the mechanism does.
A ``jam`` fault freezes the document where it is; clearing it models a
technician taking the stuck document out.
"""

from __future__ import annotations

import asyncio
from enum import Enum
from typing import Annotated, ClassVar

import msgspec
from msgspec import Meta

from devices.base import DeviceEnv, DeviceHost, Message, NoParams, NoResult
from devices.document_slot.protocol import (
    DocumentSlot,
    DocumentSlotDetail,
    MotorDirection,
    SlotMedia,
    SlotTiming,
)
from devices.errors import HardwareError, SequenceError
from devices.sim.document_slot.actions import INSERT_DOCUMENT, TAKE_DOCUMENT
from devices.sim.support.faults import FaultKind, Simulated


class MotorOutput(Message):
    """``sim/{d}/out/motor``: the feed motor changed."""

    direction: MotorDirection


class ShutterOutput(Message):
    """``sim/{d}/out/shutter``: the shutter moved."""

    open: bool


class _Where(Enum):
    MOUTH = "mouth"
    INSIDE = "inside"


#: One roller stage per direction; a document fed past escrow drops into the bin (None).
_NEXT: dict[MotorDirection, dict[_Where | None, _Where | None]] = {
    MotorDirection.FORWARD: {_Where.MOUTH: _Where.INSIDE, _Where.INSIDE: None},
    MotorDirection.REVERSE: {_Where.INSIDE: _Where.MOUTH},
}


class SimDocumentSlotSettings(msgspec.Struct, forbid_unknown_fields=True):
    """Settings of the simulated document slot.

    Attributes:
        feed_ms: time the rollers take to move a document one stage, ms.
        feed_timeout_ms: a feed not done within this is a jam, ms.
        retract_after_ms: ``eject`` pulls the document back if not taken within this, ms.

    """

    feed_ms: Annotated[int, Meta(ge=1, le=10_000)] = 300
    feed_timeout_ms: Annotated[int, Meta(ge=10, le=10_000)] = 2_000
    retract_after_ms: Annotated[int, Meta(ge=10, le=60_000)] = 30_000


class SimDocumentSlot(
    Simulated[SimDocumentSlotSettings, DocumentSlotDetail], DocumentSlot[SimDocumentSlotSettings]
):
    """A document slot whose documents come from ``sim/{d}/insertDocument``."""

    Settings = SimDocumentSlotSettings
    fault_checked_commands: ClassVar[bool] = True
    sim_outputs: ClassVar[dict[str, type[Message]]] = {
        "motor": MotorOutput,
        "shutter": ShutterOutput,
    }

    def __init__(
        self,
        device_id: str,
        host: DeviceHost,
        env: DeviceEnv,
        settings: SimDocumentSlotSettings,
    ) -> None:
        super().__init__(device_id, host, env, settings)
        self._where: _Where | None = None
        self._shutter_open = False
        self._direction = MotorDirection.STOPPED
        self._rollers: asyncio.Task[None] | None = None

    @property
    def timing(self) -> SlotTiming:
        """From ``feed_timeout_ms`` and ``retract_after_ms``."""
        return SlotTiming(
            feed_s=self.settings.feed_timeout_ms / 1000,
            take_s=self.settings.retract_after_ms / 1000,
        )

    def connected(self) -> None:
        """Show a jam fault as a jam; a cleared jam leaves the slot empty."""
        if self.fault is FaultKind.JAM:
            self.jammed()
            return
        if self.media is SlotMedia.JAMMED:
            self._where = None
            self.jam_cleared(entry=False, inside=False)
        super().connected()

    @INSERT_DOCUMENT
    async def sim_insert_document(self, _params: NoParams) -> NoResult:
        """Push a document into the mouth.

        Raises:
            SequenceError: the shutter is closed, or a document is already there.
            HardwareError, Offline: an injected fault.

        """
        await self.check_faults()
        if not self._shutter_open:
            raise SequenceError("the shutter is closed: nothing can be inserted")
        if self._where is not None:
            raise SequenceError("a document is already in the slot")
        self._move_to(_Where.MOUTH)
        return NoResult()

    @TAKE_DOCUMENT
    async def sim_take_document(self, _params: NoParams) -> NoResult:
        """Pull the document out of the mouth.

        Raises:
            SequenceError: no document in the mouth.
            HardwareError: the document is jammed.

        """
        if self.media is SlotMedia.JAMMED:
            raise HardwareError("the document is jammed; it cannot be pulled out")
        if self._where is not _Where.MOUTH:
            raise SequenceError("no document in the slot's mouth")
        self._move_to(None)
        return NoResult()

    def _move_to(self, where: _Where | None) -> None:
        self._where = where
        self.sensed(entry=where is _Where.MOUTH, inside=where is _Where.INSIDE)

    async def _roll(self, direction: MotorDirection) -> None:
        """Move the document one stage per ``feed_ms`` until it can go no further."""
        while True:
            await asyncio.sleep(self.settings.feed_ms / 1000)
            if self.fault is FaultKind.JAM or self._where not in _NEXT[direction]:
                return
            self._move_to(_NEXT[direction][self._where])

    async def _drive_motor(self, direction: MotorDirection) -> None:
        # Cancelling is enough: a cancelled roller task never moves the document again.
        if self._rollers is not None:
            self._rollers.cancel()
            self._rollers = None
        if direction is not self._direction:
            self._direction = direction
            self.host.sim_output(self.id, "motor", MotorOutput(direction=direction))
        if direction is not MotorDirection.STOPPED:
            self._rollers = asyncio.create_task(self._roll(direction), name=f"{self.id}-rollers")

    async def _move_shutter(self, open_: bool) -> None:
        if open_ is not self._shutter_open:
            self._shutter_open = open_
            self.host.sim_output(self.id, "shutter", ShutterOutput(open=open_))
