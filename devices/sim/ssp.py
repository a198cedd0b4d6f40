"""Wire simulator ``ssp``: an emulated SSP note validator in a process of its own, on a socat pty.

The ``ssp`` driver runs unchanged: :meth:`SspSimulator.driver_settings` points
its ``port`` at a pty link, and the device of :mod:`devices.sim.ssp_device`
answers at the other end with the driver's note list as its channels (and
eSSP when the driver asks for it).  The sim actions are the class's
(``insertNote``, ``stacker``, ``fault``); a note the device gives back is
published on ``sim/{d}/out/returned`` as the behavioural simulator does.  The
device outlives a crashed daemon (:mod:`.device_process`): a note it holds in
escrow then times out back to the citizen, and its stacked count is kept.
"""

from __future__ import annotations

from typing import Any, ClassVar

import msgspec

from devices.base import DeviceEnv, DeviceHost, Message, NoResult, sim_action
from devices.cash_acceptor.ssp_validator import Encryption, SspSettings
from devices.errors import InvalidData

from .cash_acceptor import InsertNoteParams, ReturnedNote, StackerParams
from .device_process import CONTROL_TIMEOUT_S, DeviceProcess
from .ssp_device import ESCROW_TIMEOUT_S, MAX_DELAY_MS, Fate, SspFaultParams
from .wire import WireSimulator

#: The device's module, run as ``python -m``.
MODULE = "devices.sim.ssp_device"
#: Longest a fed note may take to be stacked or returned, in s (its escrow timeout and
#: the ``slow`` fault's delay at most).
NOTE_TIMEOUT_S = CONTROL_TIMEOUT_S + ESCROW_TIMEOUT_S + MAX_DELAY_MS / 1000


class _Fed(msgspec.Struct):
    fate: Fate


class SspSimulator(WireSimulator):
    """An SSP banknote validator, in its own process, at the far end of the driver's port."""

    device_class: ClassVar[str] = "cashAcceptor"
    sim_outputs: ClassVar[dict[str, type[Message]]] = {"returned": ReturnedNote}

    def __init__(self, device_id: str, host: DeviceHost, env: DeviceEnv) -> None:
        super().__init__(device_id, host, env)
        #: Where the device's files live; it outlives the daemon's runtime folder.
        self.folder = env.state_dir / "sim-ssp" / device_id
        self._process = DeviceProcess(
            MODULE, self.folder, prefix="ssp", what="the simulated note validator"
        )
        self._settings: SspSettings | None = None

    @property
    def pid(self) -> int | None:
        """The device process's pid once started or found."""
        return self._process.pid

    def driver_settings(self, settings: msgspec.Struct) -> msgspec.Struct:
        """The driver's settings with ``port`` on the pty link; the device copies its notes."""
        if not isinstance(settings, SspSettings):
            raise TypeError(f"the ssp simulator serves the ssp driver, not {settings!r}")
        self._settings = settings
        return msgspec.structs.replace(settings, port=str(self._process.line))

    def _matches(self, stats: dict[str, Any]) -> bool:
        s = self._settings
        return s is not None and [stats.get(k) for k in ("notes", "address", "essp")] == [
            list(s.notes),
            s.address,
            s.encryption is Encryption.ESSP,
        ]

    async def start(self) -> None:
        """Reconnect to the device a killed run left, else start one.

        Raises:
            Offline: socat is missing, the device did not start, or its control
                socket path is too long.
            OSError: the device's folder cannot be created under ``state_dir``.

        """
        s = self._settings
        if s is None:
            raise RuntimeError("driver_settings() must run before start()")
        options = [
            f"--notes={','.join(map(str, s.notes))}",
            f"--address={s.address}",
            f"--fixed-key={s.fixed_key}",
            *(["--essp"] if s.encryption is Encryption.ESSP else []),
        ]
        await self._process.start(options, self._matches)

    async def aclose(self) -> None:
        """Stop the device process (a graceful stop powers the simulated validator off)."""
        await self._process.aclose()

    async def call(
        self, request: dict[str, Any], answer: type[Any], timeout_s: float = CONTROL_TIMEOUT_S
    ) -> Any:
        """Send a control request to the device (see :mod:`devices.sim.ssp_device`).

        Raises:
            InvalidData: the simulator is not running.
            Offline: the device process is gone or did not answer in time.

        """
        if not self._process.running:
            raise InvalidData("the simulator is not running")
        return await self._process.call(request, answer, timeout_s)

    @sim_action("insertNote", InsertNoteParams, "feed a note")
    async def sim_insert_note(self, params: InsertNoteParams) -> NoResult:
        """Feed a note; completes once it is stacked or given back (at most its escrow timeout)."""
        fed = await self.call(
            {"action": "insertNote", "value": params.value, "pullBack": params.pull_back},
            _Fed,
            NOTE_TIMEOUT_S,
        )
        if fed.fate is Fate.RETURNED:
            self.host.sim_output(self.device_id, "returned", ReturnedNote(value=params.value))
        return NoResult()

    @sim_action("stacker", StackerParams, "remove, fill or put back the stacker")
    async def sim_stacker(self, params: StackerParams) -> NoResult:
        """Remove, fill or put back the stacker."""
        await self.call({"action": "stacker", "state": params.state.value}, dict)
        return NoResult()

    @sim_action(
        "fault", SspFaultParams, "inject a fault (also lineCut, crcError, powerCycle, fraud)"
    )
    async def sim_fault(self, params: SspFaultParams) -> NoResult:
        """Apply a fault to the device."""
        await self.call({"action": "fault", **msgspec.to_builtins(params)}, dict)
        return NoResult()
