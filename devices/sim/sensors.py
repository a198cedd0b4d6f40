"""Behavioural cabinet sensors simulator: ``sim/{d}/door`` and ``sim/{d}/tamper``."""

from __future__ import annotations

from typing import ClassVar

import msgspec

from devices.base import DeviceEnv, DeviceHost, NoParams, NoResult, OpenClosed, Params, SimAction
from devices.sensors.protocol import Sensors

from .faults import FAULT_ACTION, Simulated


class DoorParams(Params):
    """``sim/{d}/door``: the technician opens or closes the cabinet door."""

    open: bool


class SimSensorsSettings(msgspec.Struct, forbid_unknown_fields=True):
    """No settings."""


class SimSensors(Simulated, Sensors):
    """Cabinet sensors switched through ``sim/`` actions."""

    Settings = SimSensorsSettings
    sim_actions: ClassVar[dict[str, SimAction]] = {
        "fault": FAULT_ACTION,
        "door": SimAction("sim_door", DoorParams, "open or close the cabinet door"),
        "tamper": SimAction("sim_tamper", NoParams, "trip the tamper switch"),
    }

    def __init__(
        self,
        device_id: str,
        host: DeviceHost,
        env: DeviceEnv,
        settings: SimSensorsSettings,
    ) -> None:
        super().__init__(device_id, host, env)
        self.settings = settings

    async def sim_door(self, params: DoorParams) -> NoResult:
        """Move the door (a dead sensor board reads nothing)."""
        await self.check_faults()
        self.door_sensed(OpenClosed.of(params.open))
        return NoResult()

    async def sim_tamper(self, _params: NoParams) -> NoResult:
        """Trip the tamper switch (a dead sensor board reads nothing)."""
        await self.check_faults()
        self.tamper_detected()
        return NoResult()

    async def _check_sensors(self) -> None:
        await self.check_faults()
