"""The ``gpio`` guide lights: one PWM line per single-colour light, three per RGB light.

Modes map to PWM: ``off`` is duty 0; ``on`` is full duty at the line's own
frequency; a flash is half duty at the flash rate (``slow_hz``, ``medium_hz``,
``quick_hz``), so the pin factory's PWM does the flashing and no task or
thread of ours toggles pins.  An RGB light shows a colour by which of its
channels are driven (white: all three, yellow: red and green, ...); a single
colour light shows its own colour and refuses another (its ``positionColors``
capability is empty).
"""

from __future__ import annotations

from typing import Annotated

import msgspec
from gpiozero.pins import Factory
from msgspec import Meta

from devices.base import Command, DeviceEnv, DeviceHost, DeviceState
from devices.errors import Offline
from devices.transports.claims import PinClaim, gpio_line
from devices.transports.gpio import PinFactoryName, PwmOutput, PwmPin, open_pin_factory

from .protocol import Light, LightColor, LightMode, Lights

#: Channels (red, green, blue) driven for each colour.
CHANNELS: dict[LightColor, tuple[bool, bool, bool]] = {
    LightColor.WHITE: (True, True, True),
    LightColor.RED: (True, False, False),
    LightColor.GREEN: (False, True, False),
    LightColor.BLUE: (False, False, True),
    LightColor.YELLOW: (True, True, False),
    LightColor.CYAN: (False, True, True),
    LightColor.MAGENTA: (True, False, True),
}
Hz = Annotated[float, Meta(gt=0, le=20)]


