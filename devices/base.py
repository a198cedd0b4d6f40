"""What every device class shares: state, commands, events and the host seam.

A device class (``devices/scanner/protocol.py``, ...) is a small ABC deriving
from :class:`Device`, parametrised by its driver's settings type and its state
detail type.  It declares each command on the method that implements it, with
:func:`command` (parameter and result types, deadlines, whether it is long or
has side effects), lists its events, and leaves the hardware-facing methods
abstract.  A real driver and its simulator twin both subclass it, so the daemon
and the contract tests only ever see the class.  Simulators declare their
``sim/`` actions the same way, with :func:`sim_action`.

The device never talks MQTT.  It reports to a :class:`DeviceHost` (the daemon,
or a test) with plain calls made on the event loop.

The wire's payload types live in :mod:`devices.messages`, the declaration
machinery in :mod:`devices.declarations`; both are re-exported here.
"""

from __future__ import annotations

import abc
import asyncio
import functools
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import ClassVar, Generic, Protocol, TypeVar

import msgspec

from .declarations import (
    Command,
    DeclaredMethod,
    RetiredEvent,
    RunCommand,
    RunSimAction,
    SimAction,
    SimActions,
    SimControl,
    command,
    declared,
    sim_action,
)
from .errors import HardwareError, NotReady, Offline
from .messages import (
    CommandContext,
    EventSink,
    Message,
    NoParams,
    NoResult,
    Params,
)

# Device classes import what they share from here, the names of messages.py and
# declarations.py included.
__all__ = [
    "HEALTHY",
    "UNREACHABLE",
    "AnyDevice",
    "Command",
    "CommandContext",
    "DetailT_co",
    "Device",
    "DeviceEnv",
    "DeviceHost",
    "DeviceState",
    "EventSink",
    "Message",
    "NoParams",
    "NoResult",
    "OpenClosed",
    "Params",
    "RetiredEvent",
    "RunCommand",
    "RunSimAction",
    "SettingsT_co",
    "SimAction",
    "SimActions",
    "SimControl",
    "WireSimulation",
    "WireSimulatorFactory",
    "command",
    "declared",
    "sim_action",
]

log = logging.getLogger(__name__)


class DeviceState(StrEnum):
    """Device ``state`` values of wire API v1."""

    STARTING = "starting"
    ONLINE = "online"
    BUSY = "busy"
    OFFLINE = "offline"
    NO_DEVICE = "noDevice"
    USER_ERROR = "userError"
    HARDWARE_ERROR = "hardwareError"
    FRAUD_ATTEMPT = "fraudAttempt"
    POWER_OFF = "powerOff"


class OpenClosed(StrEnum):
    """A door, cover or shutter as its switch sees it (state detail values)."""

    OPEN = "open"
    CLOSED = "closed"

    @classmethod
    def of(cls, is_open: bool) -> OpenClosed:
        """``open`` if ``is_open``, else ``closed``."""
        return cls.OPEN if is_open else cls.CLOSED


#: States in which a queued command is refused with ``deviceNotReady`` without reaching the driver.
UNREACHABLE = frozenset(
    {DeviceState.STARTING, DeviceState.OFFLINE, DeviceState.NO_DEVICE, DeviceState.POWER_OFF},
)
#: States that keep the daemon ``ready`` rather than ``degraded``.
HEALTHY = frozenset({DeviceState.ONLINE, DeviceState.BUSY})


#: A driver's settings type (a frozen, validated msgspec struct).
SettingsT_co = TypeVar("SettingsT_co", bound=msgspec.Struct, covariant=True)
#: A device class's state detail type.
DetailT_co = TypeVar("DetailT_co", bound=Message, covariant=True)


class WireSimulation(SimControl, Protocol):
    """What the daemon needs of a wire simulator (:mod:`devices.sim.support.wire` has the base).

    The far end of a real driver's transport: the daemon points the driver's
    settings at it, starts it before the driver runs, routes the device's ``sim/``
    actions to it and closes it after the driver.  Production code knows it by this
    protocol only; the registry imports a simulator when config names one.
    """

    def driver_settings(self, settings: msgspec.Struct) -> msgspec.Struct:
        """The driver's settings pointed at this simulator; called once, before :meth:`start`."""
        ...

    async def start(self) -> None:
        """Start serving; returns once the driver can connect."""
        ...

    async def aclose(self) -> None:
        """Stop serving and release the transport; idempotent."""
        ...


