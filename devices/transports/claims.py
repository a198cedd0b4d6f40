"""Which hardware lines a device's settings wire, so one config cannot wire a line twice.

A driver's ``Settings`` type that drives pins implements :class:`ClaimsPins`;
the config loader (``daemon.config``) asks every device for its claims and
refuses a line claimed twice, naming both uses, before any hardware opens.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol, runtime_checkable


@dataclass(frozen=True, slots=True)
class PinClaim:
    """One line a setting wires.

    Attributes:
        pin: the line, named the same way by every driver: ``GPIO17`` for a
            header pin (BCM numbering), ``i2c-1/0x20/B3`` for an expander pin.
        use: the settings key that wires it, relative to the device table
            (``motor.forward``, ``compartments.3.lock``).

    """

    pin: str
    use: str


@runtime_checkable
class ClaimsPins(Protocol):
    """Settings that wire hardware lines."""

    def pin_claims(self) -> Iterable[PinClaim]:
        """Every line these settings wire, with the key that wires it."""
        ...


def gpio_line(pin: int) -> str:
    """The claim name of a header pin (BCM number)."""
    return f"GPIO{pin}"
