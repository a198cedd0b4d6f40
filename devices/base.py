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
"""

from __future__ import annotations

import abc
import asyncio
import functools
import logging
import types
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import ClassVar, Generic, Protocol, TypeVar

import msgspec

from .errors import HardwareError, NotReady, Offline

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


class Message(msgspec.Struct, rename="camel", kw_only=True, omit_defaults=False):
    """Base of every typed payload on the wire (results, events, state detail)."""


class Params(msgspec.Struct, rename="camel", kw_only=True):
    """Base of command parameters.

    The envelope keys (``requestId``, ``timeoutMs``, ``replyTo``) are read by the
    request lifecycle; unknown keys are ignored so newer UIs keep working.
    """


class NoParams(Params):
    """A command or action that takes no parameters."""


class NoResult(Message):
    """A command that completes with an empty result."""


ParamsT = TypeVar("ParamsT", bound=Params)
ResultT = TypeVar("ResultT", bound=Message)
OwnerT = TypeVar("OwnerT")
#: A driver's settings type (a frozen, validated msgspec struct).
SettingsT_co = TypeVar("SettingsT_co", bound=msgspec.Struct, covariant=True)
#: A device class's state detail type.
DetailT_co = TypeVar("DetailT_co", bound=Message, covariant=True)

#: What :func:`command` decorates: ``async def m(self, params, ctx) -> result``.
CommandMethod = Callable[[OwnerT, ParamsT, "CommandContext"], Awaitable[ResultT]]
#: What :func:`sim_action` decorates: ``async def m(self, params) -> result``.
SimMethod = Callable[[OwnerT, ParamsT], Awaitable[ResultT]]
#: A declared command of one device, ready to run: ``await run(params, ctx)``.
RunCommand = Callable[[Params, "CommandContext"], Awaitable[Message]]
#: A declared sim action of one simulator, ready to run: ``await run(params)``.
RunSimAction = Callable[[Params], Awaitable[Message]]

#: A declared method as its class holds it (unbound; the first argument is the instance).
DeclaredMethod = Callable[..., Awaitable[Message]]

#: Key in a decorated function's ``__dict__`` holding its declaration.
_DECLARATION = "__kioskd_declaration__"


@dataclass(frozen=True, slots=True)
class Command:
    """One command of a device class, declared with :func:`command` on its method.

    Attributes:
        params: the parameter type the request payload is decoded into.
        result: the result type (for documentation and the AsyncAPI document).
        default_timeout_ms: deadline when the request gives none, in ms.
        max_timeout_ms: upper bound for ``timeoutMs``, in ms.
        long: waits for the world (a scan, a card); ended by cancel or deadline.
        queued: drives hardware, so it goes through the device's FIFO queue.
        side_effect: a repeated requestId is answered from the idempotency store.
        interruptible: may be stopped at its deadline once started (a print may not).
        staff: a staff operation: only a requester with the technician role may run
            it (``[api] staff_users``); others are refused ``userError`` before any queue.
        events: event replies sent to the requester alone, by name: while it runs, or,
            for a command that starts a standing mode (scanner ``setMode``), after its
            completion until the mode ends.

    """

    params: type[Params]
    result: type[Message]
    default_timeout_ms: int
    max_timeout_ms: int
    long: bool = False
    queued: bool = True
    side_effect: bool = False
    interruptible: bool = True
    staff: bool = False
    events: Mapping[str, type[Message]] = field(default_factory=dict)


def command(
    name: str,
    params: type[ParamsT],
    result: type[ResultT],
    default_timeout_ms: int,
    max_timeout_ms: int,
    *,
    long: bool = False,
    queued: bool = True,
    side_effect: bool = False,
    interruptible: bool = True,
    staff: bool = False,
    events: Mapping[str, type[Message]] | None = None,
) -> Callable[[CommandMethod[OwnerT, ParamsT, ResultT]], CommandMethod[OwnerT, ParamsT, ResultT]]:
    """Declare the decorated method as the device command ``name`` (see :class:`Command`).

    The method keeps working as a plain method; the class it is defined in (and
    every subclass, which may override it) lists it in ``commands``.  mypy checks
    that the method takes ``params`` and returns ``result``.
    """

    def declare(
        method: CommandMethod[OwnerT, ParamsT, ResultT],
    ) -> CommandMethod[OwnerT, ParamsT, ResultT]:
        vars(method)[_DECLARATION] = (
            name,
            Command(
                params,
                result,
                default_timeout_ms,
                max_timeout_ms,
                long=long,
                queued=queued,
                side_effect=side_effect,
                interruptible=interruptible,
                staff=staff,
                events=dict(events or {}),
            ),
        )
        return method

    return declare


@dataclass(frozen=True, slots=True)
class RetiredEvent:
    """A v1 broadcast event that is no longer published (kept in the docs, deprecated).

    Attributes:
        data: the data type it had, so the generated docs still describe it.
        instead: what a UI does now, in a sentence.

    """

    data: type[Message]
    instead: str


@dataclass(frozen=True, slots=True)
class SimAction:
    """A simulator control action (``kiosk/v1/{b}/sim/{d}/{action}``), see :func:`sim_action`.

    Attributes:
        params: the parameter type the action's payload is decoded into.
        doc: one-line summary for the docs.

    """

    params: type[Params]
    doc: str


def sim_action(
    name: str, params: type[ParamsT], doc: str
) -> Callable[[SimMethod[OwnerT, ParamsT, ResultT]], SimMethod[OwnerT, ParamsT, ResultT]]:
    """Declare the decorated method as the sim action ``name``; ``doc`` is its one-line summary.

    A vocabulary shared by several simulators (``fault``) is one ``sim_action(...)``
    value applied to each of their methods.
    """

    def declare(
        method: SimMethod[OwnerT, ParamsT, ResultT],
    ) -> SimMethod[OwnerT, ParamsT, ResultT]:
        vars(method)[_DECLARATION] = (name, SimAction(params, doc))
        return method

    return declare


SpecT = TypeVar("SpecT", Command, SimAction)


def declared(cls: type, kind: type[SpecT]) -> dict[str, tuple[SpecT, DeclaredMethod]]:
    """The ``kind`` declarations of ``cls`` and its bases by name, with their functions.

    In declaration order, base classes first.  The function is the one ``cls``
    has: a subclass overriding a declared method without re-declaring it keeps
    the declaration and runs its own code.
    """
    found: dict[str, tuple[SpecT, DeclaredMethod]] = {}
    for klass in reversed(cls.__mro__):
        for value in vars(klass).values():
            if not isinstance(value, types.FunctionType):
                continue
            declaration = vars(value).get(_DECLARATION)
            if declaration is not None and isinstance(declaration[1], kind):
                found[declaration[0]] = (declaration[1], getattr(cls, value.__name__))
    return found


class SimActions:
    """Base of whatever serves ``sim/`` actions: collects its :func:`sim_action` methods.

    Devices (a behavioural simulator declares actions, a real driver none) and
    wire simulators derive from it.
    """

    #: Sim actions by name, collected from the class's :func:`sim_action` methods.
    sim_actions: ClassVar[Mapping[str, SimAction]] = {}
    _sim_functions: ClassVar[Mapping[str, DeclaredMethod]] = {}

    def __init_subclass__(cls, **kwargs: object) -> None:
        """Collect the sim actions declared on the class's methods."""
        super().__init_subclass__(**kwargs)
        actions = declared(cls, SimAction)
        if actions:
            cls.sim_actions = {name: spec for name, (spec, _) in actions.items()}
            cls._sim_functions = {name: fn for name, (_, fn) in actions.items()}

    def sim_action(self, name: str) -> RunSimAction | None:
        """The sim action ``name`` bound to this simulator, or None if it has none."""
        function = self._sim_functions.get(name)
        if function is None:
            return None
        run: RunSimAction = functools.partial(function, self)
        return run


