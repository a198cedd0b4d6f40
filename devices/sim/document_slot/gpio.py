"""Wire simulator of the ``gpio`` document slot: a sheet of paper moving past two sensors.

The mechanism, along the paper path (mm from the shutter, inwards):
the ``entry`` sensor at 15, the first rollers at 30, the ``inside`` sensor at
180; a sheet is 210 long, so while it is fed it covers both sensors for a
while.  The rollers move a sheet they grip (its head past 30) at 400 mm/s,
scaled by the H-bridge enable duty cycle when one is wired; a sheet fed past
the inside sensor (2 mm past it) drops into the storage bin.  Sensor lines bounce for about a
millisecond at every change, as real ones do.

A hand acts on the sheet: it pushes one in through the open shutter (and lets
go, or holds it), and pulls out one that sticks out of the mouth, even while
the rollers run (a person pulls harder than rollers grip).  A held sheet does
not move, so the motor stalls and the driver sees a jam.  The ``jam`` fault
crumples the sheet in the slot (or one in an empty slot) across both sensors
and sticks it there, so the driver sees the jam at rest within its ``jam_ms``,
not only at the next motor action; ``clear`` is a technician taking the stuck
sheet out.

The sim actions are those of the behavioural simulator: ``insertDocument``
(push in, let go) and ``takeDocument`` (pull out); ``out/motor`` and
``out/shutter`` show what the driver does to the mechanism.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
from enum import StrEnum
from typing import ClassVar

import msgspec

from devices.base import DeviceEnv, DeviceHost, Message, NoParams, NoResult
from devices.document_slot.gpio import GpioDocumentSlotSettings
from devices.document_slot.protocol import MotorDirection
from devices.errors import HardwareError, SequenceError, Unsupported
from devices.sim.document_slot.actions import INSERT_DOCUMENT, TAKE_DOCUMENT
from devices.sim.document_slot.behaviour import MotorOutput, ShutterOutput
from devices.sim.support.faults import FAULT_ACTION, FaultKind, FaultParams
from devices.sim.support.gpio_pins import GpioWireSimulator, SimPin

#: The paper path, mm from the shutter.
ENTRY_AT = 15.0
ROLLERS_AT = 30.0
INSIDE_AT = 180.0
SHEET = 210.0
#: Speeds, mm/s.
ROLLER_SPEED = 400.0
HAND_SPEED = 500.0
#: Physics step while something moves, s.
TICK_S = 0.005
#: The longest move between two looks at the sensors, mm.
STEP_MM = 1.0


class Hand(StrEnum):
    """What the simulated person's hand does."""

    AWAY = "away"
    PUSHING = "pushing"
    HOLDING = "holding"
    PULLING = "pulling"


