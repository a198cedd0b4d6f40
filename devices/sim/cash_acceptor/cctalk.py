"""Wire simulator ``cctalk`` of the ``cashAcceptor`` class: an emulated ccTalk bill validator.

The ``cctalk`` note driver runs unchanged against
:mod:`devices.sim.cash_acceptor.cctalk_device` in a process of its own on a socat pty
(:mod:`.note_validator`): its bill types are the driver's notes, its escrow,
buffer and counter outlive a crashed daemon.
"""

from __future__ import annotations

from typing import Any, ClassVar

import msgspec

from devices.base import NoResult
from devices.cash_acceptor.cctalk_validator import CctalkBillSettings
from devices.sim.cash_acceptor.note_validator import NoteValidatorSimulator
from devices.sim.coin_acceptor.cctalk_device import CCTALK_FAULT, CctalkFaultParams


class CctalkBillSimulator(NoteValidatorSimulator):
    """A ccTalk bill validator, in its own process, at the far end of the driver's port."""

    module: ClassVar[str] = "devices.sim.cash_acceptor.cctalk_device"
    name: ClassVar[str] = "ccbill"
    settings_type = CctalkBillSettings

    def options(self, settings: CctalkBillSettings) -> list[str]:
        """Notes, address, checksum and echo as the driver has them."""
        return [
            f"--notes={','.join(map(str, settings.notes))}",
            f"--address={settings.address}",
            f"--checksum={settings.checksum.value}",
            *(["--echo"] if settings.echo else []),
        ]

    def matches(self, settings: CctalkBillSettings, stats: dict[str, Any]) -> bool:
        """The same notes, address, checksum and echo."""
        return [stats.get(k) for k in ("notes", "address", "checksum", "echo")] == [
            list(settings.notes),
            settings.address,
            settings.checksum.value,
            settings.echo,
        ]

    @CCTALK_FAULT
    async def sim_fault(self, params: CctalkFaultParams) -> NoResult:
        """Apply a fault to the device."""
        await self.call({"action": "fault", **msgspec.to_builtins(params)}, dict)
        return NoResult()
