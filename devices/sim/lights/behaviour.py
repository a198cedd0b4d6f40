"""Behavioural lights simulator: every change is shown on ``sim/{d}/out/light``."""

from __future__ import annotations

from typing import Annotated, ClassVar

import msgspec
from msgspec import Meta

from devices.base import DeviceState, Message
from devices.lights.protocol import (
    DEFAULT_POSITIONS,
    Light,
    LightColor,
    LightMode,
    Lights,
    LightsDetail,
)
from devices.sim.support.faults import Simulated


class SimLightsSettings(msgspec.Struct, forbid_unknown_fields=True):
    """Settings of the simulated lights.

    Attributes:
        positions: light position names, unique.
        single_color: positions whose light has one colour of its own (it refuses
            ``color``, as a real one-LED light does); the others show every colour.

    """

    positions: Annotated[list[str], Meta(min_length=1, max_length=64)] = msgspec.field(
        default_factory=lambda: list(DEFAULT_POSITIONS),
    )
    single_color: list[str] = msgspec.field(default_factory=list)

    def __post_init__(self) -> None:
        """Reject duplicate or empty position names, and unknown single-colour positions."""
        if len(set(self.positions)) != len(self.positions) or not all(self.positions):
            raise ValueError("positions must be unique, non-empty names")
        unknown = sorted(set(self.single_color) - set(self.positions))
        if unknown:
            raise ValueError(f"single_color names positions not in `positions`: {unknown}")


class SimLights(Simulated[SimLightsSettings, LightsDetail], Lights[SimLightsSettings]):
    """Lights whose state is published as ``out/light``."""

    Settings = SimLightsSettings
    fault_checked_commands: ClassVar[bool] = True
    sim_outputs: ClassVar[dict[str, type[Message]]] = {"light": Light}

    @property
    def positions(self) -> tuple[str, ...]:
        """From the ``positions`` setting."""
        return tuple(self.settings.positions)

    def colors(self, position: str) -> tuple[LightColor, ...]:
        """None for a ``single_color`` position, else every colour."""
        return () if position in self.settings.single_color else tuple(LightColor)

    def connected(self) -> None:
        """Start with every light off when the controller (re)connects."""
        if self.condition in (DeviceState.STARTING, DeviceState.OFFLINE):
            for position in self.positions:
                self._output(Light(position=position, mode=LightMode.OFF))
            self.all_off_reported()
        super().connected()

    def _output(self, light: Light) -> None:
        self.host.sim_output(self.id, "light", light)

    async def _show(self, light: Light) -> None:
        self._output(light)
