"""A simulated MCP23017 on a simulated I2C bus, answering smbus2 calls with its registers.

The chip models what the driver can observe through the bus (datasheet
DS20001952, IOCON.BANK = 0): IODIR, IPOL, GPINTEN, IOCON, GPPU, GPIO and OLAT.
Reading GPIO returns, per pin, the output latch for an output and the external
level (inverted by IPOL) for an input; writing GPIO writes OLAT.  Pins not
driven from outside read high with the pull-up on and low (floating) without.
Power-on state: every pin an input, latches 0.

The bus answers ``read_byte_data``/``write_byte_data`` like ``smbus2.SMBus``
and raises ``OSError(ENXIO)`` for an address nobody acknowledges, as Linux does.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Callable

from devices.transports.mcp23017 import GPIOA, GPPUA, IOCON, IODIRA, IPOLA, OLATA

_REGISTERS = 0x16
_IOCON_B = 0x0B
_GPIOB = GPIOA + 1
_OLATB = OLATA + 1
_BANK = 0x80


class SimMcp23017:
    """The chip's register file and the levels on its pins."""

    def __init__(self) -> None:
        self.registers = bytearray(_REGISTERS)
        self.registers[IODIRA] = self.registers[IODIRA + 1] = 0xFF
        #: Levels driven onto pins from outside (door switches), by pin 0..15.
        self.driven: dict[int, bool] = {}
        #: Called after every write that may change an output.
        self.on_output: Callable[[], None] | None = None
        #: Transfers served (reads and writes), for tests.
        self.transfers = 0

    def _pair(self, register: int) -> int:
        return self.registers[register] | (self.registers[register + 1] << 8)

    def is_output(self, pin: int) -> bool:
        """Whether the driver made ``pin`` an output."""
        return not (self._pair(IODIRA) >> pin) & 1

    def level(self, pin: int) -> bool:
        """The electrical level on ``pin``."""
        if self.is_output(pin):
            return bool((self._pair(OLATA) >> pin) & 1)
        if pin in self.driven:
            return self.driven[pin]
        return bool((self._pair(GPPUA) >> pin) & 1)

    def read(self, register: int) -> int:
        """Serve a register read."""
        self.transfers += 1
        if register in (GPIOA, _GPIOB):
            port = register - GPIOA
            value = 0
            for bit in range(8):
                pin = port * 8 + bit
                level = self.level(pin)
                if not self.is_output(pin) and (self.registers[IPOLA + port] >> bit) & 1:
                    level = not level
                value |= int(level) << bit
            return value
        return self.registers[register]

    def write(self, register: int, value: int) -> None:
        """Serve a register write."""
        self.transfers += 1
        if register in (IOCON, _IOCON_B):
            if value & _BANK:
                raise OSError(errno.EIO, "IOCON.BANK=1 register map is not modelled")
            self.registers[IOCON] = self.registers[_IOCON_B] = value
            return
        if register in (GPIOA, _GPIOB):
            register += OLATA - GPIOA
        self.registers[register] = value & 0xFF
        if register in (OLATA, _OLATB, IODIRA, IODIRA + 1) and self.on_output is not None:
            self.on_output()


class SimI2cBus:
    """An I2C bus with simulated chips, spoken to like ``smbus2.SMBus``.

    ``nack`` makes every chip stop acknowledging (unplugged, no power).
    """

    def __init__(self, chips: dict[int, SimMcp23017]) -> None:
        self.chips = chips
        self.nack = False

    def _chip(self, i2c_addr: int) -> SimMcp23017:
        chip = self.chips.get(i2c_addr)
        if chip is None or self.nack:
            raise OSError(errno.ENXIO, os.strerror(errno.ENXIO))
        return chip

    def read_byte_data(self, i2c_addr: int, register: int) -> int:
        """SMBus read byte data."""
        return self._chip(i2c_addr).read(register)

    def write_byte_data(self, i2c_addr: int, register: int, value: int) -> None:
        """SMBus write byte data."""
        self._chip(i2c_addr).write(register, value)

    def close(self) -> None:
        """Nothing to release."""
