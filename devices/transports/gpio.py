"""The gpiozero bridge: pins from a factory chosen by settings, edges on the event loop.

Every gpiozero device is built with an explicit ``pin_factory``; nothing here
reads or sets gpiozero's global ``Device.pin_factory`` (gpiozero issue #1087:
one process-wide factory that closing any device may tear down).  The factory
comes from the driver's ``pin_factory`` setting (:func:`open_pin_factory`).

gpiozero calls edge callbacks on its own threads (lgpio's and RPi.GPIO's alert
threads; MockPin calls them in whoever drives the pin).  :class:`Inputs` stamps
each edge there with ``time.monotonic()``, hands it to the event loop with
``loop.call_soon_threadsafe`` and debounces it there on those stamps: a level
counts once it has been stable for the input's ``debounce_ms`` between its edges,
however late a busy loop runs them (judged when the loop ran them, a level held
longer than the debounce but ended before a stalled loop caught up was lost).
gpiozero's own ``bounce_time`` is not used: each backend implements it
differently (an edge lock-out on RPi.GPIO, a glitch filter on lgpio) and
MockPin not at all, so it could neither be relied on nor tested.

Output writes are a register or ioctl write that does not block, so they are
made on the loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from dataclasses import dataclass
from importlib.metadata import entry_points
from typing import TYPE_CHECKING, Annotated, Literal, Self

import msgspec
from gpiozero import (
    DigitalInputDevice,
    DigitalOutputDevice,
    GPIOZeroError,
    PWMOutputDevice,
)
from gpiozero.pins import Factory
from msgspec import Meta

from devices.errors import HardwareError, Offline

if TYPE_CHECKING:
    from gpiozero.pins.mock import MockFactory

#: BCM numbers of the 40-pin header.
BcmPin = Annotated[int, Meta(ge=0, le=27, description="BCM (GPIO) number of a header pin")]
PinFactoryName = Annotated[
    str,
    Meta(
        pattern=r"^(|lgpio|rpigpio|pigpio|native|mock|mock:[A-Za-z0-9_.-]+)$",
        description=(
            "gpiozero pin factory: empty = GPIOZERO_PIN_FACTORY or gpiozero's own choice "
            "(lgpio first); `mock` = a private MockFactory (simulation); `mock:NAME` = the "
            "MockFactory a wire simulator shares with the driver"
        ),
    ),
]

#: Prefix of a shared MockFactory's name in a ``pin_factory`` setting.
MOCK_PREFIX = "mock:"
#: MockFactories shared between a wire simulator and the driver it serves, by name.
_SHARED_MOCKS: dict[str, MockFactory] = {}
#: gpiozero's default pin factories in the order its own chooser tries them
#: (``gpiozero.devices.Device._default_pin_factory``): lgpio first, the pure-Python one last.
DEFAULT_FACTORIES = ("lgpio", "rpigpio", "pigpio", "native")
#: Each pin factory's class by name, or why it cannot be loaded (:func:`_factory_class`).
_FACTORY_CLASSES: dict[str, type[Factory] | str] = {}

log = logging.getLogger(__name__)


class InputPin(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """A digital input (a sensor or a switch).

    Attributes:
        pin: BCM number.
        active_high: the line is high when the sensor is active (covered, open, tripped).
        pull: the SoC's internal resistor: ``up``, ``down`` or ``off`` (external resistor).
        debounce_ms: a level counts once stable this long, ms (0: every edge counts).

    """

    pin: BcmPin
    active_high: bool = True
    pull: Literal["up", "down", "off"] = "off"
    debounce_ms: Annotated[int, Meta(ge=0, le=1_000)] = 10


class OutputPin(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """A digital output (a relay, a lock coil, a motor driver input, an LED).

    Attributes:
        pin: BCM number.
        active_high: the line is driven high to switch the load on.  Wire loads
            so that low (and a floating, pulled-down line) is the safe state.

    """

    pin: BcmPin
    active_high: bool = True


class PwmPin(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """A PWM output (motor speed, LED brightness).

    Attributes:
        pin: BCM number.
        active_high: the load is on while the line is high.
        frequency_hz: PWM frequency when driven steadily, Hz.

    """

    pin: BcmPin
    active_high: bool = True
    frequency_hz: Annotated[int, Meta(ge=1, le=20_000)] = 500


def share_mock_factory(name: str) -> MockFactory:
    """Create the MockFactory ``pin_factory = "mock:NAME"`` resolves to (wire simulators, tests).

    Its pins support PWM.  Raises ``ValueError`` if the name is taken.
    """
    if name in _SHARED_MOCKS:
        raise ValueError(f"mock pin factory {name!r} already exists")
    factory = _new_mock_factory()
    _SHARED_MOCKS[name] = factory
    return factory


def _new_mock_factory() -> MockFactory:
    # gpiozero's mock pins only when a simulation asks for them: not on a board.
    from gpiozero.pins.mock import MockFactory, MockPWMPin  # noqa: PLC0415

    return MockFactory(pin_class=MockPWMPin)


def release_mock_factory(name: str) -> None:
    """Forget a shared MockFactory (its pins stay as they are for whoever holds it)."""
    _SHARED_MOCKS.pop(name, None)


def open_pin_factory(name: str) -> tuple[Factory, bool]:
    """Return the pin factory a driver's ``pin_factory`` setting names, and whether it owns it.

    The caller closes an owned factory when it is done; a shared mock belongs
    to its simulator.  An empty name means ``GPIOZERO_PIN_FACTORY``, or else the
    first of :data:`DEFAULT_FACTORIES` that opens, as gpiozero's own chooser
    would pick; each factory's class is looked up once per process
    (:func:`_factory_class`), so a retry on a board without GPIO only constructs
    the factories whose libraries exist (the native one reads the board revision).

    Raises:
        Offline: no factory opens here (no GPIO chip, missing library, an
            unknown shared mock); the message names each factory's reason.

    """
    if name == "mock":
        return _new_mock_factory(), True
    if name.startswith(MOCK_PREFIX):
        shared = _SHARED_MOCKS.get(name.removeprefix(MOCK_PREFIX))
        if shared is None:
            raise Offline(f"no mock pin factory {name!r} in this process")
        return shared, False
    wanted = name or os.environ.get("GPIOZERO_PIN_FACTORY", "")
    reasons: list[str] = []
    for candidate in (wanted,) if wanted else DEFAULT_FACTORIES:
        found = _factory_class(candidate)
        if isinstance(found, str):
            reasons.append(f"{candidate}: {found}")
            continue
        try:
            factory: Factory = found()
        except Exception as exc:  # noqa: BLE001 - as gpiozero's chooser: any failure tries the next
            reasons.append(f"{candidate}: {exc}")
            continue
        if reasons:
            log.warning(
                "GPIO through gpiozero's %s pin factory (%s)", candidate, "; ".join(reasons)
            )
        return factory, True
    raise Offline(f"no GPIO through the {wanted or 'default'} pin factory: {'; '.join(reasons)}")


def _factory_class(name: str) -> type[Factory] | str:
    """The class of gpiozero's pin factory ``name``, or why it cannot load here; once per process.

    ``name`` is an entry point of the ``gpiozero_pin_factories`` group (as in
    ``GPIOZERO_PIN_FACTORY``, matched verbatim, then lower-cased).  Python does not
    remember a failed import: looked up again, a factory whose library is missing
    re-ran its module on every retry (~0.6 ms for gpiozero's three, most of an
    absent GPIO device's idle cost).  A library installed later is seen after a
    restart of the daemon.
    """
    if name not in _FACTORY_CLASSES:
        entries = entry_points(group="gpiozero_pin_factories")
        entry = next((e for e in entries if e.name == name), None) or next(
            (e for e in entries if e.name == name.lower()), None
        )
        if entry is None:
            _FACTORY_CLASSES[name] = f"gpiozero has no pin factory {name!r}"
        else:
            try:
                _FACTORY_CLASSES[name] = entry.load()
            except Exception as exc:  # noqa: BLE001 - a module that cannot load (ImportError, RPi.GPIO's RuntimeError off a Pi)
                _FACTORY_CLASSES[name] = str(exc) or type(exc).__name__
    return _FACTORY_CLASSES[name]


@dataclass(frozen=True, slots=True)
class Edge:
    """A debounced change of one input.

    Attributes:
        name: the input's name in its :class:`Inputs`.
        active: its new level.
        at: when the level settled (its edge plus the debounce), seconds on the
            clock of ``loop.time()``; earlier than now if the loop ran late.

    """

    name: str
    active: bool
    at: float


@contextlib.contextmanager
def _opening(what: str) -> Iterator[None]:
    """Map gpiozero's errors while claiming pins to the device error tree."""
    try:
        yield
    except GPIOZeroError as exc:
        raise HardwareError(f"cannot open {what}: {exc}") from exc
    except OSError as exc:
        raise Offline(f"cannot open {what}: {exc}") from exc


class _Input:
    """One input: raw edges from gpiozero's thread, a debounced level on the loop."""

    def __init__(
        self,
        name: str,
        spec: InputPin,
        factory: Factory,
        loop: asyncio.AbstractEventLoop,
        settled: Callable[[Edge], None],
    ) -> None:
        self.name = name
        self._loop = loop
        self._debounce_s = spec.debounce_ms / 1000
        self._settled = settled
        pull_up = {"up": True, "down": False, "off": None}[spec.pull]
        with _opening(f"input {name!r} on GPIO{spec.pin}"):
            self._device = DigitalInputDevice(
                spec.pin,
                pull_up=pull_up,
                active_state=spec.active_high if pull_up is None else None,
                pin_factory=factory,
            )
        # With an internal pull gpiozero fixes the active level (pull-up: low is
        # active); a normally-closed switch on a pull-up is active high, so flip.
        self._invert = pull_up is not None and spec.active_high == pull_up
        self._raw = self.stable = bool(self._device.is_active) ^ self._invert
        #: When the raw level began, ``time.monotonic()`` in the callback's thread.
        self._raw_at = time.monotonic()
        self._timer: asyncio.TimerHandle | None = None
        self._device.when_activated = lambda: self._from_thread(not self._invert)
        self._device.when_deactivated = lambda: self._from_thread(self._invert)

    def _from_thread(self, active: bool) -> None:
        # Stamped here: the loop may run the edge much later than it happened.
        at = time.monotonic()
        with contextlib.suppress(RuntimeError):  # the loop closed during shutdown
            self._loop.call_soon_threadsafe(self._edge, active, at)

    def _edge(self, active: bool, at: float) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        # The level this edge ends may have held past the debounce while the loop
        # was busy and its timer had not run: it settled then, so it counts.
        if self._raw != self.stable and at - self._raw_at >= self._debounce_s:
            self._settle()
        self._raw, self._raw_at = active, at
        if self._debounce_s:
            self._timer = self._loop.call_at(at + self._debounce_s, self._settle)
        else:
            self._settle()

    def _settle(self) -> None:
        self._timer = None
        if self._raw != self.stable:
            self.stable = self._raw
            self._settled(Edge(self.name, self.stable, self._raw_at + self._debounce_s))

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._device.when_activated = None
        self._device.when_deactivated = None
        self._device.close()


class Inputs:
    """Named, debounced inputs; their edges as an async iterator, their levels as properties.

    Create and use it on the event loop.  Close it (or use ``with``) to release
    the pins and end every :meth:`edges` iterator.

    Raises (from the constructor):
        HardwareError: a pin is invalid or already claimed.
        Offline: the GPIO chip cannot be opened.

    """

    def __init__(self, factory: Factory, specs: Mapping[str, InputPin]) -> None:
        loop = asyncio.get_running_loop()
        self._queues: set[asyncio.Queue[Edge | None]] = set()
        self._waiters: list[tuple[str, bool, asyncio.Future[None]]] = []
        self._inputs: dict[str, _Input] = {}
        try:
            for name, spec in specs.items():
                self._inputs[name] = _Input(name, spec, factory, loop, self._settled)
        except BaseException:
            self.close()
            raise

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def active(self, name: str) -> bool:
        """The debounced level of input ``name``."""
        return self._inputs[name].stable

    def _settled(self, edge: Edge) -> None:
        for queue in self._queues:
            queue.put_nowait(edge)
        for waiter in list(self._waiters):
            name, active, future = waiter
            if name == edge.name and active == edge.active and not future.done():
                future.set_result(None)

    async def edges(self) -> AsyncIterator[Edge]:
        """Every debounced edge from now on, in order; ends when the inputs close.

        Subscribed when iteration starts, so read :meth:`active` and start
        iterating without awaiting in between to miss nothing.
        """
        queue: asyncio.Queue[Edge | None] = asyncio.Queue()
        self._queues.add(queue)
        try:
            while (edge := await queue.get()) is not None:
                yield edge
        finally:
            self._queues.discard(queue)

    async def wait(self, name: str, active: bool, timeout_s: float | None) -> bool:
        """Wait until input ``name`` settles at ``active``; False after ``timeout_s`` seconds."""
        if self.active(name) == active:
            return True
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        waiter = (name, active, future)
        self._waiters.append(waiter)
        try:
            async with asyncio.timeout(timeout_s):
                await future
        except TimeoutError:
            return False
        finally:
            self._waiters.remove(waiter)
        return True

    def close(self) -> None:
        """Release the pins and end every edge iterator; idempotent."""
        for item in self._inputs.values():
            item.close()
        self._inputs.clear()
        for queue in self._queues:
            queue.put_nowait(None)


class Output:
    """A digital output, inactive (safe) from the moment it is claimed."""

    def __init__(self, name: str, spec: OutputPin, factory: Factory) -> None:
        self.name = name
        with _opening(f"output {name!r} on GPIO{spec.pin}"):
            self._device = DigitalOutputDevice(
                spec.pin,
                active_high=spec.active_high,
                initial_value=False,
                pin_factory=factory,
            )

    @property
    def active(self) -> bool:
        """Whether the load is switched on."""
        return bool(self._device.value)

    def set(self, active: bool) -> None:
        """Switch the load on or off."""
        self._device.value = active

    def close(self) -> None:
        """Switch off, then release the pin (it floats: the external pull-down holds it)."""
        if not self._device.closed:
            self._device.off()
            self._device.close()


class PwmOutput:
    """A PWM output, off from the moment it is claimed."""

    def __init__(self, name: str, spec: PwmPin, factory: Factory) -> None:
        self.name = name
        self.frequency_hz = spec.frequency_hz
        with _opening(f"PWM output {name!r} on GPIO{spec.pin}"):
            self._device = PWMOutputDevice(
                spec.pin,
                active_high=spec.active_high,
                initial_value=0,
                frequency=spec.frequency_hz,
                pin_factory=factory,
            )

    @property
    def value(self) -> float:
        """Duty cycle, 0..1."""
        return float(self._device.value)

    def set(self, value: float, frequency_hz: float | None = None) -> None:
        """Set the duty cycle (0..1) and the frequency (Hz; None: the configured one)."""
        self._device.frequency = frequency_hz or self.frequency_hz
        self._device.value = value

    def close(self) -> None:
        """Switch off, then release the pin."""
        if not self._device.closed:
            self._device.value = 0
            self._device.close()


def on_loop(
    loop: asyncio.AbstractEventLoop, callback: Callable[[float], None]
) -> Callable[[], None]:
    """Wrap ``callback(t)`` for a raw gpiozero edge: stamped in gpiozero's thread, run on the loop.

    For drivers that time edges themselves (a pulse train) rather than wait for
    debounced levels (:class:`Inputs`).  ``t`` is ``time.monotonic()`` at the edge,
    in seconds: the clock of ``loop.time()``.
    """

    def edge() -> None:
        loop.call_soon_threadsafe(callback, time.monotonic())

    return edge
