"""The ``documentSlot`` device class: a motorised slot behind a shutter.

The mechanism has a shutter at the mouth, feed rollers on one motor, and two
sensors: ``entry`` (a document in the mouth/throat) and ``inside`` (a document
fully in the escrow position behind the shutter).  Past the escrow position
the rollers drop a document into the storage bin, where staff collect it.

Drivers drive the motor and the shutter and report the two sensors through
:meth:`DocumentSlot.sensed`; the class holds the sequences shared by every
driver (``accept``, ``eject``, ``retract``, ``close``), the ``media`` detail,
the events and jam detection (a feed that does not reach the next sensor within
``feed_timeout_ms``).

``media`` is ``entering`` whenever the document is in the mouth: while it is
inserted and fed in, or handed back by ``eject`` and waiting to be taken.
A document being fed may cover both sensors for a while; it counts as in
escrow only once it has left the mouth (``entry`` clear), so feeds inwards run
until ``entry`` clears.
Every sequence ends, however it ends (done, error, cancel, deadline), with the
motor stopped and the shutter closed.
"""

from __future__ import annotations

import abc
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Annotated, ClassVar

from msgspec import Meta

from devices.base import (
    CommandContext,
    Device,
    DeviceEnv,
    DeviceHost,
    DeviceState,
    Message,
    NoParams,
    NoResult,
    OpenClosed,
    SettingsT_co,
    command,
)
from devices.errors import HardwareError, SequenceError


class SlotMedia(StrEnum):
    """Where the document is."""

    ABSENT = "absent"
    ENTERING = "entering"
    INSIDE = "inside"
    JAMMED = "jammed"


class MotorDirection(StrEnum):
    """Feed motor: ``forward`` moves inwards (mouth -> escrow -> bin)."""

    FORWARD = "forward"
    REVERSE = "reverse"
    STOPPED = "stopped"


class DocumentSlotDetail(Message):
    """State detail of a document slot."""

    media: SlotMedia = SlotMedia.ABSENT
    shutter: OpenClosed = OpenClosed.CLOSED


class DocumentInserted(Message):
    """``evt/documentInserted``: a document was pushed into the open slot's mouth."""


class DocumentTaken(Message):
    """``evt/documentTaken``: a document in the mouth was pulled out by a person."""


class Jam(Message):
    """``evt/jam``: the document is stuck; the slot needs a technician (state hardwareError)."""


class EjectResult(Message):
    """Result of ``eject``."""

    taken: Annotated[
        bool,
        Meta(description="false: not taken in time, so pulled back inside (can be ejected again)"),
    ]


@dataclass(frozen=True, slots=True)
class SlotTiming:
    """Time limits of the slot's sequences, seconds.

    Attributes:
        feed_s: longest a feed may take to reach the next sensor before it is a jam.
        take_s: how long ``eject`` waits for the document to be taken.

    """

    feed_s: float
    take_s: float


