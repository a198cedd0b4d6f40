"""MCP23017 16-bit I/O expander on I2C, through smbus2 (gpiozero does not cover it).

Register map with IOCON.BANK = 0 (the power-on default), from Microchip's
datasheet DS20001952: each register pair is port A then port B.  Pins are
numbered 0..15: A0..A7 are 0..7, B0..B7 are 8..15.

The chip is driven with byte reads and writes only, on a thread
(``asyncio.to_thread``) with an explicit timeout: a Linux I2C transfer blocks
in the kernel until the adapter answers.  Outputs are written from a shadow of
OLAT, never read-modify-written from GPIO, so an input's level cannot leak
into an output.  At :meth:`Mcp23017.configure` the output latches are cleared
before any pin becomes an output, so a lock coil is never pulsed by a
reconfiguration.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Annotated, Protocol, TypeVar

import msgspec
from msgspec import Meta

from devices.errors import Offline

IODIRA = 0x00
IPOLA = 0x02
GPINTENA = 0x04
IOCON = 0x0A
GPPUA = 0x0C
GPIOA = 0x12
OLATA = 0x14

#: An expander pin: A0..A7 = 0..7, B0..B7 = 8..15.
ExpanderPin = Annotated[
    int, Meta(ge=0, le=15, description="expander pin: A0..A7 = 0..7, B0..B7 = 8..15")
]
I2cAddress = Annotated[int, Meta(ge=0x20, le=0x27, description="7-bit I2C address (A2..A0 straps)")]
_MOCK_PREFIX = "mock:"
_T = TypeVar("_T")


class SMBusLike(Protocol):
    """The part of ``smbus2.SMBus`` the driver uses (byte transfers)."""

    def read_byte_data(self, i2c_addr: int, register: int) -> int:
        """Read one register."""
        ...

    def write_byte_data(self, i2c_addr: int, register: int, value: int) -> None:
        """Write one register."""
        ...

    def close(self) -> None:
        """Release the bus."""
        ...


#: Simulated buses (``bus = "mock:NAME"``), registered by wire simulators and tests.
_MOCK_BUSES: dict[str, Callable[[], SMBusLike]] = {}


class ExpanderSettings(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """One MCP23017.

    Attributes:
        bus: I2C bus number (``/dev/i2c-N``), or ``mock:NAME`` for a simulated bus.
        address: the chip's 7-bit address, 0x20..0x27.
        timeout_ms: longest one register transfer may take, ms.

    """

    bus: Annotated[int, Meta(ge=0, le=255)] | Annotated[str, Meta(pattern=r"^mock:[\w.-]+$")] = 1
    address: I2cAddress = 0x20
    timeout_ms: Annotated[int, Meta(ge=10, le=5_000)] = 200

    def line(self, pin: int) -> str:
        """Claim name of one of its pins, e.g. ``i2c-1/0x20/B3``."""
        port = "AB"[pin // 8]
        return f"i2c-{self.bus}/0x{self.address:02x}/{port}{pin % 8}"


def register_mock_bus(name: str, opener: Callable[[], SMBusLike]) -> None:
    """Make ``bus = "mock:NAME"`` open ``opener()`` (wire simulators, tests)."""
    _MOCK_BUSES[name] = opener


def unregister_mock_bus(name: str) -> None:
    """Forget a simulated bus."""
    _MOCK_BUSES.pop(name, None)


def open_bus(bus: int | str) -> SMBusLike:
    """Open an I2C bus by number, or a registered simulated one.

    Raises:
        Offline: no such bus on this machine.

    """
    if isinstance(bus, str):
        opener = _MOCK_BUSES.get(bus.removeprefix(_MOCK_PREFIX))
        if opener is None:
            raise Offline(f"no simulated I2C bus {bus!r} in this process")
        return opener()
    from smbus2 import SMBus  # noqa: PLC0415 - only real buses need it

    try:
        opened: SMBusLike = SMBus(bus)
    except OSError as exc:
        raise Offline(f"cannot open /dev/i2c-{bus}: {exc.strerror}") from exc
    return opened


class Mcp23017:
    """One chip: pin directions, pull-ups, a 16-bit input read and a shadowed output write.

    Args:
        settings: the chip's bus and address.
        bus: the opened bus (see :func:`open_bus`).

    Every method raises :class:`Offline` when the chip does not answer within
    ``timeout_ms`` or NACKs (wrong address, unplugged, no power).

    """

    def __init__(self, settings: ExpanderSettings, bus: SMBusLike) -> None:
        self.settings = settings
        self._bus = bus
        self._olat = 0
        self._timeout_s = settings.timeout_ms / 1000

    async def _io(self, what: str, call: Callable[[], _T]) -> _T:
        where = f"MCP23017 0x{self.settings.address:02x} on I2C bus {self.settings.bus}"
        try:
            # asyncio.timeout, not wait_for: on 3.11 wait_for loses a cancellation that
            # arrives as the transfer completes, and a poll loop then never ends.
            async with asyncio.timeout(self._timeout_s):
                return await asyncio.to_thread(call)
        except TimeoutError as exc:
            limit = self.settings.timeout_ms
            raise Offline(f"{where}: {what} took longer than {limit} ms") from exc
        except OSError as exc:
            raise Offline(f"{where}: {what} failed: {exc.strerror or exc}") from exc

    def _write_pair(self, register: int, value: int) -> None:
        address = self.settings.address
        self._bus.write_byte_data(address, register, value & 0xFF)
        self._bus.write_byte_data(address, register + 1, (value >> 8) & 0xFF)

    def _read_pair(self, register: int) -> int:
        address = self.settings.address
        low = self._bus.read_byte_data(address, register)
        high = self._bus.read_byte_data(address, register + 1)
        return (high << 8) | low

    async def configure(self, outputs: int, pull_ups: int, levels: int) -> None:
        """Set directions: bits of ``outputs`` drive, the rest read, with ``pull_ups`` on inputs.

        The output latches get ``levels`` (the safe levels) before any pin
        becomes an output.  Interrupts are off (inputs are polled); input
        polarity is not inverted.
        """

        def setup() -> None:
            self._bus.write_byte_data(self.settings.address, IOCON, 0x00)  # BANK=0, sequential
            self._write_pair(OLATA, levels)
            self._write_pair(IPOLA, 0)
            self._write_pair(GPINTENA, 0)
            self._write_pair(GPPUA, pull_ups & ~outputs & 0xFFFF)
            self._write_pair(IODIRA, ~outputs & 0xFFFF)

        await self._io("configuration", setup)
        self._olat = levels & 0xFFFF

    async def read(self) -> int:
        """Read the 16 pin levels (bit n = pin n high)."""
        return await self._io("reading GPIO", lambda: self._read_pair(GPIOA))

    async def write(self, pin: int, high: bool) -> None:
        """Drive one output pin high or low (the other outputs keep their shadowed level)."""
        olat = self._olat | (1 << pin) if high else self._olat & ~(1 << pin)
        await self._io("writing OLAT", lambda: self._write_pair(OLATA, olat))
        self._olat = olat

    async def write_all(self, levels: int) -> None:
        """Drive every output at once (bit n = pin n high)."""
        await self._io("writing OLAT", lambda: self._write_pair(OLATA, levels))
        self._olat = levels & 0xFFFF

    def close(self) -> None:
        """Release the bus."""
        self._bus.close()
