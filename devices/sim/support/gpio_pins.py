"""What GPIO wire simulators share: a MockFactory the driver also uses, and pins the world drives.

A GPIO wire simulator registers a MockFactory under a unique name and points
the driver's ``pin_factory`` at it (``mock:NAME``).  Before the driver claims
its pins the simulator creates them as :class:`SimPin`: inputs are driven by a
simulated sensor (a push-pull output, so the driver's pull setting does not
move them), outputs report every write so the simulated mechanism can react.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Callable
from typing import Any

import msgspec
from gpiozero.pins.mock import MockFactory, MockPWMPin

from devices.base import DeviceEnv, DeviceHost
from devices.sim.support.wire import WireSimulator
from devices.transports.gpio import release_mock_factory, share_mock_factory

#: Glitches of a contact or sensor line at each change.
BOUNCE_FLIPS = 2

#: Level changes a pin keeps in ``states``.  gpiozero's MockPin keeps every one for
#: good; a simulated kiosk toggles its lights for hours, so the oldest are dropped.
STATE_HISTORY = 100


class SimPin(MockPWMPin):  # type: ignore[misc]  # gpiozero is untyped
    """A mock pin wired to the simulated world.

    As an input it shows the level its sensor drives (:meth:`drive`); as an
    output it calls :attr:`on_write` after every write (state or frequency),
    even one that changes nothing, on the writer's thread.
    """

    def __init__(self, factory: MockFactory, info: Any) -> None:
        self.level: bool | None = None
        self.on_write: Callable[[], None] | None = None
        super().__init__(factory, info)

    def drive(self, level: bool) -> None:
        """The sensor drives the line to ``level`` (held through any pull setting)."""
        self.level = level
        if self._function == "input":
            if level:
                self.drive_high()
            else:
                self.drive_low()

    def bounce_to(self, level: bool, flips: int = BOUNCE_FLIPS) -> None:
        """Move the line to ``level`` with contact bounce: ``flips`` glitches, then the level.

        The edges come back to back, microseconds apart, as a real contact's do.  The
        driver stamps edges as they happen, so however late the loop runs, a bounce
        never holds long enough to pass for a level.
        """
        for _ in range(flips):
            self.drive(level)
            self.drive(not level)
        self.drive(level)

    def _set_pull(self, value: str) -> None:
        super()._set_pull(value)
        if self.level is not None:
            self.drive(self.level)

    def _change_state(self, value: float) -> bool:
        changed: bool = super()._change_state(value)
        if len(self.states) > 2 * STATE_HISTORY:  # trimmed in batches: amortised O(1)
            del self.states[:-STATE_HISTORY]
        return changed

    def _set_state(self, value: float) -> None:
        super()._set_state(value)
        if self.on_write is not None:
            self.on_write()

    def _set_frequency(self, value: float | None) -> None:
        super()._set_frequency(value)
        if self.on_write is not None and self._function == "output":
            self.on_write()

    @property
    def output(self) -> float:
        """The level the driver writes: 0..1 (0 while the pin is not an output)."""
        return float(self._state) if self._function == "output" else 0.0

    @property
    def frequency_hz(self) -> float | None:
        """The PWM frequency the driver set, Hz (None: steady)."""
        value = self._frequency
        return None if value is None else float(value)


class GpioWireSimulator(WireSimulator):
    """Base of GPIO wire simulators: owns the shared MockFactory and its pins.

    Subclasses create their pins in :meth:`start` with :meth:`input_pin` and
    :meth:`output_pin`, from the driver settings kept by :meth:`driver_settings`.
    """

    def __init__(self, device_id: str, host: DeviceHost, env: DeviceEnv) -> None:
        super().__init__(device_id, host, env)
        self.factory_name = f"{device_id}-{secrets.token_hex(4)}"
        self.factory = share_mock_factory(self.factory_name)
        self._loop: asyncio.AbstractEventLoop | None = None

    def driver_settings(self, settings: msgspec.Struct) -> msgspec.Struct:
        """The driver's settings on this simulator's pins (``pin_factory = "mock:NAME"``)."""
        settings = msgspec.structs.replace(settings, pin_factory=f"mock:{self.factory_name}")
        self.configure(settings)
        return settings

    def configure(self, settings: msgspec.Struct) -> None:
        """Keep what the simulator needs from the driver's settings (pins, polarities)."""
        self.settings = settings

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        """The loop the simulator serves on (set by :meth:`start`)."""
        assert self._loop is not None, "start() the simulator first"
        return self._loop

    async def start(self) -> None:
        """Remember the loop; subclasses create their pins after calling this."""
        self._loop = asyncio.get_running_loop()

    def input_pin(self, number: int, level: bool) -> SimPin:
        """Create a header pin a simulated sensor drives, at ``level``."""
        pin = self.factory.pin(number, pin_class=SimPin)
        assert isinstance(pin, SimPin)
        pin.drive(level)
        return pin

    def output_pin(
        self,
        number: int,
        changed: Callable[[], None],
        at_write: Callable[[], None] | None = None,
    ) -> SimPin:
        """Create a header pin the driver writes.

        ``changed`` runs on the loop after a write; ``at_write`` (for checks that
        must see every intermediate level) runs at once, on the writer's thread.
        """
        pin = self.factory.pin(number, pin_class=SimPin)
        assert isinstance(pin, SimPin)
        loop = self.loop

        def written() -> None:
            if at_write is not None:
                at_write()
            loop.call_soon_threadsafe(changed)

        pin.on_write = written
        return pin

    async def aclose(self) -> None:
        """Forget the shared factory (the pins keep their last levels for inspection)."""
        release_mock_factory(self.factory_name)