class DocumentSlot(Device[SettingsT_co, DocumentSlotDetail]):
    """Base of document slot drivers."""

    device_class: ClassVar[str] = "documentSlot"
    events: ClassVar[dict[str, type[Message]]] = {
        "documentInserted": DocumentInserted,
        "documentTaken": DocumentTaken,
        "jam": Jam,
    }
    detail_type = DocumentSlotDetail

    def __init__(
        self, device_id: str, host: DeviceHost, env: DeviceEnv, settings: SettingsT_co
    ) -> None:
        super().__init__(device_id, host, env, settings)
        self._entry = False
        self._inside = False
        self._jammed = False

    # --- what drivers implement ------------------------------------------------------

    @property
    @abc.abstractmethod
    def timing(self) -> SlotTiming:
        """Time limits from the driver's settings."""

    @abc.abstractmethod
    async def _drive_motor(self, direction: MotorDirection) -> None:
        """Run the feed motor in ``direction`` (or stop it); returns at once."""

    @abc.abstractmethod
    async def _move_shutter(self, open_: bool) -> None:
        """Open or close the shutter; returns when it has moved."""

    # --- what drivers call -----------------------------------------------------------

    @property
    def media(self) -> SlotMedia:
        """Where the document is."""
        if self._jammed:
            return SlotMedia.JAMMED
        if self._inside:
            return SlotMedia.INSIDE
        return SlotMedia.ENTERING if self._entry else SlotMedia.ABSENT

    def sensed(self, *, entry: bool, inside: bool) -> None:
        """Report the sensors: a document in the mouth (``entry``) and in escrow (``inside``).

        A document appearing in the empty mouth is ``documentInserted``; one
        leaving the mouth outwards is ``documentTaken``.
        """
        before = self.media
        self._entry, self._inside = entry, inside
        after = self.media
        if after is not before:
            self.update_detail(media=after)
            if before is SlotMedia.ABSENT and after is SlotMedia.ENTERING:
                self.emit("documentInserted", DocumentInserted())
            elif before is SlotMedia.ENTERING and after is SlotMedia.ABSENT:
                self.emit("documentTaken", DocumentTaken())
        self.wake()

    def jammed(self) -> None:
        """Report a jam: media ``jammed``, state hardwareError, ``evt/jam`` (once per jam)."""
        if self._jammed:
            return
        self._jammed = True
        self.set_condition(DeviceState.HARDWARE_ERROR, media=SlotMedia.JAMMED)
        self.emit("jam", Jam())

    def jam_cleared(self, *, entry: bool, inside: bool) -> None:
        """Report a jam cleared by a technician, with the sensors as they are now.

        The driver sets the condition afterwards (online unless other faults remain).
        """
        self._jammed = False
        self._entry, self._inside = entry, inside
        self.update_detail(media=self.media)

    def check_waiting(self) -> None:
        """A jam also ends a wait.

        Raises:
            HardwareError: the document jammed or the slot failed.
            Offline: the slot went offline.

        """
        if self._jammed:
            raise HardwareError("the document is jammed in the slot")
        super().check_waiting()

    # --- building blocks ---------------------------------------------------------------

    async def _shutter(self, open_: bool) -> None:
        await self._move_shutter(open_)
        self.update_detail(shutter=OpenClosed.of(open_))

    async def _make_safe(self) -> None:
        """Motor stopped, shutter closed (the end of every sequence)."""
        await self._drive_motor(MotorDirection.STOPPED)
        await self._shutter(open_=False)

    async def _feed(
        self,
        direction: MotorDirection,
        arrived: Callable[[], bool],
        what: str,
    ) -> None:
        """Run the motor until ``arrived()``, then stop it.

        Raises:
            HardwareError: not arrived within ``timing.feed_s``: a jam (reported).

        """
        await self._drive_motor(direction)
        if not await self.wait_until(arrived, self.timing.feed_s):
            await self._drive_motor(MotorDirection.STOPPED)
            self.jammed()
            raise HardwareError(f"the document jammed while {what}")
        await self._drive_motor(MotorDirection.STOPPED)

    async def _start(self) -> None:
        if self._jammed:
            raise HardwareError("the document is jammed in the slot")

    # --- commands ----------------------------------------------------------------------

    @command("accept", NoParams, NoResult, 60_000, 600_000, long=True, side_effect=True)
    async def accept(self, _params: NoParams, _ctx: CommandContext) -> NoResult:
        """Open the shutter, wait for a document, feed it to escrow, close the shutter.

        A long command: the daemon ends the wait for a document at its deadline
        or on cancel.  A document pulled back out before it is inside does not
        end the command; it waits for the next one.

        Raises:
            SequenceError: a document is already in the slot.
            HardwareError: the document jammed, or the slot failed.
            Offline: the slot went offline.

        """
        await self._start()
        if self.media is not SlotMedia.ABSENT:
            raise SequenceError("a document is already in the slot; eject or retract it first")
        try:
            await self._shutter(open_=True)
            while True:
                await self.wait_until(lambda: self._entry or self._inside, None)
                # Fed until it leaves the mouth: inside, or pulled back out.
                await self._feed(MotorDirection.FORWARD, lambda: not self._entry, "feeding it in")
                if self._inside:
                    return NoResult()
        finally:
            await self._make_safe()

    # Not long: it ends by itself within retractAfterMs plus two feeds (<= 80 s).
    @command("eject", NoParams, EjectResult, 90_000, 120_000, side_effect=True)
    async def eject(self, _params: NoParams, _ctx: CommandContext) -> EjectResult:
        """Hand the document back: open the shutter, feed it to the mouth, wait until taken.

        If nobody takes it within ``retractAfterMs`` it is fed back to escrow
        (``taken: false``); the shutter is closed either way.

        Raises:
            SequenceError: no document in the slot.
            HardwareError: the document jammed, or the slot failed.
            Offline: the slot went offline.

        """
        await self._start()
        if self.media is SlotMedia.ABSENT:
            raise SequenceError("no document in the slot")
        try:
            await self._shutter(open_=True)
            if self._inside:
                await self._feed(MotorDirection.REVERSE, lambda: not self._inside, "ejecting it")
            if await self.wait_until(lambda: not self._entry, self.timing.take_s):
                return EjectResult(taken=True)
            await self._feed(MotorDirection.FORWARD, lambda: not self._entry, "pulling it back")
            # Taken while it was being pulled back: it is gone, not inside.
            return EjectResult(taken=not self._inside)
        finally:
            await self._make_safe()

    @command("retract", NoParams, NoResult, 25_000, 60_000, side_effect=True)
    async def retract(self, _params: NoParams, _ctx: CommandContext) -> NoResult:
        """Keep the document: feed it from the mouth or escrow into the storage bin.

        Raises:
            SequenceError: no document in the slot.
            HardwareError: the document jammed, or the slot failed.
            Offline: the slot went offline.

        """
        await self._start()
        if self.media is SlotMedia.ABSENT:
            raise SequenceError("no document in the slot")
        try:
            if self._entry:
                await self._feed(MotorDirection.FORWARD, lambda: not self._entry, "retracting it")
            await self._feed(
                MotorDirection.FORWARD,
                lambda: not self._inside and not self._entry,
                "storing it",
            )
            return NoResult()
        finally:
            await self._make_safe()

    @command("close", NoParams, NoResult, 5_000, 30_000)
    async def close(self, _params: NoParams, _ctx: CommandContext) -> NoResult:
        """Stop the motor and close the shutter.

        Raises:
            Offline, HardwareError: the slot is unreachable or failed.

        """
        await self._make_safe()
        return NoResult()

    async def safe_state(self) -> None:
        """Motor stopped, shutter closed."""
        await self._make_safe()
