"""Wire simulator ``cctalk``: the emulated acceptor on a socat pty pair, inside the daemon.

The ``cctalk`` driver runs unchanged: :meth:`CctalkSimulator.driver_settings`
points its ``port`` at the pty link under the daemon's runtime directory, and
the device of :mod:`devices.sim.cctalk_device` answers at the other end with
the driver's coin list as its coin table.  The sim actions are the class's
(``insertCoin``, ``fault``); a coin the device gives back is published on
``sim/{d}/out/returned`` as the behavioural simulator does.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import ClassVar

import msgspec

from devices.base import DeviceEnv, DeviceHost, Message, NoResult, SimAction
from devices.coin_acceptor.cctalk_acceptor import CctalkSettings
from devices.errors import InvalidData, Offline

from .cctalk_device import CctalkCoinDevice, CctalkFaultParams
from .coin_acceptor import InsertCoinParams, ReturnedCoin
from .pty import PtyPair
from .wire import WireSimulator

log = logging.getLogger(__name__)


class CctalkSimulator(WireSimulator):
    """A ccTalk coin acceptor at the far end of the driver's serial port."""

    device_class: ClassVar[str] = "coinAcceptor"
    sim_actions: ClassVar[dict[str, SimAction]] = {
        "fault": SimAction(
            "sim_fault", CctalkFaultParams, "inject a fault (also checksumError, powerCycle, fraud)"
        ),
        "insertCoin": SimAction("sim_insert_coin", InsertCoinParams, "drop a coin into the slot"),
    }
    sim_outputs: ClassVar[dict[str, type[Message]]] = {"returned": ReturnedCoin}

    def __init__(self, device_id: str, host: DeviceHost, env: DeviceEnv) -> None:
        super().__init__(device_id, host, env)
        self._link = env.runtime_dir / f"{device_id}.cctalk"
        self.device: CctalkCoinDevice | None = None
        self._pair: PtyPair | None = None
        self._task: asyncio.Task[None] | None = None

    def driver_settings(self, settings: msgspec.Struct) -> msgspec.Struct:
        """The driver's settings with ``port`` on the pty link; the device copies its coins."""
        if not isinstance(settings, CctalkSettings):
            raise TypeError(f"the cctalk simulator serves the cctalk driver, not {settings!r}")
        self.device = CctalkCoinDevice(
            settings.coins,
            address=settings.address,
            checksum=settings.checksum,
            echo=settings.echo,
        )
        return msgspec.structs.replace(settings, port=str(self._link))

    async def start(self) -> None:
        """Start socat and serve the device end.

        Raises:
            Offline: socat is missing or did not start.

        """
        if self.device is None:
            raise RuntimeError("driver_settings() must run before start()")
        self._pair = await PtyPair.start(self._link, self._link.with_name(self._link.name + ".dev"))
        self._task = asyncio.create_task(
            self.device.serve(self._pair.device), name=f"{self.device_id}-cctalk-device"
        )

    async def aclose(self) -> None:
        """Stop serving and stop socat."""
        if self._task is not None:
            self._task.cancel()
            # Offline: the pty went first (socat stopped); the device has nothing left to serve.
            with contextlib.suppress(asyncio.CancelledError, Offline):
                await self._task
            self._task = None
        if self._pair is not None:
            await self._pair.aclose()
            self._pair = None

    def _device(self) -> CctalkCoinDevice:
        if self.device is None:
            raise InvalidData("the simulator is not running")
        return self.device

    async def sim_insert_coin(self, params: InsertCoinParams) -> NoResult:
        """Drop a coin: the device credits it (read at the next poll) or gives it back.

        Under the ``slow`` fault the coin is validated (and this completes) ``delayMs`` late.
        """
        device = self._device()
        if device.validation_s:
            await asyncio.sleep(device.validation_s)
        result = device.insert_coin(params.value)
        if not result.accepted:
            self.host.sim_output(self.device_id, "returned", ReturnedCoin(value=params.value))
        return NoResult()

    async def sim_fault(self, params: CctalkFaultParams) -> NoResult:
        """Apply a fault to the device."""
        self._device().set_fault(params)
        return NoResult()
