"""The ``gpio`` document slot: two sensors, a feed motor, a shutter lock and a guide LED on GPIO.

Wiring (docs/gpio.md): ``entry`` sees a document in the mouth, ``inside`` one
at the escrow position; the sensors are far enough apart that a document being
fed covers both for a while (it is only *inside* once ``entry`` clears).  The
motor runs forward (inwards) or in reverse through two outputs, optionally with
a PWM enable line for an H-bridge; the two direction outputs are never active
together.  The shutter output, while active, unlocks and opens the shutter; the
guide LED is lit while the shutter is open.

Jam detection, besides the class's per-stage ``feed_timeout_ms``: with the
motor running, no sensor change for ``jam_ms``; with the motor stopped, a
document across both sensors for ``jam_ms`` (one stuck in the shutter's path).
Either stops the motor and reports the jam.  A jam clears when both sensors
read empty (a technician removed the document), or when ``retract`` or
``eject`` moves the document again (they try; a document still stuck jams
again).

Safe outputs: every sequence ends with the motor off and the shutter locked
(the class's ``finally``); :meth:`run` switches them off however it ends, and
:meth:`safe_state` works with or without :meth:`run` (``kioskd safe-state``).
"""

from __future__ import annotations

import asyncio
from typing import Annotated, TypeVar

import msgspec
from gpiozero.pins import Factory
from msgspec import Meta

from devices.base import (
    Command,
    CommandContext,
    DeviceEnv,
    DeviceHost,
    DeviceState,
    NoParams,
    NoResult,
    OpenClosed,
)
from devices.errors import Offline
from devices.transports.claims import PinClaim, gpio_line
from devices.transports.gpio import (
    InputPin,
    Inputs,
    Output,
    OutputPin,
    PinFactoryName,
    PwmOutput,
    PwmPin,
    open_pin_factory,
)

from .protocol import DocumentSlot, EjectResult, MotorDirection, SlotTiming


