"""Behavioural locker simulator: ``openCompartment`` pulls a door, ``closeCompartment`` shuts it.

Locks are latches with memory: a ``lock_pulse_ms`` pulse on the coil
(``out/lock``) frees the latch until the class re-locks it, and only a freed
door can be pulled open.  A shut door latches by itself.  Doors move whatever
the controller's faults; while it is disconnected or faulty the class is not
told, and on reconnection it reads every door again.
"""

from __future__ import annotations

import asyncio
from typing import Annotated, ClassVar

import msgspec
from msgspec import Meta

from devices.base import (
    DeviceEnv,
    DeviceHost,
    Message,
    NoResult,
    OpenClosed,
)
from devices.errors import InvalidData, SequenceError
from devices.lockers.protocol import LockerLayout, Lockers, LockersDetail
from devices.sim.lockers.actions import CLOSE_COMPARTMENT, OPEN_COMPARTMENT, CompartmentParams
from devices.sim.support.faults import FaultKind, Simulated

#: Faults under which the controller reads no door sensor.
_BLIND = frozenset({FaultKind.DISCONNECT, FaultKind.HARDWARE_ERROR})


class LockOutput(Message):
    """``sim/{d}/out/lock``: a lock coil was energised or de-energised."""

    compartment: int
    energized: bool


class SimLockersSettings(msgspec.Struct, forbid_unknown_fields=True):
    """Settings of the simulated locker bank.

    Attributes:
        compartments: number of compartments, numbered from 1.
        lock_pulse_ms: how long a lock coil is energised to free the latch, ms.
        open_timeout_ms: ``open`` fails with timeOut if the door is not pulled within this, ms.
        left_open_ms: a door open longer than this raises ``compartmentLeftOpen``, ms.

    """

    compartments: Annotated[int, Meta(ge=1, le=64)] = 8
    lock_pulse_ms: Annotated[int, Meta(ge=1, le=5_000)] = 500
    open_timeout_ms: Annotated[int, Meta(ge=10, le=120_000)] = 30_000
    left_open_ms: Annotated[int, Meta(ge=10, le=3_600_000)] = 60_000


class SimLockers(Simulated[SimLockersSettings, LockersDetail], Lockers[SimLockersSettings]):
    """A locker bank whose doors are moved through ``sim/`` actions."""

    Settings = SimLockersSettings
    fault_checked_commands: ClassVar[bool] = True
    sim_outputs: ClassVar[dict[str, type[Message]]] = {"lock": LockOutput}

    def __init__(
        self,
        device_id: str,
        host: DeviceHost,
        env: DeviceEnv,
        settings: SimLockersSettings,
    ) -> None:
        super().__init__(device_id, host, env, settings)
        self._released: set[int] = set()
        self._energized: set[int] = set()
        self._open: set[int] = set()

    @property
    def layout(self) -> LockerLayout:
        """From ``compartments``, ``open_timeout_ms`` and ``left_open_ms``."""
        return LockerLayout(
            compartments=self.settings.compartments,
            open_timeout_s=self.settings.open_timeout_ms / 1000,
            left_open_s=self.settings.left_open_ms / 1000,
        )

    def connected(self) -> None:
        """Read every door sensor, then set the condition (userError if one is left open)."""
        super().connected()
        for n in range(1, self.settings.compartments + 1):
            self._sense(n)
        self.refresh_condition()

    def _sense(self, compartment: int) -> None:
        if self.fault not in _BLIND:
            self.door_sensed(compartment, OpenClosed.of(compartment in self._open))

    def _compartment(self, params: CompartmentParams) -> int:
        n = params.compartment
        if not 1 <= n <= self.settings.compartments:
            raise InvalidData(f"compartment must be 1 to {self.settings.compartments} (found {n})")
        return n

    @OPEN_COMPARTMENT
    async def sim_open_compartment(self, params: CompartmentParams) -> NoResult:
        """Pull a door open.

        Raises:
            InvalidData: no such compartment.
            SequenceError: the door is already open, or its lock holds it.

        """
        n = self._compartment(params)
        if n in self._open:
            raise SequenceError(f"compartment {n} is already open")
        if n not in self._released:
            raise SequenceError(f"compartment {n} is locked")
        self._open.add(n)
        self._sense(n)
        return NoResult()

    @CLOSE_COMPARTMENT
    async def sim_close_compartment(self, params: CompartmentParams) -> NoResult:
        """Shut a door (it latches by itself).

        Raises:
            InvalidData: no such compartment.
            SequenceError: the door is already shut.

        """
        n = self._compartment(params)
        if n not in self._open:
            raise SequenceError(f"compartment {n} is already shut")
        self._open.discard(n)
        self._sense(n)
        return NoResult()

    def _coil(self, compartment: int, energized: bool) -> None:
        if energized:
            self._energized.add(compartment)
        else:
            self._energized.discard(compartment)
        self.host.sim_output(
            self.id,
            "lock",
            LockOutput(compartment=compartment, energized=energized),
        )

    async def _release(self, compartment: int) -> None:
        self._released.add(compartment)
        self._coil(compartment, energized=True)
        try:
            await asyncio.sleep(self.settings.lock_pulse_ms / 1000)
        finally:
            self._coil(compartment, energized=False)

    async def _relock(self, compartment: int) -> None:
        self._released.discard(compartment)

    async def _relock_all(self) -> None:
        self._released.clear()
        for n in sorted(self._energized):
            self._coil(n, energized=False)