class GpioDocumentSlotSimulator(GpioWireSimulator):
    """A simulated paper path behind the pins of a ``gpio`` document slot."""

    device_class: ClassVar[str] = "documentSlot"
    sim_outputs: ClassVar[dict[str, type[Message]]] = {
        "motor": MotorOutput,
        "shutter": ShutterOutput,
    }

    def __init__(self, device_id: str, host: DeviceHost, env: DeviceEnv) -> None:
        super().__init__(device_id, host, env)
        #: Head of the sheet, mm from the shutter (None: no sheet in the slot).
        self.head: float | None = None
        self.hand = Hand.AWAY
        self.stuck = False
        #: Sheets dropped into the storage bin.
        self.binned = 0
        #: Writes that left both motor directions active (must stay 0).
        self.shoot_through = 0
        self._hold = False
        #: Where the hand grabs the sheet the rollers feed in (see :meth:`pull`), mm.
        self._grab_at: float | None = None
        self._direction = MotorDirection.STOPPED
        self._shutter_open = False
        self._moved = asyncio.Event()
        self._settled = asyncio.Event()
        self._physics: asyncio.Task[None] | None = None
        self._levels: dict[str, bool] = {}

    def configure(self, settings: msgspec.Struct) -> None:
        """Keep the pin map and sensor polarities."""
        assert isinstance(settings, GpioDocumentSlotSettings)
        super().configure(settings)
        self.slot = settings

    async def start(self) -> None:
        """Create the pins (sensors uncovered, outputs watched) and start the physics."""
        await super().start()
        s = self.slot
        self.entry = self.input_pin(s.entry.pin, not s.entry.active_high)
        self.inside = self.input_pin(s.inside.pin, not s.inside.active_high)
        self._levels = {"entry": not s.entry.active_high, "inside": not s.inside.active_high}
        self.forward = self.output_pin(s.motor.forward.pin, self._outputs_changed, self._check)
        self.reverse = self.output_pin(s.motor.reverse.pin, self._outputs_changed, self._check)
        self.enable = (
            self.output_pin(s.motor.enable.pin, self._outputs_changed) if s.motor.enable else None
        )
        self.shutter = self.output_pin(s.shutter.pin, self._outputs_changed)
        self.led = self.output_pin(s.guide_led.pin, lambda: None) if s.guide_led else None
        self._physics = asyncio.create_task(self._run_physics(), name=f"{self.device_id}-paper")

    async def aclose(self) -> None:
        """Stop the physics and release the factory."""
        if self._physics is not None:
            self._physics.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._physics
        self._physics = None
        await super().aclose()

    # --- what the pins show ----------------------------------------------------------

    @staticmethod
    def _on(pin: SimPin, active_high: bool) -> bool:
        return (pin.output > 0) == active_high

    def motor_direction(self) -> MotorDirection:
        """The direction the motor's lines command now."""
        m = self.slot.motor
        forward = self._on(self.forward, m.forward.active_high)
        reverse = self._on(self.reverse, m.reverse.active_high)
        if forward and not reverse:
            return MotorDirection.FORWARD
        if reverse and not forward:
            return MotorDirection.REVERSE
        return MotorDirection.STOPPED

    def motor_speed(self) -> float:
        """Roller speed, mm/s (0 unless exactly one direction is on and the enable line is)."""
        if self.motor_direction() is MotorDirection.STOPPED:
            return 0.0
        enable, spec = self.enable, self.slot.motor.enable
        if enable is None or spec is None:
            return ROLLER_SPEED
        duty = enable.output if spec.active_high else 1.0 - enable.output
        return ROLLER_SPEED * duty

    def shutter_open(self) -> bool:
        """Whether the shutter output holds the shutter open."""
        return self._on(self.shutter, self.slot.shutter.active_high)

    def _check(self) -> None:
        m = self.slot.motor
        if self._on(self.forward, m.forward.active_high) and self._on(
            self.reverse, m.reverse.active_high
        ):
            self.shoot_through += 1

    def _outputs_changed(self) -> None:
        direction = self.motor_direction()
        if direction is not self._direction:
            self._direction = direction
            self.host.sim_output(self.device_id, "motor", MotorOutput(direction=direction))
        shutter = self.shutter_open()
        if shutter is not self._shutter_open:
            self._shutter_open = shutter
            self.host.sim_output(self.device_id, "shutter", ShutterOutput(open=shutter))
        self._moved.set()

    # --- the hand --------------------------------------------------------------------

    async def insert(self, *, hold: bool = False) -> None:
        """Push a sheet in to the rollers; ``hold`` keeps holding it there.

        Raises:
            SequenceError: the shutter is closed, or a sheet is already there.

        """
        if not self.shutter_open():
            raise SequenceError("the shutter is closed: nothing can be inserted")
        if self.head is not None:
            raise SequenceError("a document is already in the slot")
        self.head, self._hold, self.hand = 0.0, hold, Hand.PUSHING
        await self._until_hand_is(Hand.HOLDING if hold else Hand.AWAY)

    def release(self) -> None:
        """Let go of a held sheet (the rollers may take it)."""
        if self.hand is Hand.HOLDING:
            self.hand = Hand.AWAY
            self._moved.set()

    async def pull(self, *, at_mm: float | None = None) -> None:
        """Pull the sheet out of the mouth, even against running rollers.

        ``at_mm``: grab it once the rollers have fed its head there (a hand that
        follows the sheet; a test that polled for the position could come late
        on a busy machine, with the sheet already gone inside).

        Raises:
            SequenceError: no sheet sticks out of the mouth (or will at ``at_mm``).
            HardwareError: the sheet is stuck.

        """
        if self.head is not None and self.stuck:
            raise HardwareError("the document is jammed; it cannot be pulled out")
        if self.head is None or max(self.head, at_mm or 0.0) - SHEET >= 0:
            raise SequenceError("no document in the slot's mouth")
        if at_mm is not None and self.head < at_mm:
            self._grab_at = at_mm  # the physics grabs it there
            while self._grab_at is not None and self.head is not None:
                self._settled.clear()
                await self._settled.wait()
            if self._grab_at is not None:
                self._grab_at = None
                raise SequenceError("the document left the slot before the hand grabbed it")
        else:
            self.hand = Hand.PULLING
        await self._until_hand_is(Hand.AWAY)

    async def _until_hand_is(self, hand: Hand) -> None:
        self._moved.set()
        while self.hand is not hand:
            self._settled.clear()
            await self._settled.wait()

    @INSERT_DOCUMENT
    async def sim_insert_document(self, _params: NoParams) -> NoResult:
        """``insertDocument``: push a sheet in and let go.

        Raises:
            SequenceError: the shutter is closed, or a sheet is already there.

        """
        await self.insert()
        return NoResult()

    @TAKE_DOCUMENT
    async def sim_take_document(self, _params: NoParams) -> NoResult:
        """``takeDocument``: pull the sheet out of the mouth.

        Raises:
            SequenceError: no sheet in the mouth.
            HardwareError: the sheet is stuck.

        """
        await self.pull()
        return NoResult()

    @FAULT_ACTION
    async def sim_fault(self, params: FaultParams) -> NoResult:
        """``jam`` crumples a sheet across both sensors and sticks it; ``clear`` removes it.

        Raises:
            Unsupported: other kinds: GPIO has no link to cut or slow down.

        """
        if params.kind is FaultKind.JAM:
            self.stuck = True
            # Crumpled: it covers both sensors, whatever stretch of the path it was on.
            self.head, self.hand = INSIDE_AT + 20.0, Hand.AWAY
        elif params.kind is FaultKind.CLEAR:
            if self.stuck:
                self.head, self.hand = None, Hand.AWAY
            self.stuck = False
        else:
            raise Unsupported(f"a GPIO document slot simulates jam and clear, not {params.kind}")
        self._update_sensors()
        self._moved.set()
        return NoResult()

    # --- physics ---------------------------------------------------------------------

    def _moving(self) -> bool:
        if self.head is None or self.stuck:
            return False
        if self.hand in (Hand.PUSHING, Hand.PULLING):
            return True
        return self.hand is Hand.AWAY and self.motor_speed() > 0 and self.head >= ROLLERS_AT

    async def _run_physics(self) -> None:
        loop = self.loop
        last = loop.time()
        while True:
            if not self._moving():
                self._settled.set()
                self._moved.clear()
                await self._moved.wait()
                last = loop.time()
                continue
            await asyncio.sleep(TICK_S)
            now = loop.time()
            # In steps of at most STEP_MM, each followed by the sensors: a tick that a
            # busy loop ran late moves the sheet far, and its edges must still come in
            # the order the sheet passes the sensors.
            steps = max(1, math.ceil(HAND_SPEED * (now - last) / STEP_MM))
            for _ in range(steps):
                self._step((now - last) / steps)
                self._update_sensors()
            last = now
            self._settled.set()

    def _step(self, dt: float) -> None:
        if self.head is None or self.stuck:
            return
        if self.hand is Hand.PULLING:
            self.head -= HAND_SPEED * dt
            if self.head <= 0:
                self.head, self.hand = None, Hand.AWAY
        elif self.hand is Hand.PUSHING:
            self.head = min(self.head + HAND_SPEED * dt, ROLLERS_AT + 10.0)
            if self.head >= ROLLERS_AT + 10.0:
                self.hand = Hand.HOLDING if self._hold else Hand.AWAY
        elif self.hand is Hand.AWAY and self.head >= ROLLERS_AT:
            step = self.motor_speed() * dt
            if self.motor_direction() is MotorDirection.FORWARD:
                self.head += step
                if self._grab_at is not None and self.head >= self._grab_at:
                    self._grab_at, self.hand = None, Hand.PULLING
                if self.head - SHEET > INSIDE_AT + 2.0:
                    self.head = None
                    self.binned += 1
            else:
                # The rollers let go once the head is back at them: the sheet sticks out.
                self.head = max(self.head - step, ROLLERS_AT - 1.0)

    def covered(self, at: float) -> bool:
        """Whether the sheet covers the point ``at`` mm of the path."""
        return self.head is not None and self.head - SHEET <= at <= self.head

    def _update_sensors(self) -> None:
        self._sensor("entry", self.entry, self.covered(ENTRY_AT), self.slot.entry.active_high)
        self._sensor("inside", self.inside, self.covered(INSIDE_AT), self.slot.inside.active_high)

    def _sensor(self, name: str, pin: SimPin, covered: bool, active_high: bool) -> None:
        level = covered == active_high
        if self._levels[name] is level:
            return
        self._levels[name] = level
        pin.bounce_to(level)
