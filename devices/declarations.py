"""Commands and sim actions, declared on the methods that implement them.

:func:`command` and :func:`sim_action` mark a method with its declaration
(parameter and result types, deadlines, flags); :func:`declared` collects a
class's declarations, base classes first, each resolved to the method the class
has (an override keeps its base's declaration).  :class:`SimActions` collects
the sim actions of behavioural and wire simulators; ``Device`` its commands.
"""

from __future__ import annotations

import functools
import types
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import ClassVar, Protocol, TypeVar

from .messages import CommandContext, Message, Params

ParamsT = TypeVar("ParamsT", bound=Params)
ResultT = TypeVar("ResultT", bound=Message)
OwnerT = TypeVar("OwnerT")

#: What :func:`command` decorates: ``async def m(self, params, ctx) -> result``.
CommandMethod = Callable[[OwnerT, ParamsT, CommandContext], Awaitable[ResultT]]
#: What :func:`sim_action` decorates: ``async def m(self, params) -> result``.
SimMethod = Callable[[OwnerT, ParamsT], Awaitable[ResultT]]
#: A declared command of one device, ready to run: ``await run(params, ctx)``.
RunCommand = Callable[[Params, CommandContext], Awaitable[Message]]
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
        """Collect the sim actions declared on the class's methods, ``fault`` first.

        Every simulator has ``fault``; listing it first keeps one order for every
        class and simulator in ``description``'s ``simActions``, whichever class
        body declares it (a behavioural simulator inherits it, a wire simulator
        declares its own after its other actions).
        """
        super().__init_subclass__(**kwargs)
        actions = declared(cls, SimAction)
        actions = dict(sorted(actions.items(), key=lambda item: item[0] != "fault"))
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
