"""Wire simulator ``cctalk``: the emulated acceptor in a process of its own, on a socat pty pair.

The ``cctalk`` driver runs unchanged: :meth:`CctalkSimulator.driver_settings`
points its ``port`` at a pty link, and the device of
:mod:`devices.sim.coin_acceptor.cctalk_device` (run as ``python -m`` that module)
answers at the other end with the driver's coin list as its coin table.  The sim
actions are the class's (``insertCoin``, ``fault``), sent over the device's
control socket; a coin the device gives back is published on
``sim/{d}/out/returned`` as the behavioural simulator does.

The device outlives a crashed daemon, as a real acceptor on its own power
supply does (:mod:`devices.sim.support.device_process`); its files live with the board's durable
state (``{state_dir}/sim-cctalk/{device}/``).  :meth:`CctalkSimulator.start`
reconnects to the device a killed run left (its buffer, counter and inhibits
kept, so the ledger's recovery reads what a real board's would) or starts one;
:meth:`CctalkSimulator.aclose`, a graceful stop, stops it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar, TypeVar

import msgspec

from devices.base import DeviceEnv, DeviceHost, Message, NoResult
from devices.coin_acceptor.cctalk_acceptor import CctalkSettings
from devices.errors import InvalidData
from devices.sim.coin_acceptor.actions import INSERT_COIN, InsertCoinParams
from devices.sim.coin_acceptor.behaviour import ReturnedCoin
from devices.sim.coin_acceptor.cctalk_device import CCTALK_FAULT, MAX_DELAY_MS, CctalkFaultParams
from devices.sim.support import device_process
from devices.sim.support.device_process import CONTROL_TIMEOUT_S, DeviceProcess
from devices.sim.support.wire import WireSimulator

#: The device's module, run as ``python -m``.
MODULE = "devices.sim.coin_acceptor.cctalk_device"

T = TypeVar("T")


class _Inserted(msgspec.Struct):
    accepted: bool


class _Empty(msgspec.Struct):
    pass


def control_path(folder: Path) -> Path:
    """The control socket of the ccTalk device whose files are in ``folder``.

    Raises:
        Offline: the path is too long for a Unix socket.

    """
    return device_process.control_path(folder, "cctalk")


class CctalkSimulator(WireSimulator):
    """A ccTalk coin acceptor, in its own process, at the far end of the driver's serial port."""

    device_class: ClassVar[str] = "coinAcceptor"
    sim_outputs: ClassVar[dict[str, type[Message]]] = {"returned": ReturnedCoin}

    def __init__(self, device_id: str, host: DeviceHost, env: DeviceEnv) -> None:
        super().__init__(device_id, host, env)
        #: Where the device's files live; it outlives the daemon's runtime folder.
        self.folder = env.state_dir / "sim-cctalk" / device_id
        self._process = DeviceProcess(
            MODULE, self.folder, prefix="cctalk", what="the simulated acceptor"
        )
        self._settings: CctalkSettings | None = None

    @property
    def pid(self) -> int | None:
        """The device process's pid once started or found."""
        return self._process.pid

    def driver_settings(self, settings: msgspec.Struct) -> msgspec.Struct:
        """The driver's settings with ``port`` on the pty link; the device copies its coins."""
        if not isinstance(settings, CctalkSettings):
            raise TypeError(f"the cctalk simulator serves the cctalk driver, not {settings!r}")
        self._settings = settings
        return msgspec.structs.replace(settings, port=str(self._process.line))

    def _matches(self, stats: dict[str, Any]) -> bool:
        s = self._settings
        return s is not None and [
            stats.get(k) for k in ("coins", "address", "checksum", "echo")
        ] == [list(s.coins), s.address, s.checksum.value, s.echo]

    async def start(self) -> None:
        """Reconnect to the device a killed run left (its buffer kept), else start one.

        Raises:
            Offline: socat is missing, the device process did not start, or its
                control socket path is too long.
            OSError: the device's folder cannot be created under ``state_dir``.

        """
        settings = self._settings
        if settings is None:
            raise RuntimeError("driver_settings() must run before start()")
        options = [
            f"--coins={','.join(map(str, settings.coins))}",
            f"--address={settings.address}",
            f"--checksum={settings.checksum.value}",
            *(["--echo"] if settings.echo else []),
        ]
        await self._process.start(options, self._matches)

    async def aclose(self) -> None:
        """Stop the device process (a graceful stop powers the simulated board off)."""
        await self._process.aclose()

    async def call(
        self, request: dict[str, Any], answer: type[T], timeout_s: float = CONTROL_TIMEOUT_S
    ) -> T:
        """Send a control request to the device (see :mod:`.cctalk_device`).

        Raises:
            InvalidData: the simulator is not running.
            Offline: the device process is gone or did not answer within ``timeout_s`` s.

        """
        if not self._process.running:
            raise InvalidData("the simulator is not running")
        return await self._process.call(request, answer, timeout_s)

    @INSERT_COIN
    async def sim_insert_coin(self, params: InsertCoinParams) -> NoResult:
        """Drop a coin: the device credits it (read at the next poll) or gives it back.

        Under the ``slow`` fault the coin is validated (and this completes) ``delayMs`` late.
        """
        inserted = await self.call(
            {"action": "insertCoin", "value": params.value},
            _Inserted,
            CONTROL_TIMEOUT_S + MAX_DELAY_MS / 1000,
        )
        if not inserted.accepted:
            self.host.sim_output(self.device_id, "returned", ReturnedCoin(value=params.value))
        return NoResult()

    @CCTALK_FAULT
    async def sim_fault(self, params: CctalkFaultParams) -> NoResult:
        """Apply a fault to the device."""
        await self.call({"action": "fault", **msgspec.to_builtins(params)}, _Empty)
        return NoResult()
