"""A note validator emulated in a process of its own (the ``ssp`` and ``cctalk`` note simulators).

Both keep the real driver and put an emulated validator at the far end of its
serial port, in a process that outlives a crashed daemon
(:mod:`devices.sim.support.device_process`):
:meth:`NoteValidatorSimulator.driver_settings` points the driver's ``port`` at
the pty link, :meth:`~NoteValidatorSimulator.start` reconnects to the device a
killed run left (its escrow, buffer and counters kept) or starts one, and the
class's sim actions ``insertNote`` and ``stacker`` go to it over its control
socket; a note it gives back is published on ``sim/{d}/out/returned``.  Each
subclass names its device module and options, and declares its ``fault``.
"""

from __future__ import annotations

import abc
from collections.abc import Sequence
from typing import Any, ClassVar

import msgspec

from devices.base import DeviceEnv, DeviceHost, Message, NoResult
from devices.cash_acceptor.settings import NoteTable
from devices.errors import InvalidData
from devices.sim.cash_acceptor.actions import INSERT_NOTE, STACKER, InsertNoteParams, StackerParams
from devices.sim.cash_acceptor.behaviour import ReturnedNote
from devices.sim.cash_acceptor.note_device import Fate
from devices.sim.cash_acceptor.ssp_device import ESCROW_TIMEOUT_S, MAX_DELAY_MS
from devices.sim.support.device_process import CONTROL_TIMEOUT_S, DeviceProcess
from devices.sim.support.wire import WireSimulator

#: Longest a fed note may take to be stacked or returned, in s (its escrow timeout and
#: the ``slow`` fault's delay at most).
NOTE_TIMEOUT_S = CONTROL_TIMEOUT_S + ESCROW_TIMEOUT_S + MAX_DELAY_MS / 1000


class _Fed(msgspec.Struct):
    fate: Fate


class NoteValidatorSimulator(WireSimulator, abc.ABC):
    """A note validator in its own process at the far end of the driver's serial port."""

    device_class: ClassVar[str] = "cashAcceptor"
    sim_outputs: ClassVar[dict[str, type[Message]]] = {"returned": ReturnedNote}
    #: The device's module (``python -m``), its short name (its folder under ``state_dir``
    #: is ``sim-{name}``, its control socket ``kioskd-{name}-...``), the driver's settings.
    module: ClassVar[str]
    name: ClassVar[str]
    settings_type: ClassVar[type[NoteTable]]

    def __init__(self, device_id: str, host: DeviceHost, env: DeviceEnv) -> None:
        super().__init__(device_id, host, env)
        #: Where the device's files live; it outlives the daemon's runtime folder.
        self.folder = env.state_dir / f"sim-{self.name}" / device_id
        self._process = DeviceProcess(
            self.module, self.folder, prefix=self.name, what="the simulated note validator"
        )
        self._settings: Any = None

    @property
    def pid(self) -> int | None:
        """The device process's pid once started or found."""
        return self._process.pid

    def driver_settings(self, settings: msgspec.Struct) -> msgspec.Struct:
        """The driver's settings with ``port`` on the pty link; the device copies its notes."""
        if not isinstance(settings, self.settings_type):
            raise TypeError(f"{type(self).__name__} serves {self.settings_type.__name__}")
        self._settings = settings
        return msgspec.structs.replace(settings, port=str(self._process.line))

    @abc.abstractmethod
    def options(self, settings: Any) -> Sequence[str]:
        """The device's command-line options for the driver's ``settings``."""

    @abc.abstractmethod
    def matches(self, settings: Any, stats: dict[str, Any]) -> bool:
        """True when a live device's ``stats`` fit the driver's ``settings``."""

    async def start(self) -> None:
        """Reconnect to the device a killed run left, else start one.

        Raises:
            Offline: socat is missing, the device did not start, or its control
                socket path is too long.
            OSError: the device's folder cannot be created under ``state_dir``.

        """
        settings = self._settings
        if settings is None:
            raise RuntimeError("driver_settings() must run before start()")
        await self._process.start(
            self.options(settings), lambda stats: self.matches(settings, stats)
        )

    async def aclose(self) -> None:
        """Stop the device process (a graceful stop powers the simulated validator off)."""
        await self._process.aclose()

    async def call(
        self, request: dict[str, Any], answer: type[Any], timeout_s: float = CONTROL_TIMEOUT_S
    ) -> Any:
        """Send a control request to the device.

        Raises:
            InvalidData: the simulator is not running.
            Offline: the device process is gone or did not answer in time.

        """
        if not self._process.running:
            raise InvalidData("the simulator is not running")
        return await self._process.call(request, answer, timeout_s)

    @INSERT_NOTE
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

    @STACKER
    async def sim_stacker(self, params: StackerParams) -> NoResult:
        """Remove, fill or put back the stacker."""
        await self.call({"action": "stacker", "state": params.state.value}, dict)
        return NoResult()
