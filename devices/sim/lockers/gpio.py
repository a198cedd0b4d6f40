"""Wire simulator of the ``gpio`` locker bank: latches, doors and contents behind the lines.

Each compartment's latch is free only while its coil is energised (its lock
line active, on a header pin or an MCP23017 pin of a simulated I2C bus).  A
door opens only if the citizen pulls while the latch is free; the citizen
keeps pulling for one lock cycle (pulse plus cool-down), so a driver that keeps
pulsing during ``open`` lets them in.  A shut door latches by itself.  Door
reed switches and occupancy sensors drive their input lines.

Sim actions as the behavioural simulator: ``openCompartment`` (pull a door),
``closeCompartment`` (shut it); ``out/lock`` shows every coil change.  The
``disconnect`` fault makes the expanders stop acknowledging on the I2C bus;
``clear`` brings them back.  A bank wired to header pins alone has no bus to
lose: it refuses ``disconnect`` (``unsupportedCommand``), as it refuses the
other kinds.  Tests may also put papers in (:meth:`load`) and
take them out (:meth:`collect`) to drive the occupancy sensors.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Callable
from typing import ClassVar

import msgspec

from devices.base import DeviceEnv, DeviceHost, Message, NoResult
from devices.errors import InvalidData, SequenceError, Unsupported
from devices.lockers.gpio import GpioLockersSettings, LockerInput
from devices.sim.lockers.actions import CLOSE_COMPARTMENT, OPEN_COMPARTMENT, CompartmentParams
from devices.sim.lockers.behaviour import LockOutput
from devices.sim.support.faults import FAULT_ACTION, FaultKind, FaultParams
from devices.sim.support.gpio_pins import GpioWireSimulator, SimPin
from devices.sim.support.mcp23017 import SimI2cBus, SimMcp23017
from devices.transports.mcp23017 import register_mock_bus, unregister_mock_bus

#: Margin the citizen keeps pulling beyond one lock cycle, s.
GRIP_MARGIN_S = 0.1


class GpioLockersSimulator(GpioWireSimulator):
    """Latches, doors and contents of a simulated locker bank."""

    device_class: ClassVar[str] = "lockers"
    sim_outputs: ClassVar[dict[str, type[Message]]] = {"lock": LockOutput}

    def __init__(self, device_id: str, host: DeviceHost, env: DeviceEnv) -> None:
        super().__init__(device_id, host, env)
        self.bus_name = f"{device_id}-{secrets.token_hex(4)}"
        self.bus = SimI2cBus({})
        self.doors_open: set[int] = set()
        self.contents: set[int] = set()
        self._energized: dict[int, bool] = {}
        self._free: dict[int, asyncio.Event] = {}
        self._door_pins: dict[int, Callable[[bool], None]] = {}
        self._occupied_pins: dict[int, Callable[[bool], None]] = {}
        self._coils: dict[int, Callable[[], bool]] = {}

    def driver_settings(self, settings: msgspec.Struct) -> msgspec.Struct:
        """Pins on the shared MockFactory; every expander on the simulated bus."""
        assert isinstance(settings, GpioLockersSettings)
        bus = f"mock:{self.bus_name}"
        expanders = {
            name: msgspec.structs.replace(expander, bus=bus)
            for name, expander in settings.expanders.items()
        }
        return super().driver_settings(msgspec.structs.replace(settings, expanders=expanders))

    def configure(self, settings: msgspec.Struct) -> None:
        """Keep the wiring."""
        assert isinstance(settings, GpioLockersSettings)
        super().configure(settings)
        self.bank = settings

    @property
    def count(self) -> int:
        """Number of compartments."""
        return len(self.bank.compartments)

    async def start(self) -> None:
        """Create the chips and pins: doors shut, compartments empty, coils watched."""
        await super().start()
        chips = {name: SimMcp23017() for name in self.bank.expanders}
        self.bus.chips = {self.bank.expanders[name].address: chip for name, chip in chips.items()}
        self.chips = chips
        for chip in chips.values():
            chip.on_output = self._coils_written
        register_mock_bus(self.bus_name, lambda: self.bus)
        for n, pins in enumerate(self.bank.compartments, start=1):
            self._free[n] = asyncio.Event()
            self._door_pins[n] = self._input(pins.door)
            if pins.occupied is not None:
                self._occupied_pins[n] = self._input(pins.occupied)
            lock = pins.lock
            if lock.expander is None:
                pin = self.output_pin(lock.pin, self._coils_changed)
                self._coils[n] = self._reader(pin, lock.active_high)
            else:
                chip = chips[lock.expander]
                self._coils[n] = self._chip_reader(chip, lock.pin, lock.active_high)
            self._sense(n)

    def _input(self, line: LockerInput) -> Callable[[bool], None]:
        if line.expander is None:
            pin = self.input_pin(line.pin, not line.active_high)
            return lambda active: pin.drive(active == line.active_high)
        chip = self.chips[line.expander]

        def drive(active: bool) -> None:
            chip.driven[line.pin] = active == line.active_high

        return drive

    @staticmethod
    def _reader(pin: SimPin, active_high: bool) -> Callable[[], bool]:
        return lambda: (pin.output > 0) == active_high

    @staticmethod
    def _chip_reader(chip: SimMcp23017, pin: int, active_high: bool) -> Callable[[], bool]:
        return lambda: chip.is_output(pin) and chip.level(pin) == active_high

    async def aclose(self) -> None:
        """Take the bus away."""
        unregister_mock_bus(self.bus_name)
        await super().aclose()

    def energized(self, compartment: int) -> bool:
        """Whether the compartment's coil is energised now."""
        return self._coils[compartment]()

    def _coils_written(self) -> None:
        """An expander output write, on the driver's I/O thread."""
        self.loop.call_soon_threadsafe(self._coils_changed)

    def _coils_changed(self) -> None:
        for n, coil in self._coils.items():
            energized = coil()
            if energized is not self._energized.get(n, False):
                self._energized[n] = energized
                self.host.sim_output(
                    self.device_id, "lock", LockOutput(compartment=n, energized=energized)
                )
            if energized:
                self._free[n].set()
            else:
                self._free[n].clear()

    def _sense(self, compartment: int) -> None:
        self._door_pins[compartment](compartment in self.doors_open)
        drive = self._occupied_pins.get(compartment)
        if drive is not None:
            drive(compartment in self.contents)

    def _compartment(self, params: CompartmentParams) -> int:
        n = params.compartment
        if not 1 <= n <= self.count:
            raise InvalidData(f"compartment must be 1 to {self.count} (found {n})")
        return n

    # --- the citizen and staff -------------------------------------------------------

    async def pull(self, compartment: int) -> None:
        """Pull the door's handle for one lock cycle; it opens if the latch frees meanwhile.

        Raises:
            SequenceError: already open, or the latch held throughout.

        """
        if compartment in self.doors_open:
            raise SequenceError(f"compartment {compartment} is already open")
        cycle_s = (self.bank.lock_pulse_ms + self.bank.lock_cooldown_ms) / 1000
        try:
            async with asyncio.timeout(cycle_s + GRIP_MARGIN_S):
                await self._free[compartment].wait()
        except TimeoutError:
            raise SequenceError(f"compartment {compartment} is locked") from None
        self.doors_open.add(compartment)
        self._sense(compartment)

    def shut(self, compartment: int) -> None:
        """Shut a door (it latches by itself).

        Raises:
            SequenceError: the door is already shut.

        """
        if compartment not in self.doors_open:
            raise SequenceError(f"compartment {compartment} is already shut")
        self.doors_open.discard(compartment)
        self._sense(compartment)

    def load(self, compartment: int) -> None:
        """Put papers in an open compartment."""
        assert compartment in self.doors_open, "open the door first"
        self.contents.add(compartment)
        self._sense(compartment)

    def collect(self, compartment: int) -> None:
        """Take the papers out of an open compartment."""
        assert compartment in self.doors_open, "open the door first"
        self.contents.discard(compartment)
        self._sense(compartment)

    @OPEN_COMPARTMENT
    async def sim_open_compartment(self, params: CompartmentParams) -> NoResult:
        """``openCompartment``: pull a door.

        Raises:
            InvalidData: no such compartment.
            SequenceError: already open, or locked.

        """
        await self.pull(self._compartment(params))
        return NoResult()

    @CLOSE_COMPARTMENT
    async def sim_close_compartment(self, params: CompartmentParams) -> NoResult:
        """``closeCompartment``: shut a door.

        Raises:
            InvalidData: no such compartment.
            SequenceError: already shut.

        """
        self.shut(self._compartment(params))
        return NoResult()

    @FAULT_ACTION
    async def sim_fault(self, params: FaultParams) -> NoResult:
        """``disconnect``: the expanders stop acknowledging; ``clear``: they answer again.

        Raises:
            Unsupported: other kinds, and ``disconnect`` on a bank without expanders.

        """
        if params.kind is FaultKind.DISCONNECT:
            if not self.bank.expanders:
                raise Unsupported("a locker bank on header pins alone has no bus to disconnect")
            self.bus.nack = True
        elif params.kind is FaultKind.CLEAR:
            self.bus.nack = False
        else:
            raise Unsupported(
                f"a GPIO locker bank simulates disconnect and clear, not {params.kind}"
            )
        return NoResult()
