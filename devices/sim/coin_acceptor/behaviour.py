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

from devices.base import Message, NoResult
from devices.coin_acceptor.messages import CoinAcceptorDetail, RejectReason
from devices.coin_acceptor.protocol import CoinAcceptor
from devices.coin_acceptor.settings import CoinTable
from devices.errors import DeviceError, Offline, ProtocolError
from devices.sim.coin_acceptor.actions import INSERT_COIN, InsertCoinParams
from devices.sim.support.acceptor import SimulatedAcceptor
from devices.sim.support.faults import FaultKind


class ReturnedCoin(Message):
    """``sim/{d}/out/returned``: a coin the acceptor gave back, ``value`` whole VND."""

    value: int


class SimCoinAcceptorSettings(CoinTable, frozen=True, forbid_unknown_fields=True):
    """``[devices.<id>]`` options of the simulated coin acceptor: the coin table alone."""


class SimCoinAcceptor(
    SimulatedAcceptor[SimCoinAcceptorSettings, CoinAcceptorDetail],
    CoinAcceptor[SimCoinAcceptorSettings],
):
    """A coin acceptor whose coins come from ``sim/{d}/insertCoin``."""

    Settings = SimCoinAcceptorSettings
    sim_outputs: ClassVar[dict[str, type[Message]]] = {"returned": ReturnedCoin}

    settings: SimCoinAcceptorSettings

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
