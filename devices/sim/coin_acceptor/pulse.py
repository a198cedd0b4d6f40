"""Wire simulator ``pulse``: a pulse coin acceptor driving gpiozero MockFactory pins.

:meth:`PulseSimulator.driver_settings` registers a MockFactory for the driver
(``pin_factory = "mock:<device>"``) and gives it a fault pin if it has none.
The simulated acceptor then behaves like the hardware, in real time:

- a coin inserted while the INHIBIT line is at its inhibit level, or undriven
  (the wiring's pull makes undriven mean inhibited), comes back out
  (``out/returned``); so does a coin not in the table, or any coin while a
  ``hardwareError``/``jam``/``disconnect`` fault is set;
- an accepted coin becomes a train of N active-low pulses (width and spacing
  from the driver's timing window), after the previous coin's train and a gap
  1.5 times the driver's ``train_gap_ms``; coins queue in the order inserted,
  and each is checked against the inhibit line when its train is due, as a
  real acceptor checks it at the entry of the coin;
- ``garbage`` puts a burst of glitches (pulses far below ``pulse_min_ms``) on
  the line; ``slow`` stretches the spacing (within the gap); ``clear`` ends faults.

:meth:`PulseSimulator.pulse_train` drives arbitrary trains (merged trains,
glitches) for tests.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any, ClassVar

import msgspec

from devices.base import DeviceEnv, DeviceHost, Message, NoResult
from devices.coin_acceptor.pulse import PulseSettings
from devices.errors import InvalidData
from devices.sim.coin_acceptor.actions import INSERT_COIN, InsertCoinParams
from devices.sim.coin_acceptor.behaviour import ReturnedCoin
from devices.sim.support.faults import FAULT_ACTION, FaultKind, FaultParams
from devices.sim.support.wire import WireSimulator
from devices.transports.gpio import MOCK_PREFIX, release_mock_factory, share_mock_factory

log = logging.getLogger(__name__)

#: The fault pin the simulator wires up when the driver's settings name none.
SIM_FAULT_PIN = "GPIO22"
_DEAD = (FaultKind.HARDWARE_ERROR, FaultKind.JAM, FaultKind.DISCONNECT)


class PulseSimulator(WireSimulator):
    """A pulse acceptor on MockFactory pins; see the module docstring."""

    device_class: ClassVar[str] = "coinAcceptor"
    sim_outputs: ClassVar[dict[str, type[Message]]] = {"returned": ReturnedCoin}

    def __init__(self, device_id: str, host: DeviceHost, env: DeviceEnv) -> None:
        super().__init__(device_id, host, env)
        self._name = f"{env.board_id}-{device_id}-{id(self):x}"
        self.settings: PulseSettings | None = None
        self._factory: Any = None
        self._fault: FaultKind | None = None
        self._coins: asyncio.Queue[int] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None
        self._line = asyncio.Lock()

    def driver_settings(self, settings: msgspec.Struct) -> msgspec.Struct:
        """The driver's settings on this simulator's MockFactory (with a fault pin)."""
        if not isinstance(settings, PulseSettings):
            raise TypeError(f"the pulse simulator serves the pulse driver, not {settings!r}")
        self._factory = share_mock_factory(self._name)
        self.settings = msgspec.structs.replace(
            settings,
            pin_factory=MOCK_PREFIX + self._name,
            fault_pin=settings.fault_pin or SIM_FAULT_PIN,
        )
        return self.settings

    def _s(self) -> PulseSettings:
        if self.settings is None:
            raise InvalidData("the simulator is not running")
        return self.settings

    async def start(self) -> None:
        """Start feeding coins to the pulse line."""
        s = self._s()
        self._factory.pin(s.pulse_pin).drive_high()  # idle: the open collector is off
        self._factory.pin(s.fault_pin).drive_high()
        self._task = asyncio.create_task(self._feed(), name=f"{self.device_id}-pulse-acceptor")

    async def aclose(self) -> None:
        """Stop feeding; forget the MockFactory."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        release_mock_factory(self._name)

    # -- the acceptor ------------------------------------------------------------------------

    @property
    def inhibited(self) -> bool:
        """What the acceptor sees on its INHIBIT input (undriven counts as inhibited)."""
        s = self._s()
        pin = self._factory.pin(s.inhibit_pin)
        if pin.function != "output":
            return True
        return bool(pin.state) == (s.inhibit_level == "high")

    def timing(self) -> tuple[float, float, float]:
        """Pulse width, spacing and gap between coins in s, inside the driver's window."""
        s = self._s()
        width = (s.pulse_min_ms + min(s.pulse_max_ms, 4 * s.pulse_min_ms)) / 2000
        spacing = width * (2 if self._fault is FaultKind.SLOW else 1)
        spacing = min(spacing, s.train_gap_ms / 2000)
        return width, spacing, 1.5 * s.train_gap_ms / 1000

    async def pulse_train(
        self, pulses: int, *, width: float | None = None, spacing: float | None = None
    ) -> None:
        """Drive ``pulses`` active-low pulses now (tests: merged trains, glitches)."""
        default_width, default_spacing, _ = self.timing()
        pin = self._factory.pin(self._s().pulse_pin)
        async with self._line:
            for n in range(pulses):
                if n:
                    await asyncio.sleep(default_spacing if spacing is None else spacing)
                pin.drive_low()
                await asyncio.sleep(default_width if width is None else width)
                pin.drive_high()

    async def _feed(self) -> None:
        table = dict(zip(self._s().coins, self._s().pulses, strict=True))
        while True:
            value = await self._coins.get()
            if self.inhibited or self._fault in _DEAD or value not in table:
                self._give_back(value)
                continue
            await self.pulse_train(table[value])
            await asyncio.sleep(self.timing()[2])

    def _give_back(self, value: int) -> None:
        self.host.sim_output(self.device_id, "returned", ReturnedCoin(value=value))

    @INSERT_COIN
    async def sim_insert_coin(self, params: InsertCoinParams) -> NoResult:
        """Drop a coin in; it is pulsed out or given back in its turn."""
        self._coins.put_nowait(params.value)
        return NoResult()

    @FAULT_ACTION
    async def sim_fault(self, params: FaultParams) -> NoResult:
        """Apply a fault: the error output, glitches, slow pulses."""
        kind = None if params.kind is FaultKind.CLEAR else params.kind
        self._fault = kind
        fault_pin = self._factory.pin(self._s().fault_pin)
        if kind in (FaultKind.HARDWARE_ERROR, FaultKind.JAM):
            fault_pin.drive_low()
        else:
            fault_pin.drive_high()
        if kind is FaultKind.GARBAGE:
            await self.glitches(5)
        return NoResult()

    async def glitches(self, count: int) -> None:
        """Put ``count`` spikes far shorter than ``pulse_min_ms`` on the pulse line."""
        await self.pulse_train(count, width=0.0, spacing=0.002)
