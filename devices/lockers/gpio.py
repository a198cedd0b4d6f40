"""The ``gpio`` locker bank: pulsed locks, door and occupancy switches, on GPIO or MCP23017s.

Each compartment has a lock output (active: the coil is energised and the
latch is free), a door input (active: the door is open) and optionally an
occupancy input (active: something is inside).  Every line is a header pin
(``{pin = 17}``) or a pin of a named MCP23017 (``{expander = "main", pin = 8}``).

Lock coils are rated for short pulses: ``open`` energises the coil for
``lock_pulse_ms``, then rests it for at least ``lock_cooldown_ms``, and pulses
again until the door is seen open or the open deadline passes; a coil is never
pulsed twice within its cool-down, across commands too.  A spring-loaded door
pops open on the first pulse; a door that sticks gets another pulse.

Expander inputs are polled every ``poll_ms`` and count once two reads in a row
agree; header inputs are debounced by the gpiozero bridge.  Every ``open`` and
``assign`` is recorded in the append-only audit table
(:mod:`devices.lockers.audit`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
from collections.abc import Callable
from typing import Annotated, Literal

import msgspec
from gpiozero.pins import Factory
from msgspec import Meta

from devices.base import Command, CommandContext, DeviceEnv, DeviceHost, DeviceState, OpenClosed
from devices.errors import DeviceError, Offline
from devices.transports.claims import PinClaim, gpio_line
from devices.transports.gpio import (
    InputPin,
    Inputs,
    Output,
    OutputPin,
    PinFactoryName,
    open_pin_factory,
)
from devices.transports.mcp23017 import ExpanderSettings, Mcp23017, open_bus

from .audit import AuditLog, audit_path
from .protocol import LockerLayout, Lockers

log = logging.getLogger(__name__)

_GPIO_MAX = 27
_EXPANDER_MAX = 15


class LockerOutput(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """A lock coil's line.

    Attributes:
        pin: BCM number, or the expander pin (A0..A7 = 0..7, B0..B7 = 8..15).
        expander: name of the MCP23017 in ``expanders``; none for a header pin.
        active_high: the line is driven high to energise the coil (through a driver stage).

    """

    pin: Annotated[int, Meta(ge=0, le=_GPIO_MAX)]
    expander: str | None = None
    active_high: bool = True


class LockerInput(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """A door or occupancy switch's line.

    Attributes:
        pin: BCM number, or the expander pin (A0..A7 = 0..7, B0..B7 = 8..15).
        expander: name of the MCP23017 in ``expanders``; none for a header pin.
        active_high: the line is high when the door is open / something is inside.
        pull: internal resistor; an expander has pull-ups only.
        debounce_ms: header pins only: a level counts once stable this long, ms.

    """

    pin: Annotated[int, Meta(ge=0, le=_GPIO_MAX)]
    expander: str | None = None
    active_high: bool = True
    pull: Literal["up", "down", "off"] = "off"
    debounce_ms: Annotated[int, Meta(ge=0, le=1_000)] = 20


class CompartmentPins(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """One compartment's lines.

    Attributes:
        lock: the lock coil.
        door: the door switch (active: open).
        occupied: the occupancy sensor (active: something inside), if fitted.

    """

    lock: LockerOutput
    door: LockerInput
    occupied: LockerInput | None = None


def _reference_bank() -> list[CompartmentPins]:
    """Eight compartments on MCP23017 ``main``: coils on A0..A7, reed switches on B0..B7."""
    return [
        CompartmentPins(
            lock=LockerOutput(pin=n, expander="main"),
            door=LockerInput(pin=8 + n, expander="main", pull="up"),
        )
        for n in range(8)
    ]


class GpioLockersSettings(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Settings of a GPIO locker bank (defaults: the reference wiring of docs/gpio.md).

    Attributes:
        pin_factory: which gpiozero pin factory drives header pins.
        expanders: MCP23017 chips by name.
        compartments: compartment 1, 2, ... in order.
        lock_pulse_ms: how long a coil is energised per pulse, ms.
        lock_cooldown_ms: least rest between two pulses of one coil, ms.
        open_timeout_ms: ``open`` fails with timeOut if the door is not open within this, ms.
        left_open_ms: a door open longer than this raises ``compartmentLeftOpen``, ms.
        poll_ms: how often expander inputs are read, ms.

    """

    pin_factory: PinFactoryName = ""
    expanders: dict[str, ExpanderSettings] = msgspec.field(
        default_factory=lambda: {"main": ExpanderSettings()}
    )
    compartments: Annotated[list[CompartmentPins], Meta(min_length=1, max_length=64)] = (
        msgspec.field(default_factory=_reference_bank)
    )
    lock_pulse_ms: Annotated[int, Meta(ge=10, le=5_000)] = 500
    lock_cooldown_ms: Annotated[int, Meta(ge=0, le=60_000)] = 1_500
    open_timeout_ms: Annotated[int, Meta(ge=10, le=120_000)] = 30_000
    left_open_ms: Annotated[int, Meta(ge=10, le=3_600_000)] = 60_000
    poll_ms: Annotated[int, Meta(ge=5, le=1_000)] = 20

    def __post_init__(self) -> None:
        """Check expander references, expander pin numbers and pulls."""
        for use, line in self._lines():
            if line.expander is None:
                continue
            if line.expander not in self.expanders:
                raise ValueError(f"{use}: no expander {line.expander!r} in `expanders`")
            if line.pin > _EXPANDER_MAX:
                raise ValueError(f"{use}: an expander pin is 0..15 (found {line.pin})")
            if isinstance(line, LockerInput) and line.pull == "down":
                raise ValueError(f"{use}: an MCP23017 has pull-ups only")

    def _lines(self) -> list[tuple[str, LockerOutput | LockerInput]]:
        lines: list[tuple[str, LockerOutput | LockerInput]] = []
        for index, pins in enumerate(self.compartments):
            lines += [(f"compartments.{index}.lock", pins.lock)]
            lines += [(f"compartments.{index}.door", pins.door)]
            if pins.occupied is not None:
                lines += [(f"compartments.{index}.occupied", pins.occupied)]
        return lines

    def pin_claims(self) -> list[PinClaim]:
        """Every header and expander pin wired (see :mod:`devices.transports.claims`)."""
        return [
            PinClaim(
                gpio_line(line.pin)
                if line.expander is None
                else self.expanders[line.expander].line(line.pin),
                use,
            )
            for use, line in self._lines()
        ]


