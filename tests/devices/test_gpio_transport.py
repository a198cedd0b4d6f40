"""The gpiozero bridge: explicit pin factories, edges from foreign threads, debounce, outputs."""

from __future__ import annotations

import asyncio
import importlib.abc
import sys
import threading
import time
from types import SimpleNamespace

import pytest
from gpiozero import Device as GpioDevice
from gpiozero.pins.mock import MockFactory

from devices.errors import HardwareError, Offline
from devices.transports import gpio as gpio_transport
from devices.transports.gpio import (
    Edge,
    InputPin,
    Inputs,
    Output,
    OutputPin,
    PwmOutput,
    PwmPin,
    open_pin_factory,
    release_mock_factory,
    share_mock_factory,
)


@pytest.fixture
def mock():
    factory = share_mock_factory("transport-test")
    yield factory
    release_mock_factory("transport-test")


async def collect(inputs: Inputs, into: list[Edge]) -> None:
    async for edge in inputs.edges():
        into.append(edge)  # noqa: PERF401 - the list is read while the iterator runs


def test_factories_are_explicit_and_never_global(mock):
    assert open_pin_factory("mock:transport-test") == (mock, False)
    private, owned = open_pin_factory("mock")
    assert owned
    assert isinstance(private, MockFactory)
    assert private is not mock
    assert GpioDevice.pin_factory is None, "the global pin factory is never set"
    with pytest.raises(Offline, match="no mock pin factory"):
        open_pin_factory("mock:nobody")
    with pytest.raises(ValueError, match="already exists"):
        share_mock_factory("transport-test")


def test_a_factory_that_cannot_load_is_offline(monkeypatch):
    monkeypatch.setenv("GPIOZERO_PIN_FACTORY", "no-such-factory")
    with pytest.raises(Offline, match="no-such-factory"):
        open_pin_factory("")


def test_a_retry_constructs_the_factory_but_imports_nothing_again(monkeypatch):
    """Factory modules load once per process, also one whose library is missing (no GPIO here).

    Python does not remember a failed import: each retry of a GPIO driver on a
    board without GPIO re-ran gpiozero's factory modules (docs/performance.md).
    """
    monkeypatch.delenv("GPIOZERO_PIN_FACTORY", raising=False)
    monkeypatch.setattr(gpio_transport, "_FACTORY_CLASSES", {})
    looked_up: list[str] = []

    class Spy(importlib.abc.MetaPathFinder):
        def find_spec(self, fullname, path, target=None):
            looked_up.append(fullname)

    monkeypatch.setattr(sys, "meta_path", [Spy(), *sys.meta_path])

    def attempt() -> str:
        try:
            factory, _ = open_pin_factory("")
        except Offline as exc:
            return str(exc)
        factory.close()
        return type(factory).__name__

    first = attempt()
    assert "gpiozero.pins.lgpio" in looked_up or "gpiozero.pins.lgpio" in sys.modules
    looked_up.clear()
    assert attempt() == first
    assert looked_up == [], "a retry imported again"

    monkeypatch.setenv("GPIOZERO_PIN_FACTORY", "mock")
    one, owned = open_pin_factory("")
    other, _ = open_pin_factory("")
    assert owned
    assert isinstance(one, MockFactory)
    assert other is not one, "each attempt opens its own factory"
    one.close()
    other.close()


async def test_edges_from_another_thread_reach_the_loop_debounced(mock):
    inputs = Inputs(mock, {"door": InputPin(pin=17, debounce_ms=10)})
    seen: list[Edge] = []
    task = asyncio.create_task(collect(inputs, seen))
    await asyncio.sleep(0)
    pin = mock.pin(17)
    loop_thread = threading.get_ident()
    callback_threads: set[int] = set()
    original = inputs._inputs["door"]._edge

    def spy(active: bool, at: float) -> None:
        callback_threads.add(threading.get_ident())
        original(active, at)

    inputs._inputs["door"]._edge = spy

    def bouncing_switch() -> None:
        # A contact that bounces for 2 ms, then stays closed.
        for level in (1, 0, 1, 0, 1, 0, 1):
            (pin.drive_high if level else pin.drive_low)()
            time.sleep(0.0003)

    worker = threading.Thread(target=bouncing_switch)
    worker.start()
    worker.join()
    assert await inputs.wait("door", True, 1.0)
    await asyncio.sleep(0.05)
    assert [(e.name, e.active) for e in seen] == [("door", True)]
    assert callback_threads == {loop_thread}, "handled on the loop, not gpiozero's thread"
    assert len(pin.states) >= 7, "the line really bounced"
    inputs.close()
    await asyncio.wait_for(task, 1)


