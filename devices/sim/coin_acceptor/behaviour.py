"""Behavioural coin acceptor simulator: ``sim/{d}/insertCoin`` drops a coin in the slot.

The simulated hardware keeps one bit, whether it is inhibited (it powers up
inhibited, like real acceptors).  A coin comes back out (``out/returned``) when
the acceptor is inhibited, does not know the coin, or is faulted; otherwise it
falls into the cash box and is credited through the class (ledger first).
Coins are never lost in the simulator: each one is either credited or returned.

Faults: ``disconnect`` -> offline (coins fall through, returned); ``hardwareError``
and ``jam`` -> hardwareError (coins returned; enabling fails, inhibiting works);
``garbage`` -> hardwareError, and a coin's garbled validation report is
``coinRejected`` (``validationFailed``), the coin returned; ``slow`` -> each
coin is validated ``delayMs`` late (``insertCoin`` completes then), commands
answer at once.
"""

from __future__ import annotations

from typing import ClassVar

from devices.base import DeviceEnv, DeviceHost, DeviceState, Message, NoResult
from devices.coin_acceptor.messages import CoinAcceptorDetail, RejectReason
from devices.coin_acceptor.protocol import CoinAcceptor
from devices.coin_acceptor.settings import CoinTable
from devices.errors import DeviceError, Offline, ProtocolError
from devices.sim.coin_acceptor.actions import INSERT_COIN, InsertCoinParams
from devices.sim.support.faults import FaultKind, Simulated

_FAULTY = (FaultKind.HARDWARE_ERROR, FaultKind.JAM, FaultKind.GARBAGE, FaultKind.UNRESPONSIVE)


class ReturnedCoin(Message):
    """``sim/{d}/out/returned``: a coin the acceptor gave back, ``value`` whole VND."""

    value: int


class SimCoinAcceptorSettings(CoinTable, frozen=True, forbid_unknown_fields=True):
    """``[devices.<id>]`` options of the simulated coin acceptor: the coin table alone."""


class SimCoinAcceptor(
    Simulated[SimCoinAcceptorSettings, CoinAcceptorDetail], CoinAcceptor[SimCoinAcceptorSettings]
):
    """A coin acceptor whose coins come from ``sim/{d}/insertCoin``."""

    Settings = SimCoinAcceptorSettings
    sim_outputs: ClassVar[dict[str, type[Message]]] = {"returned": ReturnedCoin}

    settings: SimCoinAcceptorSettings

    def __init__(
        self,
        device_id: str,
        host: DeviceHost,
        env: DeviceEnv,
        settings: SimCoinAcceptorSettings,
    ) -> None:
        super().__init__(device_id, host, env, settings)
        self._hw_inhibited = True

    @property
    def hardware_inhibited(self) -> bool:
        """What the simulated hardware does: True when it returns every coin."""
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

    def _disconnected(self) -> bool:
        # A call, not an inline comparison, so mypy does not narrow ``fault`` across awaits.
        return self.fault is FaultKind.DISCONNECT

    def acceptor_condition(self) -> DeviceState:
        """Return hardwareError while a fault other than disconnect or slow is set."""
        if self.fault in _FAULTY:
            return DeviceState.HARDWARE_ERROR
        return super().acceptor_condition()

    def connected(self) -> None:
        """Re-evaluate the condition when a fault changes while connected."""
        self.set_condition(self.acceptor_condition())

    async def set_inhibit(self, inhibited: bool) -> None:
        """Set the simulated inhibit bit.

        Inhibiting is the safe direction and works on a faulty acceptor;
        enabling needs a working one.

        Raises:
            Offline: disconnected.
            HardwareError: enabling while a hardwareError/jam/garbage fault is set.

        """
        if inhibited:
            if self._disconnected():
                raise Offline("simulated device is disconnected")
        elif self.fault is not FaultKind.SLOW:  # slow validates coins late, not commands
            await self.check_faults()
        self._hw_inhibited = inhibited

    @INSERT_COIN
    async def sim_insert_coin(self, params: InsertCoinParams) -> NoResult:
        """Drop a coin into the slot: it is credited or comes back out, never lost.

        Raises:
            Offline: the acceptor is disconnected (the coin fell through to the cup).
            HardwareError: a hardwareError or jam fault is set (the coin was returned).

        """
        if self._hw_inhibited:
            self._give_back(params.value)
            return NoResult()
        try:
            await self.check_faults()
        except ProtocolError:
            self._give_back(params.value)
            self.coin_rejected(RejectReason.VALIDATION_FAILED)
            return NoResult()
        except DeviceError:
            self._give_back(params.value)
            raise
        if params.value not in self.settings.coins:
            self._give_back(params.value)
            # A validator cannot name a coin it does not know, so no value in the event.
            self.coin_rejected(RejectReason.UNKNOWN_COIN)
            return NoResult()
        await self.coin_inserted(params.value)
        return NoResult()

    def _give_back(self, value: int) -> None:
        self.host.sim_output(self.id, "returned", ReturnedCoin(value=value))
