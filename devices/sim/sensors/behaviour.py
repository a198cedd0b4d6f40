"""Behavioural cabinet sensors simulator: ``sim/{d}/door`` and ``sim/{d}/tamper``."""

from __future__ import annotations

from typing import ClassVar

import msgspec

from devices.base import (
    NoParams,
    NoResult,
    OpenClosed,
)
from devices.sensors.protocol import Sensors, SensorsDetail
from devices.sim.sensors.actions import DOOR, TAMPER, DoorParams
from devices.sim.support.faults import Simulated


class SimSensorsSettings(msgspec.Struct, forbid_unknown_fields=True):
    """No settings."""


class SimSensors(Simulated[SimSensorsSettings, SensorsDetail], Sensors[SimSensorsSettings]):
    """Cabinet sensors switched through ``sim/`` actions."""

    Settings = SimSensorsSettings
    fault_checked_commands: ClassVar[bool] = True

    @DOOR
    async def sim_door(self, params: DoorParams) -> NoResult:
        """Move the door (a dead sensor board reads nothing)."""
        await self.check_faults()
        self.door_sensed(OpenClosed.of(params.open))
        return NoResult()

    @TAMPER
    async def sim_tamper(self, _params: NoParams) -> NoResult:
        """Trip the tamper switch (a dead sensor board reads nothing)."""
        await self.check_faults()
        self.tamper_detected()
        return NoResult()
