"""Wire simulator of the ``gpio`` guide lights: what each light shows, read from its PWM lines.

After the driver writes a light's lines, the simulator reads them back as an
eye would: no channel lit is ``off``; lit at full duty is ``on``; lit at part
duty with a PWM frequency of a few hertz is a flash, the nearest of 1, 2 and
4 Hz; an RGB light's colour is the set of lit channels.  It shows the result
on ``out/light`` once per write burst (one ``set``), like the behavioural
simulator.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import ClassVar

import msgspec

from devices.base import Message, NoResult
from devices.errors import Unsupported
from devices.lights.gpio import CHANNELS, GpioLightsSettings
from devices.lights.protocol import Light, LightColor, LightMode
from devices.sim.support.faults import FAULT_ACTION, FaultKind, FaultParams
from devices.sim.support.gpio_pins import GpioWireSimulator, SimPin

#: A PWM frequency at or below this is seen as flashing, Hz.
FLICKER_HZ = 20.0
_FLASHES = {1.0: LightMode.SLOW_FLASH, 2.0: LightMode.MEDIUM_FLASH, 4.0: LightMode.QUICK_FLASH}
_COLORS = {channels: color for color, channels in CHANNELS.items()}


class GpioLightsSimulator(GpioWireSimulator):
    """Eyes on the lights of the ``gpio`` lights driver."""

    device_class: ClassVar[str] = "lights"
    sim_outputs: ClassVar[dict[str, type[Message]]] = {"light": Light}

    def configure(self, settings: msgspec.Struct) -> None:
        """Keep the wiring."""
        assert isinstance(settings, GpioLightsSettings)
        super().configure(settings)
        self.wiring = settings

    async def start(self) -> None:
        """Create every light's lines, watched."""
        await super().start()
        self.lines: dict[str, dict[str, SimPin]] = {}
        self._pending: set[str] = set()
        for position, light in self.wiring.positions.items():
            self.lines[position] = {
                channel: self.output_pin(spec.pin, self._written(position))
                for channel, spec in light.lines().items()
            }

    def _written(self, position: str) -> Callable[[], None]:
        def written() -> None:
            if position not in self._pending:
                self._pending.add(position)
                self.loop.call_soon(self._show, position)

        return written

    def _lit(self, position: str, channel: str) -> float:
        """A channel's duty as the LED sees it (inverted for active-low wiring)."""
        spec = self.wiring.positions[position].lines()[channel]
        duty = self.lines[position][channel].output
        return duty if spec.active_high else 1.0 - duty

    def seen(self, position: str) -> Light:
        """What light ``position`` shows now."""
        channels = self.lines[position]
        lit = {name: self._lit(position, name) for name in channels}
        on = [name for name, duty in lit.items() if duty > 0]
        if not on:
            return Light(position=position, mode=LightMode.OFF)
        color: LightColor | None = None
        if "pin" not in channels:
            color = _COLORS[tuple(lit[c] > 0 for c in ("red", "green", "blue"))]  # type: ignore[index]
        frequency = channels[on[0]].frequency_hz
        if all(lit[name] >= 1.0 for name in on) or frequency is None or frequency > FLICKER_HZ:
            return Light(position=position, mode=LightMode.ON, color=color)
        nearest = min(_FLASHES, key=lambda hz: abs(hz - frequency))
        return Light(position=position, mode=_FLASHES[nearest], color=color)

    def _show(self, position: str) -> None:
        self._pending.discard(position)
        self.host.sim_output(self.device_id, "light", self.seen(position))

    @FAULT_ACTION
    async def sim_fault(self, params: FaultParams) -> NoResult:
        """Only ``clear``: GPIO lines have no link to cut.

        Raises:
            Unsupported: any other kind.

        """
        if params.kind is not FaultKind.CLEAR:
            raise Unsupported(f"GPIO lights have no {params.kind} fault to simulate")
        return NoResult()