#: A wire simulator class as the registry returns it: ``factory(device_id, host, env)``.
WireSimulatorFactory = Callable[[str, "DeviceHost", "DeviceEnv"], WireSimulation]


class DeviceHost(Protocol):
    """Where a device reports; implemented by the daemon and by test harnesses.

    All methods are called on the event loop and must not block.
    """

    def device_state(self, device_id: str, state: DeviceState, detail: Message) -> None:
        """Record and publish a state change."""

    def device_event(self, device_id: str, event: str, data: Message) -> None:
        """Publish an unsolicited event (broadcast: never identity data)."""

    def sim_output(self, device_id: str, what: str, data: Message) -> None:
        """Publish what the physical world would see (simulators only)."""


@dataclass(frozen=True, slots=True)
class DeviceEnv:
    """Daemon-wide facts a driver may need.

    Attributes:
        board_id: the board id, e.g. ``hcm-q6-0001``.
        state_dir: writable directory for durable state (ledger, audit tables).
        runtime_dir: directory for sockets and pty links of this daemon run.

    """

    board_id: str
    state_dir: Path
    runtime_dir: Path


class Device(SimActions, abc.ABC, Generic[SettingsT_co, DetailT_co]):
    """Base of every device class, generic in its driver's settings and its state detail.

    Subclasses set the class variables, declare their commands with
    :func:`command` (simulators their actions with :func:`sim_action`) and
    implement :meth:`run` and :meth:`safe_state`.  State is split in two:
    ``condition`` is what the hardware is (online, userError, ...) and ``busy``
    is set by the command queue; the published state is ``busy`` only while the
    condition is online.
    """

    device_class: ClassVar[str]
    #: The class's commands by wire name, collected from its :func:`command` methods.
    commands: ClassVar[Mapping[str, Command]] = {}
    events: ClassVar[Mapping[str, type[Message]]]
    #: v1 events the class no longer broadcasts, by name (documented as deprecated).
    retired_events: ClassVar[Mapping[str, RetiredEvent]] = {}
    #: The state detail type (set by the device class; a type variable cannot be a ClassVar).
    detail_type: type[DetailT_co]
    #: What a simulator publishes on ``sim/{d}/out/{what}``, by ``what``.
    sim_outputs: ClassVar[Mapping[str, type[Message]]] = {}
    #: The settings type a config table is validated into (set by each driver).
    Settings: type[SettingsT_co]
    #: This device's validated settings.
    settings: SettingsT_co
    _command_functions: ClassVar[Mapping[str, DeclaredMethod]] = {}

    def __init_subclass__(cls, **kwargs: object) -> None:
        """Collect the commands declared on the class's methods."""
        super().__init_subclass__(**kwargs)
        commands = declared(cls, Command)
        if commands:
            cls.commands = {name: spec for name, (spec, _) in commands.items()}
            cls._command_functions = {name: fn for name, (_, fn) in commands.items()}

    def __init__(
        self, device_id: str, host: DeviceHost, env: DeviceEnv, settings: SettingsT_co
    ) -> None:
        """A device ``device_id`` reporting to ``host``, with its validated ``settings``.

        Opens nothing (:meth:`run` does); a driver's own ``__init__`` adds its state.
        """
        self.id = device_id
        self.host = host
        self.env = env
        self.settings = settings
        self._condition = DeviceState.STARTING
        self._busy = False
        self._detail: DetailT_co = self.detail_type()
        self._published: tuple[DeviceState, bytes] | None = None
        self._wake = asyncio.Event()

    def command(self, name: str) -> RunCommand | None:
        """The command ``name`` bound to this device, or None if the class has none."""
        function = self._command_functions.get(name)
        if function is None:
            return None
        run: RunCommand = functools.partial(function, self)
        return run

    async def execute(self, name: str, params: Params, ctx: CommandContext) -> Message:
        """Run the command ``name`` as the request lifecycle does: :meth:`check_ready`, then it.

        For callers without the lifecycle (tests, benchmarks); no queue, no deadline.

        Raises:
            KeyError: the class has no command ``name``.
            DeviceError: from :meth:`check_ready` or the command.

        """
        run = self.command(name)
        if run is None:
            raise KeyError(name)
        await self.check_ready(self.commands[name])
        return await run(params, ctx)

    async def check_ready(self, command: Command) -> None:
        """Raise if this device cannot start ``command`` now; called before every command.

        The request lifecycle applies it, under the command's deadline, before the
        command's method runs; an error from it completes the request as its code
        says, and a side-effect request it refused may be sent again under the same
        ``requestId`` (nothing ran).  The base refuses a queued command while the
        device is unreachable; a class or driver whose hardware can be asked extends
        it (calling ``super()`` first).

        Raises:
            Offline: a queued command while the device is offline.
            NotReady: a queued command while it is starting, absent or powered off.

        """
        if command.queued and self.state in UNREACHABLE:
            unreachable = Offline if self.state is DeviceState.OFFLINE else NotReady
            raise unreachable(f"{self.id} is {self.state.value}")

    @property
    def simulated(self) -> bool:
        """True when this device is backed by a simulator (serves ``sim/`` actions)."""
        return bool(self.sim_actions)

    @property
    def state(self) -> DeviceState:
        """The state as published."""
        if self._busy and self._condition is DeviceState.ONLINE:
            return DeviceState.BUSY
        return self._condition

    @property
    def condition(self) -> DeviceState:
        """The hardware condition, ignoring the queue's ``busy`` flag."""
        return self._condition

    @property
    def detail(self) -> DetailT_co:
        """The current state detail."""
        return self._detail

    def set_condition(self, condition: DeviceState, **changes: object) -> None:
        """Change the condition and/or detail fields; publishes only on a real change."""
        self._condition = condition
        if changes:
            self._detail = msgspec.structs.replace(self._detail, **changes)
        self._publish_state()
        self._wake.set()

    def update_detail(self, **changes: object) -> None:
        """Change detail fields, keeping the condition."""
        self.set_condition(self._condition, **changes)

    def set_busy(self, busy: bool) -> None:
        """Called by the command queue around each queued command."""
        self._busy = busy
        self._publish_state()

    def _publish_state(self) -> None:
        key = (self.state, msgspec.msgpack.encode(self._detail))
        if key != self._published:
            self._published = key
            self.host.device_state(self.id, self.state, self._detail)

    def wake(self) -> None:
        """Re-check the predicates of :meth:`wait_until` (drivers call it when a sensor changes)."""
        self._wake.set()

    def check_waiting(self) -> None:
        """Raise if a command waiting in :meth:`wait_until` must give up; extend per class.

        Raises:
            Offline: the device went offline.
            HardwareError: the device failed.

        """
        if self._condition is DeviceState.OFFLINE:
            raise Offline(f"{self.device_class} {self.id!r} went offline")
        if self._condition is DeviceState.HARDWARE_ERROR:
            raise HardwareError(f"{self.device_class} {self.id!r} failed")

    async def wait_until(self, predicate: Callable[[], bool], timeout_s: float | None) -> bool:
        """Wait until ``predicate()`` holds; False if ``timeout_s`` (seconds) passes first.

        ``None`` waits until the command is cancelled.  Re-checked on every
        :meth:`wake` and condition change.

        Raises:
            Offline, HardwareError: from :meth:`check_waiting`.

        """
        try:
            async with asyncio.timeout(timeout_s):
                while not predicate():
                    self.check_waiting()
                    self._wake.clear()
                    await self._wake.wait()
        except TimeoutError:
            return predicate()
        return True

    def emit(self, event: str, data: Message) -> None:
        """Broadcast an event of this device class (never identity data)."""
        self.host.device_event(self.id, event, data)

    def status_reasons(self) -> list[str]:
        """Why this device makes the daemon ``degraded`` beyond its state (door open, tamper)."""
        return []

    def capabilities(self) -> Mapping[str, object]:
        """Static facts a UI may adapt to (published in ``description``)."""
        return {}

    @abc.abstractmethod
    async def run(self) -> None:
        """Open the hardware, set the condition, and serve until it is lost.

        Called by the supervisor, again after every failure.  Never returns
        normally except by cancellation.

        Raises:
            Offline: the hardware vanished or never answered.
            DeviceError: any other failure; the supervisor retries with backoff.

        """

    async def aclose(self) -> None:
        """Release what the driver holds beyond :meth:`run` (a database, a thread).

        Called once at daemon shutdown, after :meth:`safe_state`.
        """

    @abc.abstractmethod
    async def safe_state(self) -> None:
        """Put the hardware where an unattended kiosk must be left.

        Coins inhibited, motors off, shutters and locks closed, lights off.
        Must work without :meth:`run` having been called (``kioskd safe-state``)
        and finish within a few seconds; errors are raised, not swallowed.
        """


#: A device of whatever class, settings and detail (both type parameters are covariant).
AnyDevice = Device[msgspec.Struct, Message]
