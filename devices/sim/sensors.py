"""Behavioural cabinet sensors simulator: ``sim/{d}/door`` and ``sim/{d}/tamper``."""

from __future__ import annotations

from typing import ClassVar

import msgspec

from devices.base import (
    NoParams,
    NoResult,
    OpenClosed,
    Params,
    sim_action,
)
from devices.sensors.protocol import Sensors, SensorsDetail

from .faults import Simulated


class DoorParams(Params):
    """``sim/{d}/door``: the technician opens or closes the cabinet door."""

    open: bool


class SimSensorsSettings(msgspec.Struct, forbid_unknown_fields=True):
    """No settings."""


class SimSensors(Simulated[SimSensorsSettings, SensorsDetail], Sensors[SimSensorsSettings]):
    """Cabinet sensors switched through ``sim/`` actions."""

    Settings = SimSensorsSettings
    fault_checked_commands: ClassVar[bool] = True

    @sim_action("door", DoorParams, "open or close the cabinet door")
    async def sim_door(self, params: DoorParams) -> NoResult:
        """Move the door (a dead sensor board reads nothing)."""
        await self.check_faults()
        self.door_sensed(OpenClosed.of(params.open))
        return NoResult()

    @sim_action("tamper", NoParams, "trip the tamper switch")
    async def sim_tamper(self, _params: NoParams) -> NoResult:
        """Trip the tamper switch (a dead sensor board reads nothing)."""
        await self.check_faults()
        self.tamper_detected()
        return NoResult()