def _level(active: bool, active_high: bool) -> bool:
    return active == active_high


class _Chip:
    """One expander in use: its chip, which pins drive, and the debounced input levels."""

    def __init__(self, chip: Mcp23017) -> None:
        self.chip = chip
        self.outputs = 0
        self.pull_ups = 0
        self.safe_levels = 0
        self.levels = 0
        self._last = 0


class _LockerIo:
    """Every line of the bank, claimed with the locks de-energised."""

    def __init__(self, settings: GpioLockersSettings) -> None:
        self.settings = settings
        self._factory: Factory | None = None
        self._owned = False
        self._locks: dict[int, Output] = {}
        self._inputs: Inputs | None = None
        self._chips: dict[str, _Chip] = {}
        #: Input name (``door3``, ``occupied3``) -> its line.
        self._named: dict[str, LockerInput] = {}

    @classmethod
    async def open(cls, settings: GpioLockersSettings) -> _LockerIo:
        """Claim every line; coils off.

        Raises:
            Offline: GPIO or an expander is unreachable.
            HardwareError: a header pin is invalid or taken.

        """
        io = cls(settings)
        try:
            await io._open()
        except BaseException:
            await io.close()
            raise
        return io

    async def _open(self) -> None:
        settings = self.settings
        gpio_inputs: dict[str, InputPin] = {}
        for n, pins in enumerate(settings.compartments, start=1):
            self._named[f"door{n}"] = pins.door
            if pins.occupied is not None:
                self._named[f"occupied{n}"] = pins.occupied
            if pins.lock.expander is None:
                spec = OutputPin(pin=pins.lock.pin, active_high=pins.lock.active_high)
                self._locks[n] = Output(f"lock{n}", spec, self._gpio())
            else:
                chip = self._chip(pins.lock.expander)
                chip.outputs |= 1 << pins.lock.pin
                chip.safe_levels |= int(not pins.lock.active_high) << pins.lock.pin
        for name, line in self._named.items():
            if line.expander is None:
                gpio_inputs[name] = InputPin(
                    pin=line.pin,
                    active_high=line.active_high,
                    pull=line.pull,
                    debounce_ms=line.debounce_ms,
                )
            elif line.pull == "up":
                self._chip(line.expander).pull_ups |= 1 << line.pin
        if gpio_inputs:
            self._inputs = Inputs(self._gpio(), gpio_inputs)
        for chip in self._chips.values():
            await chip.chip.configure(chip.outputs, chip.pull_ups, chip.safe_levels)
            chip.levels = chip._last = await chip.chip.read()  # noqa: SLF001

    def _gpio(self) -> Factory:
        if self._factory is None:
            self._factory, self._owned = open_pin_factory(self.settings.pin_factory)
        return self._factory

    def _chip(self, name: str) -> _Chip:
        if name not in self._chips:
            expander = self.settings.expanders[name]
            self._chips[name] = _Chip(Mcp23017(expander, open_bus(expander.bus)))
        return self._chips[name]

    def active(self, name: str) -> bool:
        """The debounced level of input ``name`` (``door3``, ``occupied3``)."""
        line = self._named[name]
        if line.expander is None:
            assert self._inputs is not None
            return self._inputs.active(name)
        high = bool((self._chips[line.expander].levels >> line.pin) & 1)
        return high == line.active_high

    def inputs(self) -> list[str]:
        """Names of every input."""
        return list(self._named)

    async def set_lock(self, compartment: int, energized: bool) -> None:
        """Energise or rest one coil.

        Raises:
            Offline: the expander does not answer.

        """
        line = self.settings.compartments[compartment - 1].lock
        if line.expander is None:
            self._locks[compartment].set(energized)
        else:
            await self._chips[line.expander].chip.write(
                line.pin, _level(energized, line.active_high)
            )

    async def all_locks_off(self) -> None:
        """Rest every coil (header pins first: they cannot fail).

        Raises:
            Offline: an expander does not answer.

        """
        for output in self._locks.values():
            output.set(False)
        for chip in self._chips.values():
            await chip.chip.write_all(chip.safe_levels)

    async def serve(self, changed: Callable[[str], None]) -> None:
        """Report input changes by name until cancelled.

        Raises:
            Offline: an expander stopped answering.

        """
        async with asyncio.TaskGroup() as group:
            if self._inputs is not None:
                group.create_task(self._gpio_edges(self._inputs, changed), name="locker-gpio")
            for name, chip in self._chips.items():
                group.create_task(self._poll(name, chip, changed), name=f"locker-{name}")

    @staticmethod
    async def _gpio_edges(inputs: Inputs, changed: Callable[[str], None]) -> None:
        async for edge in inputs.edges():
            changed(edge.name)
        raise Offline("the lockers' GPIO inputs were closed")

    async def _poll(self, name: str, chip: _Chip, changed: Callable[[str], None]) -> None:
        names = [n for n, line in self._named.items() if line.expander == name]
        while True:
            await asyncio.sleep(self.settings.poll_ms / 1000)
            raw = await chip.chip.read()
            # A bit counts once two reads in a row agree on it.
            settled = ~(raw ^ chip._last) & 0xFFFF  # noqa: SLF001
            chip._last = raw  # noqa: SLF001
            moved = (raw ^ chip.levels) & settled
            if moved:
                chip.levels ^= moved
                for input_name in names:
                    if (moved >> self._named[input_name].pin) & 1:
                        changed(input_name)

    async def close(self) -> None:
        """Rest every coil (best effort on a dead expander), then release every line."""
        with contextlib.suppress(DeviceError):
            await self.all_locks_off()
        for output in self._locks.values():
            output.close()
        if self._inputs is not None:
            self._inputs.close()
        for chip in self._chips.values():
            chip.chip.close()
        if self._factory is not None and self._owned:
            self._factory.close()