class MotorPins(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """The feed motor: two direction outputs, and an H-bridge enable line if wired.

    Attributes:
        forward: active to run inwards (relay or H-bridge IN1).
        reverse: active to run outwards (relay or H-bridge IN2).
        enable: PWM enable of an H-bridge (ENA), driven at ``speed`` while running.
        speed: duty cycle of ``enable`` while running, 0..1.

    """

    forward: OutputPin = OutputPin(pin=20)
    reverse: OutputPin = OutputPin(pin=21)
    enable: PwmPin | None = None
    speed: Annotated[float, Meta(gt=0, le=1)] = 1.0


class GpioDocumentSlotSettings(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Settings of a GPIO document slot (defaults: the reference wiring of docs/gpio.md).

    Attributes:
        pin_factory: which gpiozero pin factory drives the pins.
        entry: sensor in the mouth (active: a document is there).
        inside: sensor at the escrow position (active: a document is there).
        motor: the feed motor's outputs.
        shutter: active unlocks and opens the shutter.
        guide_led: lit while the shutter is open; none if not wired.
        shutter_ms: time the shutter takes to move, ms.
        jam_ms: motor running with no sensor change, or a document at rest
            across both sensors, this long is a jam, ms.
        feed_timeout_ms: a feed not at the next sensor within this is a jam, ms.
        retract_after_ms: ``eject`` pulls the document back if not taken within this, ms.

    """

    pin_factory: PinFactoryName = ""
    entry: InputPin = InputPin(pin=5)
    inside: InputPin = InputPin(pin=6)
    motor: MotorPins = MotorPins()
    shutter: OutputPin = OutputPin(pin=16)
    guide_led: OutputPin | None = OutputPin(pin=26)
    shutter_ms: Annotated[int, Meta(ge=0, le=5_000)] = 150
    jam_ms: Annotated[int, Meta(ge=20, le=30_000)] = 1_500
    feed_timeout_ms: Annotated[int, Meta(ge=10, le=60_000)] = 5_000
    retract_after_ms: Annotated[int, Meta(ge=10, le=60_000)] = 30_000

    def pin_claims(self) -> list[PinClaim]:
        """Every pin wired (see :mod:`devices.transports.claims`)."""
        pins: list[tuple[str, InputPin | OutputPin | PwmPin | None]] = [
            ("entry", self.entry),
            ("inside", self.inside),
            ("motor.forward", self.motor.forward),
            ("motor.reverse", self.motor.reverse),
            ("motor.enable", self.motor.enable),
            ("shutter", self.shutter),
            ("guide_led", self.guide_led),
        ]
        return [PinClaim(gpio_line(spec.pin), use) for use, spec in pins if spec is not None]


_O = TypeVar("_O", Output, PwmOutput)


class _Outputs:
    """The slot's outputs, claimed inactive; :meth:`safe` is synchronous on purpose."""

    def __init__(self, settings: GpioDocumentSlotSettings, factory: Factory) -> None:
        self._all: list[Output | PwmOutput] = []
        try:
            self.forward = self._claim(Output("motor.forward", settings.motor.forward, factory))
            self.reverse = self._claim(Output("motor.reverse", settings.motor.reverse, factory))
            enable = settings.motor.enable
            self.enable = (
                self._claim(PwmOutput("motor.enable", enable, factory)) if enable else None
            )
            self.shutter = self._claim(Output("shutter", settings.shutter, factory))
            led = settings.guide_led
            self.led = self._claim(Output("guide_led", led, factory)) if led else None
        except BaseException:
            self.close()
            raise
        self.speed = settings.motor.speed

    def _claim(self, output: _O) -> _O:
        self._all.append(output)
        return output

    def motor(self, direction: MotorDirection) -> None:
        """Drive the motor; both direction lines are off before either goes on."""
        self.forward.set(False)
        self.reverse.set(False)
        running = direction is not MotorDirection.STOPPED
        if self.enable is not None:
            self.enable.set(self.speed if running else 0.0)
        if direction is MotorDirection.FORWARD:
            self.forward.set(True)
        elif direction is MotorDirection.REVERSE:
            self.reverse.set(True)

    def open_shutter(self, open_: bool) -> None:
        self.shutter.set(open_)
        if self.led is not None:
            self.led.set(open_)

    def safe(self) -> None:
        """Motor off, shutter locked, LED off."""
        self.motor(MotorDirection.STOPPED)
        self.open_shutter(open_=False)

    def close(self) -> None:
        for output in reversed(self._all):
            output.close()
        self._all.clear()


class GpioDocumentSlot(DocumentSlot[GpioDocumentSlotSettings]):
    """A document slot wired to GPIO through gpiozero."""

    Settings = GpioDocumentSlotSettings

    def __init__(
        self,
        device_id: str,
        host: DeviceHost,
        env: DeviceEnv,
        settings: GpioDocumentSlotSettings,
    ) -> None:
        super().__init__(device_id, host, env, settings)
        self._outputs: _Outputs | None = None
        self._inputs: Inputs | None = None
        self._direction = MotorDirection.STOPPED
        self._jam_timer: asyncio.TimerHandle | None = None

    @property
    def timing(self) -> SlotTiming:
        """From ``feed_timeout_ms`` and ``retract_after_ms``."""
        return SlotTiming(
            feed_s=self.settings.feed_timeout_ms / 1000,
            take_s=self.settings.retract_after_ms / 1000,
        )

    # --- run -----------------------------------------------------------------------

    async def run(self) -> None:
        """Claim the pins, report the sensors, and follow their edges until cancelled.

        Raises:
            Offline: the pin factory or the GPIO chip cannot be opened.
            HardwareError: a pin is invalid or already in use.

        """
        factory, owned = open_pin_factory(self.settings.pin_factory)
        try:
            self._outputs = _Outputs(self.settings, factory)
            self._outputs.safe()
            self._inputs = Inputs(
                factory, {"entry": self.settings.entry, "inside": self.settings.inside}
            )
            self._direction = MotorDirection.STOPPED
            self.update_detail(shutter=OpenClosed.CLOSED)
            # The sensors as the edges tell them, one edge at a time: after a stalled
            # loop several edges have settled, and the inputs' current levels would skip
            # the states between (a sheet pulled out past both sensors: inside cleared,
            # then entry; read at once, both clear, and documentTaken was lost).
            levels = {name: self._inputs.active(name) for name in ("entry", "inside")}
            self._sense(**levels)
            self.set_condition(DeviceState.HARDWARE_ERROR if self._jammed else DeviceState.ONLINE)
            async for edge in self._inputs.edges():
                levels[edge.name] = edge.active
                self._sense(**levels)
            raise Offline("the slot's inputs were closed")
        finally:
            self._close_pins()
            if owned:
                factory.close()

    def _close_pins(self) -> None:
        if self._jam_timer is not None:
            self._jam_timer.cancel()
            self._jam_timer = None
        if self._outputs is not None:
            self._outputs.safe()
            self._outputs.close()
            self._outputs = None
        if self._inputs is not None:
            self._inputs.close()
            self._inputs = None
        self._direction = MotorDirection.STOPPED
        self.update_detail(shutter=OpenClosed.CLOSED)

    def _sense(self, *, entry: bool, inside: bool) -> None:
        if self._jammed and not entry and not inside:
            self.jam_cleared(entry=False, inside=False)
            if self.condition is DeviceState.HARDWARE_ERROR:
                self.set_condition(DeviceState.ONLINE)
        else:
            self.sensed(entry=entry, inside=inside)
        self._arm_jam_timer()

    # --- jam detection -------------------------------------------------------------

    def _jam_suspect(self) -> bool:
        if self._jammed or self._inputs is None:
            return False
        if self._direction is not MotorDirection.STOPPED:
            return True
        return self._inputs.active("entry") and self._inputs.active("inside")

    def _arm_jam_timer(self) -> None:
        """(Re)start the no-change timer after a sensor edge or a motor change."""
        if self._jam_timer is not None:
            self._jam_timer.cancel()
            self._jam_timer = None
        if self._jam_suspect():
            self._jam_timer = asyncio.get_running_loop().call_later(
                self.settings.jam_ms / 1000, self._jam_timeout
            )

    def _jam_timeout(self) -> None:
        self._jam_timer = None
        if not self._jam_suspect():
            return
        if self._outputs is not None:
            self._outputs.motor(MotorDirection.STOPPED)
        self._direction = MotorDirection.STOPPED
        self.jammed()

    # --- recovery ----------------------------------------------------------------------

    def _try_recovery(self) -> None:
        """Let ``retract``/``eject`` try to move a jammed document (the jam timer still watches).

        Raises:
            Offline: the slot's GPIO is not open.

        """
        if self._inputs is None:
            raise Offline("the slot's GPIO is not open")
        if self._jammed:
            inputs = self._inputs
            self.jam_cleared(entry=inputs.active("entry"), inside=inputs.active("inside"))
            if self.condition is DeviceState.HARDWARE_ERROR:
                self.set_condition(DeviceState.ONLINE)

    async def eject(self, params: NoParams, ctx: CommandContext) -> EjectResult:
        """As the class's, and on a jammed slot an attempt to feed the document out.

        Raises:
            HardwareError: it is still stuck (jammed again), or the slot failed.
            SequenceError: no document in the slot.
            Offline: the slot's GPIO is not open.

        """
        self._try_recovery()
        return await super().eject(params, ctx)

    async def retract(self, params: NoParams, ctx: CommandContext) -> NoResult:
        """As the class's, and on a jammed slot an attempt to feed the document to the bin.

        Raises:
            HardwareError: it is still stuck (jammed again), or the slot failed.
            SequenceError: no document in the slot.
            Offline: the slot's GPIO is not open.

        """
        self._try_recovery()
        return await super().retract(params, ctx)

    # --- DocumentSlot hardware -----------------------------------------------------

    async def check_ready(self, command: Command) -> None:
        """Also refuse while the lines are not open (between two runs)."""
        await super().check_ready(command)
        if self._outputs is None:
            raise Offline("the slot's GPIO is not open")

    async def _drive_motor(self, direction: MotorDirection) -> None:
        if self._outputs is None:
            raise Offline("the slot's GPIO is not open")
        if direction is not self._direction:
            self._outputs.motor(direction)
            self._direction = direction
            self._arm_jam_timer()

    async def _move_shutter(self, open_: bool) -> None:
        if self._outputs is None:
            raise Offline("the slot's GPIO is not open")
        # The pin is set before the wait, so a cancellation during it cannot leave it open.
        self._outputs.open_shutter(open_)
        await asyncio.sleep(self.settings.shutter_ms / 1000)

    async def safe_state(self) -> None:
        """Motor off, shutter locked, LED off; claims the pins briefly if not running.

        Raises:
            Offline, HardwareError: the pins cannot be claimed.

        """
        if self._outputs is not None:
            self._outputs.safe()
            self._direction = MotorDirection.STOPPED
        else:
            factory, owned = open_pin_factory(self.settings.pin_factory)
            try:
                outputs = _Outputs(self.settings, factory)
                outputs.safe()
                outputs.close()
            finally:
                if owned:
                    factory.close()
        self.update_detail(shutter=OpenClosed.CLOSED)
