"""The behavioural simulators of the acceptors that own a deposit (coins, notes), once.

:class:`SimulatedAcceptor` is what the coin and the banknote simulators share:
the ledger opened at start, :meth:`~devices.cash.acceptor.DepositAcceptor.hardware_ready`
each time the simulated link comes up, ``hardwareError`` while a fault other
than ``disconnect`` or ``slow`` is set, and a simulated inhibit that is on at
power-up, as on real acceptors.  Each class keeps what it adds: how its inhibit
meets a fault, and what happens to the money fed in.
"""

from __future__ import annotations

from devices.base import DetailT_co, DeviceEnv, DeviceHost, DeviceState, SettingsT_co
from devices.cash.acceptor import DepositAcceptor
from devices.errors import Offline
from devices.sim.support.faults import FaultKind, Simulated

#: The faults under which a simulated acceptor is ``hardwareError``.
FAULTY = (FaultKind.HARDWARE_ERROR, FaultKind.JAM, FaultKind.GARBAGE, FaultKind.UNRESPONSIVE)


class SimulatedAcceptor(
    Simulated[SettingsT_co, DetailT_co], DepositAcceptor[SettingsT_co, DetailT_co]
):
    """A behavioural acceptor: its deposit's ledger, its faults and its inhibit bit."""

    def __init__(
        self, device_id: str, host: DeviceHost, env: DeviceEnv, settings: SettingsT_co
    ) -> None:
        super().__init__(device_id, host, env, settings)
        self._hw_inhibited = True

    @property
    def hardware_inhibited(self) -> bool:
        """What the simulated hardware does: True when it gives back all money fed in."""
        return self._hw_inhibited

    async def run(self) -> None:
        """Open the ledger, connect when no disconnect fault is set, raise Offline on one.

        Raises:
            LedgerError: the ledger cannot be opened.
            Offline: a ``disconnect`` fault is set while connected.
            DeviceError: the acceptor could not be set as the deposit needs.

        """
        await self.open_ledger()
        while self._disconnected():
            await self._wait_change()
        await self.hardware_ready()
        while not self._disconnected():
            await self._wait_change()
        raise Offline("simulated disconnect")

    def acceptor_condition(self) -> DeviceState:
        """Return hardwareError while a fault other than disconnect or slow is set."""
        if self.fault in FAULTY:
            return DeviceState.HARDWARE_ERROR
        return super().acceptor_condition()

    def connected(self) -> None:
        """Re-evaluate the condition when a fault changes while connected."""
        self.set_condition(self.acceptor_condition())