class GpioLockers(Lockers[GpioLockersSettings]):
    """A locker bank on GPIO relays and MCP23017 expanders."""

    Settings = GpioLockersSettings

    def __init__(
        self,
        device_id: str,
        host: DeviceHost,
        env: DeviceEnv,
        settings: GpioLockersSettings,
    ) -> None:
        super().__init__(device_id, host, env, settings)
        self._io: _LockerIo | None = None
        self._pulsers: dict[int, asyncio.Task[None]] = {}
        self._rested_at: dict[int, float] = {}
        self.audit_log = AuditLog(audit_path(env.state_dir, device_id))

    @property
    def layout(self) -> LockerLayout:
        """From ``compartments``, ``open_timeout_ms`` and ``left_open_ms``."""
        return LockerLayout(
            compartments=len(self.settings.compartments),
            open_timeout_s=self.settings.open_timeout_ms / 1000,
            left_open_s=self.settings.left_open_ms / 1000,
        )

    async def run(self) -> None:
        """Claim the lines, report every door, and follow the inputs until cancelled.

        Raises:
            Offline: GPIO or an expander is unreachable, or stopped answering.
            HardwareError: a header pin is invalid or taken.

        """
        io = await _LockerIo.open(self.settings)
        self._io = io
        try:
            for name in io.inputs():
                self._changed(name)
            self.set_condition(DeviceState.ONLINE)
            self.refresh_condition()
            await io.serve(self._changed)
        except* DeviceError as group:
            raise group.exceptions[0] from None
        finally:
            self._io = None
            await self._stop_pulsers()
            await io.close()

    def _changed(self, name: str) -> None:
        assert self._io is not None
        active = self._io.active(name)
        if name.startswith("door"):
            self.door_sensed(int(name.removeprefix("door")), OpenClosed.of(active))
        else:
            self.occupied_sensed(int(name.removeprefix("occupied")), active)

    # --- locks -----------------------------------------------------------------------

    async def check_ready(self, command: Command) -> None:
        """Also refuse while the lines are not open (between two runs)."""
        await super().check_ready(command)
        if self._io is None:
            raise Offline("the lockers' lines are not open")

    async def _pulse(self, io: _LockerIo, compartment: int) -> None:
        """Pulse one coil with its cool-down until cancelled."""
        loop = asyncio.get_running_loop()
        pulse_s = self.settings.lock_pulse_ms / 1000
        cooldown_s = self.settings.lock_cooldown_ms / 1000
        while True:
            rested = self._rested_at.get(compartment)
            if rested is not None:
                await asyncio.sleep(max(0.0, rested + cooldown_s - loop.time()))
            await io.set_lock(compartment, energized=True)
            try:
                await asyncio.sleep(pulse_s)
            finally:
                # The rest starts once the coil is off: the write (an I2C transfer on
                # a thread for an expander) may take a while on a busy board.
                try:
                    await io.set_lock(compartment, energized=False)
                finally:
                    self._rested_at[compartment] = loop.time()

    async def _release(self, compartment: int) -> None:
        if self._io is None:
            raise Offline("the lockers' lines are not open")
        self._pulsers[compartment] = asyncio.create_task(
            self._pulse(self._io, compartment), name=f"{self.id}-lock{compartment}"
        )

    async def _relock(self, compartment: int) -> None:
        pulser = self._pulsers.pop(compartment, None)
        if pulser is not None:
            pulser.cancel()
            # wait() lets our own cancellation through; the pulser's end is not an error here.
            await asyncio.wait([pulser])
            failure = None if pulser.cancelled() else pulser.exception()
            if failure is not None:
                log.warning("%s: lock pulser of %d failed: %s", self.id, compartment, failure)
        if self._io is not None:
            await self._io.set_lock(compartment, energized=False)

    async def _stop_pulsers(self) -> None:
        for compartment in list(self._pulsers):
            await self._relock(compartment)

    async def _relock_all(self) -> None:
        await self._stop_pulsers()
        if self._io is not None:
            await self._io.all_locks_off()
            return
        io = await _LockerIo.open(self.settings)  # claims the lines with every coil at rest
        await io.close()

    async def _audit(
        self, action: str, compartment: int, ctx: CommandContext, outcome: str
    ) -> None:
        try:
            await self.audit_log.append(compartment, action, ctx.client_id, ctx.request_id, outcome)
        except sqlite3.Error:
            log.exception("%s: could not record %s of compartment %d", self.id, action, compartment)

    async def aclose(self) -> None:
        """Close the audit and the codes stores: finish their queued writes, stop their threads."""
        await self.audit_log.close()
        await super().aclose()
