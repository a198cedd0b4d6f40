"""Behavioural scanner simulator: ``sim/{d}/scan`` delivers a code."""

from __future__ import annotations

import msgspec

from devices.base import NoResult
from devices.scanner.protocol import Scanner, ScannerDetail
from devices.sim.scanner.actions import SCAN, ScanParams
from devices.sim.support.faults import Simulated


class SimScannerSettings(msgspec.Struct, forbid_unknown_fields=True):
    """No settings."""


class SimScanner(Simulated[SimScannerSettings, ScannerDetail], Scanner[SimScannerSettings]):
    """A scanner whose codes come from ``sim/{d}/scan``."""

    Settings = SimScannerSettings

    @SCAN
    async def sim_scan(self, params: ScanParams) -> NoResult:
        """Deliver a code unless the device is faulted (a dead scanner reads nothing)."""
        await self.check_faults()
        self.code_scanned(params.text, params.symbology)
        return NoResult()
