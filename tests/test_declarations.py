"""Every declared command and sim action of every registered driver and simulator resolves.

Commands and sim actions are declared on the methods that implement them
(:func:`devices.base.command`, :func:`devices.base.sim_action`).  mypy checks a
declaration against its method; this checks what mypy cannot see: that each
registered class lists them, that each resolves to a coroutine method of the
class (an override included), and that the method's annotations name the
declared parameter and result types.
"""

from __future__ import annotations

import inspect
import typing
from collections.abc import Callable
from typing import Any

import pytest

from devices.base import Command, CommandContext, Device, Message, Params, SimAction, declared
from devices.registry import DEVICE_CLASSES, DRIVERS, SIMULATORS, resolve, resolve_simulator


def _load(kind: str, device_class: str, name: str) -> type[Any]:
    try:
        if kind == "driver":
            return resolve(device_class, name).cls
        return resolve_simulator(device_class, name)
    except ImportError as exc:  # a driver whose library is not on this machine
        pytest.skip(f"{device_class}/{name}: {exc}")


def _hints(function: Callable[..., Any]) -> dict[str, Any]:
    hints = typing.get_type_hints(function)
    params = list(inspect.signature(function).parameters)
    return {"params": [hints.get(p) for p in params[1:]], "return": hints.get("return")}


def _check_method(function: Callable[..., Any], params: type[Params], ctx: bool) -> Any:
    """Assert ``function`` is ``async def f(self, params[, ctx]) -> Message``; its result type."""
    assert inspect.iscoroutinefunction(function), function
    hints = _hints(function)
    assert hints["params"] == ([params, CommandContext] if ctx else [params]), function
    result = hints["return"]
    assert isinstance(result, type), function
    assert issubclass(result, Message), function
    return result


ENTRIES = [("driver", c, n) for c, n in DRIVERS] + [("simulator", c, n) for c, n in SIMULATORS]


@pytest.mark.parametrize(("kind", "device_class", "name"), ENTRIES)
def test_every_declaration_resolves_to_a_matching_method(
    kind: str, device_class: str, name: str
) -> None:
    cls = _load(kind, device_class, name)
    actions = declared(cls, SimAction)
    assert cls.sim_actions == {n: spec for n, (spec, _) in actions.items()}
    if actions:  # every simulator has ``fault``, listed first in ``simActions``
        assert next(iter(cls.sim_actions)) == "fault", list(cls.sim_actions)
    for action, (spec, function) in actions.items():
        assert function is getattr(cls, function.__name__), action
        _check_method(function, spec.params, ctx=False)
    if kind == "simulator":
        return
    assert issubclass(cls, Device)
    commands = declared(cls, Command)
    assert cls.commands, f"{device_class}/{name} declares no command"
    assert set(commands) == set(cls.commands)
    for command, spec in cls.commands.items():
        assert commands[command][0] is spec, command
        function = commands[command][1]
        assert function is getattr(cls, function.__name__), command
        assert _check_method(function, spec.params, ctx=True) is spec.result, command


@pytest.mark.parametrize("device_class", DEVICE_CLASSES)
def test_drivers_of_a_class_declare_the_same_commands(device_class: str) -> None:
    """A driver implements its class's commands; it neither adds nor drops one."""
    names = {
        name: tuple(_load("driver", device_class, name).commands)
        for cls, name in DRIVERS
        if cls == device_class and name != "picamera2"
    }
    assert len(set(names.values())) == 1, names


def test_a_wire_simulator_serves_its_behavioural_twin_s_actions() -> None:
    """Config may swap ``sim`` for a real driver and its wire simulator: the same vocabulary."""
    for device_class, name in SIMULATORS:
        twin = _load("driver", device_class, "sim")
        wire = _load("simulator", device_class, name)
        assert set(wire.sim_actions) <= set(twin.sim_actions), (device_class, name)
        for action, spec in wire.sim_actions.items():
            assert spec.doc, (device_class, name, action)


class _Wrong(Params):
    """A params type no declaration names."""


def _not_a_coroutine(self: object, params: _Wrong, ctx: CommandContext) -> Message:
    raise NotImplementedError


async def _takes_wrong(self: object, params: _Wrong, ctx: CommandContext) -> Message:
    raise NotImplementedError


def test_the_check_is_not_vacuous() -> None:
    """A method that is not a coroutine, or takes another params type, fails the check."""
    _check_method(_takes_wrong, _Wrong, ctx=True)
    with pytest.raises(AssertionError):
        _check_method(_not_a_coroutine, _Wrong, ctx=True)
    with pytest.raises(AssertionError):
        _check_method(_takes_wrong, Params, ctx=True)
