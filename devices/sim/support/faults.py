"""Fault injection shared by every behavioural simulator.

The ``fault`` sim action sets one fault at a time; ``clear`` removes it.

Every fault lasts until ``clear`` (docs/api.md, "Simulators", has the table
per class; wire simulators follow the same table):

- ``disconnect``: the device goes ``offline`` (its :meth:`Device.run` raises
  :class:`Offline`); commands ``deviceNotReady``.
- ``hardwareError``: state ``hardwareError``; commands fail with it.
- ``jam``: class-specific (printer, document slot); by default like hardwareError
  with the jam recorded in the error.
- ``slow``: every hardware action waits ``delayMs`` before it starts, then succeeds.
- ``garbage``: everything read from the device is garbage: commands fail
  ``hardwareError``; the state is ``hardwareError`` when the driver also reads
  the device between commands (:attr:`Simulated.polled`), else stays ``online``.
- ``unresponsive``: the device is connected but answers nothing: ``hardwareError``
  (a wire simulator takes the bytes and stays silent, so the driver times out).
"""

from __future__ import annotations

import asyncio
from enum import StrEnum
from typing import ClassVar

from devices.base import (
    Command,
    DetailT_co,
    Device,
    DeviceEnv,
    DeviceHost,
    DeviceState,
    NoResult,
    Params,
    SettingsT_co,
    sim_action,
)
from devices.errors import HardwareError, Offline, ProtocolError


class FaultKind(StrEnum):
    """Fault kinds of the ``fault`` sim action."""

    DISCONNECT = "disconnect"
    HARDWARE_ERROR = "hardwareError"
    JAM = "jam"
    SLOW = "slow"
    GARBAGE = "garbage"
    UNRESPONSIVE = "unresponsive"
    CLEAR = "clear"


class FaultParams(Params):
    """``sim/{d}/fault`` parameters; ``delayMs`` applies to ``slow``."""

    kind: FaultKind
    delay_ms: int = 2000


#: The ``fault`` action every simulator declares on its ``sim_fault`` method.
FAULT_ACTION = sim_action("fault", FaultParams, "inject a fault, or clear it")


class Simulated(Device[SettingsT_co, DetailT_co]):
    """Mixin for behavioural simulators: a connection that faults can cut.

    Subclasses call :meth:`check_faults` at the start of every hardware action
    and may override :meth:`on_fault` for class-specific faults (jam).
    """

    #: Whether every command first meets the active fault (:meth:`check_faults`), as
    #: it meets the real driver's readiness check (lights, sensors, lockers, slot, reader).
    fault_checked_commands: ClassVar[bool] = False
    #: Whether the real driver reads the device between commands (a status poll, a
    #: serial line), so that garbage shows in the state and not only in commands.
    polled: ClassVar[bool] = True

    def __init__(
        self, device_id: str, host: DeviceHost, env: DeviceEnv, settings: SettingsT_co
    ) -> None:
        super().__init__(device_id, host, env, settings)
        self._fault: FaultKind | None = None
        self._delay_s = 0.0
        self._changed = asyncio.Event()

    @property
    def fault(self) -> FaultKind | None:
        """The active fault, if any."""
        return self._fault

    async def run(self) -> None:
        """Connect when no disconnect fault is set; raise Offline when one is."""
        while self._disconnected():
            await self._wait_change()
        self.connected()
        while not self._disconnected():
            await self._wait_change()
        raise Offline("simulated disconnect")

    def _disconnected(self) -> bool:
        return self._fault is FaultKind.DISCONNECT

    async def _wait_change(self) -> None:
        self._changed.clear()
        await self._changed.wait()

    def connected(self) -> None:
        """Called when the simulated link is up; sets the condition (override to refine)."""
        if self._fault in (FaultKind.HARDWARE_ERROR, FaultKind.JAM, FaultKind.UNRESPONSIVE) or (
            self._fault is FaultKind.GARBAGE and self.polled
        ):
            self.set_condition(DeviceState.HARDWARE_ERROR)
        else:
            self.set_condition(DeviceState.ONLINE)

    @FAULT_ACTION
    async def sim_fault(self, params: FaultParams) -> NoResult:
        """Apply the ``fault`` action."""
        kind = None if params.kind is FaultKind.CLEAR else params.kind
        self._fault = kind
        self._delay_s = params.delay_ms / 1000 if kind is FaultKind.SLOW else 0.0
        self.on_fault(kind)
        self._changed.set()
        return NoResult()

    def on_fault(self, kind: FaultKind | None) -> None:
        """Reflect a fault change in the condition; called while the link is up."""
        if kind is FaultKind.DISCONNECT:
            return
        if self.condition in (DeviceState.OFFLINE, DeviceState.STARTING):
            return
        self.connected()

    async def check_ready(self, command: Command) -> None:
        """Also meet the active fault first, where :attr:`fault_checked_commands` says so.

        Raises:
            NotReady: as :meth:`Device.check_ready`.
            Offline, HardwareError, ProtocolError: as :meth:`check_faults`.

        """
        await super().check_ready(command)
        if self.fault_checked_commands:
            await self.check_faults()

    async def check_faults(self) -> None:
        """Apply the active fault to a hardware action.

        Raises:
            Offline: while disconnected.
            HardwareError: for ``hardwareError`` and ``jam``.
            ProtocolError: for ``garbage``.

        """
        if self._delay_s:
            await asyncio.sleep(self._delay_s)
        match self._fault:
            case FaultKind.DISCONNECT:
                raise Offline("simulated device is disconnected")
            case FaultKind.HARDWARE_ERROR:
                raise HardwareError("simulated hardware error")
            case FaultKind.JAM:
                raise HardwareError("simulated jam")
            case FaultKind.GARBAGE:
                raise ProtocolError("garbage bytes from the device")
            case FaultKind.UNRESPONSIVE:
                raise HardwareError("simulated device does not answer")
            case _:
                pass
