"""Elliptic curve points for PACE and Chip Authentication, with the ``ecdsa`` package.

``cryptography`` does ECDH only with its own key objects on a curve's standard
generator; PACE's generic mapping needs ``s·G + H`` and key pairs on the mapped
generator, so the point arithmetic comes from ``ecdsa`` (maintained, pure
Python).  Each scalar multiplication costs milliseconds: callers run these
off the event loop.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Any

from ecdsa import curves, ellipticcurve

from devices.errors import ProtocolError

_UNCOMPRESSED = 0x04
#: A point (``ecdsa.ellipticcurve.PointJacobi``; the package has no type hints).
Point = Any


@dataclass(frozen=True, slots=True)
class Domain:
    """One curve's domain parameters (``curve`` is an ``ecdsa.curves.Curve``)."""

    name: str
    curve: Any

    @property
    def generator(self) -> Point:
        """The curve's standard generator G."""
        return self.curve.generator

    @property
    def order(self) -> int:
        """The order n of G."""
        return int(self.curve.order)

    @property
    def field_bytes(self) -> int:
        """Length of a coordinate (and of the shared secret ``x``), bytes."""
        return (int(self.curve.curve.p()).bit_length() + 7) // 8

    def random_scalar(self) -> int:
        """A private key: uniform in ``[1, n-1]``, from the OS."""
        return 1 + secrets.randbelow(self.order - 1)

    def multiply(self, point: Point, scalar: int) -> Point:
        """``scalar · point``.

        Raises:
            ProtocolError: the result is the point at infinity (a hostile peer's key).

        """
        result = point * scalar
        if result == ellipticcurve.INFINITY:
            raise ProtocolError("elliptic curve: a key agreement gave the point at infinity")
        return result

    def add(self, first: Point, second: Point) -> Point:
        """``first + second``.

        Raises:
            ProtocolError: the sum is the point at infinity.

        """
        result = first + second
        if result == ellipticcurve.INFINITY:
            raise ProtocolError("elliptic curve: a point sum gave the point at infinity")
        return result

    def x_bytes(self, point: Point) -> bytes:
        """The affine x coordinate as a field-size octet string (the ECDH shared secret)."""
        return int(point.x()).to_bytes(self.field_bytes, "big")

    def encode(self, point: Point) -> bytes:
        """Uncompressed encoding ``04 || x || y``."""
        return self.encode_coordinates(int(point.x()), int(point.y()))

    def encode_coordinates(self, x: int, y: int) -> bytes:
        """Uncompressed encoding of the affine point ``(x, y)`` (not checked here)."""
        size = self.field_bytes
        return bytes([_UNCOMPRESSED]) + x.to_bytes(size, "big") + y.to_bytes(size, "big")

    def decode(self, data: bytes) -> Point:
        """Decode an uncompressed point and check that it lies on the curve.

        Raises:
            ProtocolError: not an uncompressed point of this curve.

        """
        size = self.field_bytes
        if len(data) != 1 + 2 * size or data[0] != _UNCOMPRESSED:
            raise ProtocolError(f"elliptic curve: not an uncompressed {self.name} point")
        x = int.from_bytes(data[1 : 1 + size], "big")
        y = int.from_bytes(data[1 + size :], "big")
        if not self.curve.curve.contains_point(x, y):
            raise ProtocolError(f"elliptic curve: the point is not on {self.name}")
        return ellipticcurve.PointJacobi(self.curve.curve, x, y, 1, self.order)


def _domain(curve: Any) -> Domain:
    return Domain(curve.name, curve)


#: ICAO 9303-11 table 6: standardized elliptic curve domain parameters by PACE parameter ID.
STANDARD_DOMAINS: dict[int, Domain] = {
    8: _domain(curves.NIST192p),
    9: _domain(curves.BRAINPOOLP192r1),
    10: _domain(curves.NIST224p),
    11: _domain(curves.BRAINPOOLP224r1),
    12: _domain(curves.NIST256p),
    13: _domain(curves.BRAINPOOLP256r1),
    14: _domain(curves.BRAINPOOLP320r1),
    15: _domain(curves.NIST384p),
    16: _domain(curves.BRAINPOOLP384r1),
    17: _domain(curves.BRAINPOOLP512r1),
    18: _domain(curves.NIST521p),
}