class SimControl(Protocol):
    """What serves a device's ``sim/`` actions: its behavioural simulator or a wire simulator."""

    @property
    def sim_actions(self) -> Mapping[str, SimAction]:
        """Sim actions by name."""
        ...

    def sim_action(self, name: str) -> RunSimAction | None:
        """The sim action ``name`` bound to this simulator, or None if it has none."""
        ...


class WireSimulation(SimControl, Protocol):
    """What the daemon needs of a wire simulator (:mod:`devices.sim.wire` has the base).

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


EventSink = Callable[[str, Message], None]


@dataclass(slots=True)
class CommandContext:
    """What a running command knows about its request.

    Attributes:
        request_id: the requester's ``requestId``.
        client_id: the requester: the broker user named in its request topic
            (``req/{c}/...``), or the client id of its reply topic (legacy topics).
        deadline: ``loop.time()`` at which the command must end, in seconds.
        emit: sends an ``event`` reply to the requester alone (its reply topic,
            correlation data and codec).  It stays valid after the command completes:
            a command that starts a standing mode keeps it and sends the mode's events
            through it until the mode ends.
        staff: the requester has the technician role, so a command may do for it what
            it refuses a citizen-facing UI (end another client's deposit).

    """

    request_id: str
    client_id: str
    deadline: float
    emit: EventSink
    staff: bool = False

    def remaining(self) -> float:
        """Seconds left before the deadline (never negative)."""
        return max(0.0, self.deadline - asyncio.get_running_loop().time())


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