class LightPins(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """One light: ``pin`` for a single-colour light, or ``red``, ``green`` and ``blue``.

    Attributes:
        pin: the single-colour light's line.
        red: the RGB light's red channel.
        green: the RGB light's green channel.
        blue: the RGB light's blue channel.
        default_color: what an RGB light shows when ``set`` gives no colour.

    """

    pin: PwmPin | None = None
    red: PwmPin | None = None
    green: PwmPin | None = None
    blue: PwmPin | None = None
    default_color: LightColor = LightColor.WHITE

    def __post_init__(self) -> None:
        """Exactly one of: ``pin``, or all of ``red``, ``green``, ``blue``."""
        rgb = [self.red, self.green, self.blue]
        single = self.pin is not None and all(c is None for c in rgb)
        colour = self.pin is None and all(c is not None for c in rgb)
        if not (single or colour):
            raise ValueError("a light has either `pin`, or `red`, `green` and `blue`")

    def lines(self) -> dict[str, PwmPin]:
        """Its lines by channel name (``pin``, or ``red``/``green``/``blue``)."""
        named = {"pin": self.pin, "red": self.red, "green": self.green, "blue": self.blue}
        return {name: spec for name, spec in named.items() if spec is not None}


def _reference_positions() -> dict[str, LightPins]:
    pins = {
        "scanner": 4,
        "cardReader": 18,
        "printer": 23,
        "coinAcceptor": 24,
        "documentSlot": 25,
        "lockers": 12,
        "camera": 13,
    }
    return {name: LightPins(pin=PwmPin(pin=pin)) for name, pin in pins.items()}


class GpioLightsSettings(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Settings of GPIO guide lights (defaults: the reference wiring of docs/gpio.md).

    Attributes:
        pin_factory: which gpiozero pin factory drives the pins.
        positions: the lights by position name, in the order listed.
        slow_hz: flash rate of ``slowFlash``, Hz.
        medium_hz: flash rate of ``mediumFlash``, Hz.
        quick_hz: flash rate of ``quickFlash``, Hz.

    """

    pin_factory: PinFactoryName = ""
    positions: Annotated[dict[str, LightPins], Meta(min_length=1, max_length=64)] = msgspec.field(
        default_factory=_reference_positions
    )
    slow_hz: Hz = 1.0
    medium_hz: Hz = 2.0
    quick_hz: Hz = 4.0

    def pin_claims(self) -> list[PinClaim]:
        """Every pin wired (see :mod:`devices.transports.claims`)."""
        return [
            PinClaim(gpio_line(spec.pin), f"positions.{position}.{channel}")
            for position, light in self.positions.items()
            for channel, spec in light.lines().items()
        ]

    def flash_hz(self, mode: LightMode) -> float | None:
        """The flash rate of ``mode`` (None: not a flash)."""
        return {
            LightMode.SLOW_FLASH: self.slow_hz,
            LightMode.MEDIUM_FLASH: self.medium_hz,
            LightMode.QUICK_FLASH: self.quick_hz,
        }.get(mode)


def _open_all(settings: GpioLightsSettings, factory: Factory) -> dict[str, dict[str, PwmOutput]]:
    opened: dict[str, dict[str, PwmOutput]] = {}
    try:
        for position, light in settings.positions.items():
            opened[position] = {}
            for channel, spec in light.lines().items():
                opened[position][channel] = PwmOutput(f"{position}.{channel}", spec, factory)
    except BaseException:
        _close_all(opened)
        raise
    return opened


def _close_all(opened: dict[str, dict[str, PwmOutput]]) -> None:
    for channels in opened.values():
        for output in channels.values():
            output.close()


class GpioLights(Lights[GpioLightsSettings]):
    """Guide lights on GPIO PWM lines through gpiozero."""

    Settings = GpioLightsSettings

    def __init__(
        self,
        device_id: str,
        host: DeviceHost,
        env: DeviceEnv,
        settings: GpioLightsSettings,
    ) -> None:
        super().__init__(device_id, host, env, settings)
        self._outputs: dict[str, dict[str, PwmOutput]] | None = None

    @property
    def positions(self) -> tuple[str, ...]:
        """From ``positions``, in order."""
        return tuple(self.settings.positions)

    def colors(self, position: str) -> tuple[LightColor, ...]:
        """Every colour of :data:`CHANNELS` for an RGB light, none for a single-colour one."""
        return () if self.settings.positions[position].pin is not None else tuple(CHANNELS)

    async def run(self) -> None:
        """Claim the lines (every light off) and hold them until cancelled.

        Raises:
            Offline: the pin factory or the GPIO chip cannot be opened.
            HardwareError: a pin is invalid or already in use.

        """
        factory, owned = open_pin_factory(self.settings.pin_factory)
        try:
            self._outputs = _open_all(self.settings, factory)
            self.all_off_reported()
            self.set_condition(DeviceState.ONLINE)
            await self.wait_until(lambda: False, None)
        finally:
            if self._outputs is not None:
                _close_all(self._outputs)
                self._outputs = None
            if owned:
                factory.close()

    async def check_ready(self, command: Command) -> None:
        """Also refuse while the lines are not open (between two runs)."""
        await super().check_ready(command)
        if self._outputs is None:
            raise Offline("the lights' GPIO is not open")

    async def _show(self, light: Light) -> None:
        if self._outputs is None:
            raise Offline("the lights' GPIO is not open")
        self._drive(self._outputs[light.position], light)

    def _drive(self, channels: dict[str, PwmOutput], light: Light) -> None:
        spec = self.settings.positions[light.position]
        if "pin" in channels:
            wanted = {"pin": True}  # set_light refused any colour (colors() is empty)
        else:
            red, green, blue = CHANNELS[light.color or spec.default_color]
            wanted = {"red": red, "green": green, "blue": blue}
        flash = self.settings.flash_hz(light.mode)
        for channel, output in channels.items():
            if light.mode is LightMode.OFF or not wanted[channel]:
                output.set(0.0)
            elif flash is not None:
                output.set(0.5, frequency_hz=flash)
            else:
                output.set(1.0)

    async def safe_state(self) -> None:
        """Every light off; claims the lines briefly if not running.

        Raises:
            Offline, HardwareError: the lines cannot be claimed.

        """
        if self._outputs is None:
            factory, owned = open_pin_factory(self.settings.pin_factory)
            try:
                _close_all(_open_all(self.settings, factory))
            finally:
                if owned:
                    factory.close()
        else:
            for position, channels in self._outputs.items():
                self._drive(channels, Light(position=position, mode=LightMode.OFF))
        self.all_off_reported()
