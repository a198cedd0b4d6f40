"""The ``gpio`` cabinet sensors: door switch, tamper switch and an optional PIR on header pins.

Each input is debounced by the gpiozero bridge.  The door input is active
while the door is open; the tamper input while a tamper switch is tripped
(each trip latches tamper and raises ``tamper``); the proximity input while
the PIR sees someone (``presence`` events).  Wire door and tamper switches
normally closed on a pull-up, so a cut wire reads open/tripped (docs/gpio.md).
"""

from __future__ import annotations

import msgspec

from devices.base import Command, DeviceEnv, DeviceHost, DeviceState, OpenClosed
from devices.errors import Offline
from devices.transports.claims import PinClaim, gpio_line
from devices.transports.gpio import InputPin, Inputs, PinFactoryName, open_pin_factory

from .protocol import Presence, Sensors


class GpioSensorsSettings(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Settings of the GPIO cabinet sensors (defaults: the reference wiring of docs/gpio.md).

    Attributes:
        pin_factory: which gpiozero pin factory reads the pins.
        door: active while the cabinet door is open.
        tamper: active while a tamper switch is tripped.
        proximity: active while the PIR sees someone; none if not fitted.

    """

    pin_factory: PinFactoryName = ""
    door: InputPin = InputPin(pin=17, pull="up", debounce_ms=50)
    tamper: InputPin = InputPin(pin=27, pull="up", debounce_ms=20)
    proximity: InputPin | None = None

    def pin_claims(self) -> list[PinClaim]:
        """Every pin wired (see :mod:`devices.transports.claims`)."""
        pins = [("door", self.door), ("tamper", self.tamper), ("proximity", self.proximity)]
        return [PinClaim(gpio_line(spec.pin), use) for use, spec in pins if spec is not None]


class GpioSensors(Sensors[GpioSensorsSettings]):
    """Cabinet sensors on GPIO through gpiozero."""

    Settings = GpioSensorsSettings

    def __init__(
        self,
        device_id: str,
        host: DeviceHost,
        env: DeviceEnv,
        settings: GpioSensorsSettings,
    ) -> None:
        super().__init__(device_id, host, env, settings)
        self._inputs: Inputs | None = None

    async def run(self) -> None:
        """Claim the inputs, report them, and follow their edges until cancelled.

        A tamper switch already tripped at start latches tamper.

        Raises:
            Offline: the pin factory or the GPIO chip cannot be opened.
            HardwareError: a pin is invalid or already in use.

        """
        specs = {"door": self.settings.door, "tamper": self.settings.tamper}
        if self.settings.proximity is not None:
            specs["proximity"] = self.settings.proximity
        factory, owned = open_pin_factory(self.settings.pin_factory)
        try:
            self._inputs = inputs = Inputs(factory, specs)
            self._door(inputs.active("door"))
            if inputs.active("tamper"):
                self.tamper_detected()
            self.set_condition(DeviceState.ONLINE)
            async for edge in inputs.edges():
                if edge.name == "door":
                    self._door(edge.active)
                elif edge.name == "tamper" and edge.active:
                    self.tamper_detected()
                elif edge.name == "proximity":
                    self.emit("presence", Presence(present=edge.active))
            raise Offline("the sensor inputs were closed")
        finally:
            if self._inputs is not None:
                self._inputs.close()
                self._inputs = None
            if owned:
                factory.close()

    def _door(self, open_: bool) -> None:
        self.door_sensed(OpenClosed.of(open_))

    async def check_ready(self, command: Command) -> None:
        """Also refuse while the lines are not open (between two runs)."""
        await super().check_ready(command)
        if self._inputs is None:
            raise Offline("the sensor inputs are not open")
