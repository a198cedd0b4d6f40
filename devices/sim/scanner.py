"""Behavioural scanner simulator: ``sim/{d}/scan`` delivers a code."""

from __future__ import annotations

from typing import ClassVar

import msgspec

from devices.base import DeviceEnv, DeviceHost, NoResult, Params, SimAction
from devices.scanner.protocol import Scanner

from .faults import FAULT_ACTION, Simulated


class ScanParams(Params):
    """``sim/{d}/scan``: the code a person holds under the scanner."""

    text: str
    symbology: str = "qr"


class SimScannerSettings(msgspec.Struct, forbid_unknown_fields=True):
    """No settings."""


class SimScanner(Simulated, Scanner):
    """A scanner whose codes come from ``sim/{d}/scan``."""

    Settings = SimScannerSettings
    sim_actions: ClassVar[dict[str, SimAction]] = {
        "fault": FAULT_ACTION,
        "scan": SimAction("sim_scan", ScanParams, "present a code to the scanner"),
    }

    def __init__(
        self,
        device_id: str,
        host: DeviceHost,
        env: DeviceEnv,
        settings: SimScannerSettings,
    ) -> None:
        super().__init__(device_id, host, env)
        self.settings = settings

    async def sim_scan(self, params: ScanParams) -> NoResult:
        """Deliver a code unless the device is faulted (a dead scanner reads nothing)."""
        await self.check_faults()
        self.code_scanned(params.text, params.symbology)
        return NoResult()
