"""Wire simulator ``ssp``: an emulated SSP note validator in a process of its own, on a socat pty.

The ``ssp`` driver runs unchanged against :mod:`devices.sim.cash_acceptor.ssp_device`, which
takes the driver's note list as its channels and eSSP when the driver asks for
it (:mod:`.note_validator` has what this shares with the ccTalk one).  A note
it holds in escrow when the daemon dies times out back to the citizen, and its
stacked count is kept.
"""

from __future__ import annotations

from typing import Any, ClassVar

import msgspec

from devices.base import NoResult, sim_action
from devices.cash_acceptor.ssp_validator import Encryption, SspSettings
from devices.sim.cash_acceptor.note_validator import NoteValidatorSimulator
from devices.sim.cash_acceptor.ssp_device import SspFaultParams


class SspSimulator(NoteValidatorSimulator):
    """An SSP banknote validator, in its own process, at the far end of the driver's port."""

    module: ClassVar[str] = "devices.sim.cash_acceptor.ssp_device"
    name: ClassVar[str] = "ssp"
    settings_type = SspSettings

    def options(self, settings: SspSettings) -> list[str]:
        """Notes, address, fixed key and eSSP as the driver has them."""
        return [
            f"--notes={','.join(map(str, settings.notes))}",
            f"--address={settings.address}",
            f"--fixed-key={settings.fixed_key}",
            *(["--essp"] if settings.encryption is Encryption.ESSP else []),
        ]

    def matches(self, settings: SspSettings, stats: dict[str, Any]) -> bool:
        """The same notes, address and encryption."""
        return [stats.get(k) for k in ("notes", "address", "essp")] == [
            list(settings.notes),
            settings.address,
            settings.encryption is Encryption.ESSP,
        ]

    @sim_action(
        "fault", SspFaultParams, "inject a fault (also lineCut, crcError, powerCycle, fraud)"
    )
    async def sim_fault(self, params: SspFaultParams) -> NoResult:
        """Apply a fault to the device."""
        await self.call({"action": "fault", **msgspec.to_builtins(params)}, dict)
        return NoResult()
