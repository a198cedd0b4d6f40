"""Wire simulator of the ``gpio`` cabinet sensors: the door, tamper and PIR lines.

``door {open}`` moves the door's switch; ``tamper`` trips the tamper switch
for :data:`TRIP_S` (someone lifts a panel and lets it fall back); the PIR line
follows :meth:`GpioSensorsSimulator.person`.  Switch contacts bounce for about
a millisecond at each change.  GPIO lines have no link to fault: only
``clear`` is accepted.
"""

from __future__ import annotations

import asyncio
from typing import ClassVar

import msgspec

from devices.base import NoParams, NoResult
from devices.errors import Unsupported
from devices.sensors.gpio import GpioSensorsSettings
from devices.sim.sensors.actions import DOOR, TAMPER, DoorParams
from devices.sim.support.faults import FAULT_ACTION, FaultKind, FaultParams
from devices.sim.support.gpio_pins import GpioWireSimulator, SimPin
from devices.transports.gpio import InputPin

#: How long a tamper trip holds the switch, s.
TRIP_S = 0.1
#: Margin past an input's debounce before a switch counts as moved, s.
SETTLE_S = 0.01


class GpioSensorsSimulator(GpioWireSimulator):
    """Door, tamper and PIR switches behind the pins of the ``gpio`` sensors."""

    device_class: ClassVar[str] = "sensors"

    def configure(self, settings: msgspec.Struct) -> None:
        """Keep the wiring."""
        assert isinstance(settings, GpioSensorsSettings)
        super().configure(settings)
        self.wiring = settings

    async def start(self) -> None:
        """Create the pins: door shut, tamper untouched, nobody in front."""
        await super().start()
        w = self.wiring
        self.pins: dict[str, tuple[SimPin, InputPin]] = {
            "door": (self.input_pin(w.door.pin, not w.door.active_high), w.door),
            "tamper": (self.input_pin(w.tamper.pin, not w.tamper.active_high), w.tamper),
        }
        if w.proximity is not None:
            pin = self.input_pin(w.proximity.pin, not w.proximity.active_high)
            self.pins["proximity"] = (pin, w.proximity)

    async def switch(self, name: str, active: bool) -> None:
        """Move switch ``name`` to ``active``, with contact bounce.

        Returns once the new level has held past the input's debounce: no
        person moves a door faster, and the next action cannot undo this one
        before the driver could see it.
        """
        pin, spec = self.pins[name]
        level = active == spec.active_high
        pin.bounce_to(level)
        await asyncio.sleep(spec.debounce_ms / 1000 + SETTLE_S)

    async def person(self, present: bool) -> None:
        """Someone steps in front of the PIR, or leaves."""
        await self.switch("proximity", present)

    @DOOR
    async def sim_door(self, params: DoorParams) -> NoResult:
        """``door``: open or close the cabinet door."""
        await self.switch("door", params.open)
        return NoResult()

    @TAMPER
    async def sim_tamper(self, _params: NoParams) -> NoResult:
        """``tamper``: trip the tamper switch and let it fall back."""
        await self.switch("tamper", active=True)
        await asyncio.sleep(TRIP_S)
        await self.switch("tamper", active=False)
        return NoResult()

    @FAULT_ACTION
    async def sim_fault(self, params: FaultParams) -> NoResult:
        """Only ``clear``: there is no link to cut on GPIO.

        Raises:
            Unsupported: any other kind.

        """
        if params.kind is not FaultKind.CLEAR:
            raise Unsupported(f"GPIO sensors have no {params.kind} fault to simulate")
        return NoResult()
