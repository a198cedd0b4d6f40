"""Behavioural scanner simulator: ``sim/{d}/scan`` delivers a code."""

from __future__ import annotations

import msgspec

from devices.base import NoResult, Params, sim_action
from devices.scanner.protocol import Scanner, ScannerDetail

from .faults import Simulated


class ScanParams(Params):
    """``sim/{d}/scan``: the code a person holds under the scanner."""

    text: str
    symbology: str = "qr"


#: The ``scan`` action of every scanner simulator (behavioural and wire).
SCAN_ACTION = sim_action("scan", ScanParams, "present a code to the scanner")


class SimScannerSettings(msgspec.Struct, forbid_unknown_fields=True):
    """No settings."""


class SimScanner(Simulated[SimScannerSettings, ScannerDetail], Scanner[SimScannerSettings]):
    """A scanner whose codes come from ``sim/{d}/scan``."""

    Settings = SimScannerSettings

    @SCAN_ACTION
    async def sim_scan(self, params: ScanParams) -> NoResult:
        """Deliver a code unless the device is faulted (a dead scanner reads nothing)."""
        await self.check_faults()
        self.code_scanned(params.text, params.symbology)
        return NoResult()