async def test_a_glitch_shorter_than_the_debounce_is_ignored(mock, monkeypatch):
    inputs = Inputs(mock, {"entry": InputPin(pin=5, debounce_ms=20)})
    seen: list[Edge] = []
    task = asyncio.create_task(collect(inputs, seen))
    await asyncio.sleep(0)
    pin = mock.pin(5)
    # The edges are stamped when driven: stamp the glitch 1 ms wide whatever the
    # machine's load (a sleep, even time.sleep, may overrun the debounce on a busy one).
    glitch_at = time.monotonic()
    stamps = iter([glitch_at, glitch_at + 0.001])
    monkeypatch.setattr(gpio_transport, "time", SimpleNamespace(monotonic=lambda: next(stamps)))
    pin.drive_high()
    pin.drive_low()
    monkeypatch.undo()
    await asyncio.sleep(0.06)
    assert seen == []
    assert not inputs.active("entry")
    # A level that holds longer than the debounce counts, once, after it.
    started = asyncio.get_running_loop().time()
    pin.drive_high()
    assert await inputs.wait("entry", True, 1.0)
    assert asyncio.get_running_loop().time() - started >= 0.019
    inputs.close()
    await asyncio.wait_for(task, 1)
    assert [e.active for e in seen] == [True]


async def test_a_level_that_held_counts_though_the_loop_ran_late(mock: MockFactory) -> None:
    """Debounced on when the edges happened, not on when a busy loop got to them."""
    inputs = Inputs(mock, {"entry": InputPin(pin=5, debounce_ms=10)})
    seen: list[Edge] = []
    task = asyncio.create_task(collect(inputs, seen))
    await asyncio.sleep(0)
    pin = mock.pin(5)
    # The loop is busy throughout (nothing here yields): a 30 ms pulse and, later,
    # a glitch reach it only afterwards, all at once.
    high_at = time.monotonic()
    pin.drive_high()
    time.sleep(0.03)
    low_at = time.monotonic()
    pin.drive_low()
    time.sleep(0.03)
    pin.drive_high()
    pin.drive_low()
    await asyncio.sleep(0.05)
    assert [e.active for e in seen] == [True, False], "the pulse counts, the glitch does not"
    assert high_at + 0.01 <= seen[0].at < low_at, "settled when it happened, not when run"
    assert not inputs.active("entry")
    inputs.close()
    await asyncio.wait_for(task, 1)


async def test_pulls_and_active_levels(mock):
    inputs = Inputs(
        mock,
        {
            # A normally-closed door switch to ground on a pull-up: open = high = active.
            "nc": InputPin(pin=22, pull="up", active_high=True, debounce_ms=0),
            # A normally-open switch to ground on a pull-up: closed = low = active.
            "no": InputPin(pin=23, pull="up", active_high=False, debounce_ms=0),
            # An active-low sensor with an external resistor.
            "low": InputPin(pin=24, active_high=False, debounce_ms=0),
        },
    )
    assert inputs.active("nc") is True  # pulled up: reads open until the switch closes
    assert inputs.active("no") is False
    mock.pin(22).drive_low()
    mock.pin(23).drive_low()
    mock.pin(24).drive_high()
    await asyncio.sleep(0.01)
    assert inputs.active("nc") is False
    assert inputs.active("no") is True
    assert inputs.active("low") is False
    assert not await inputs.wait("low", True, 0.05)
    inputs.close()


async def test_outputs_start_inactive_and_release_safe(mock):
    pin = mock.pin(20)
    low_side = mock.pin(21)
    out = Output("relay", OutputPin(pin=20), mock)
    inverted = Output("coil", OutputPin(pin=21, active_high=False), mock)
    assert pin.state == 0
    assert low_side.state == 1, "active-low output starts inactive (high)"
    out.set(True)
    inverted.set(True)
    assert (pin.state, low_side.state) == (1, 0)
    out.set(False)
    inverted.set(False)
    assert (pin.state, low_side.state) == (0, 1)
    out.set(True)
    out.close()
    assert pin.state == 0, "switched off before it is released"
    inverted.close()
    # Released pins float: the external resistor (docs/gpio.md) holds the safe level.
    assert pin.function == low_side.function == "input"
    first = Output("a", OutputPin(pin=19), mock)
    with pytest.raises(HardwareError, match="GPIO19"):
        Output("b", OutputPin(pin=19), mock)  # claimed twice
    first.close()


async def test_pwm_output(mock):
    pwm = PwmOutput("led", PwmPin(pin=18, frequency_hz=200), mock)
    pwm.set(0.5, frequency_hz=2)
    assert mock.pin(18).state == 0.5
    assert mock.pin(18).frequency == 2
    pwm.set(1.0)
    assert mock.pin(18).frequency == 200
    pwm.close()
    assert mock.pin(18).state == 0
