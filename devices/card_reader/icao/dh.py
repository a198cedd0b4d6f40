"""Diffie-Hellman groups for PACE (ICAO 9303-11 table 6, RFC 5114), shaped like :class:`.ec.Domain`.

PACE's generic mapping is the same over a finite field as over a curve, with
multiplication for the group operation: ``g' = g^s · h``.  :class:`DhDomain`
offers the methods PACE calls on an elliptic curve domain (``multiply`` is
exponentiation, ``add`` multiplication, a "point" is an integer), so one PACE
implementation serves both.  Public values travel as octet strings of the
prime's length; each received one is checked to lie in the prime-order subgroup.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from devices.errors import ProtocolError


@dataclass(frozen=True, slots=True)
class DhDomain:
    """A prime-order subgroup of ``Z_p*``: prime ``p``, generator ``g`` of order ``q``."""

    name: str
    p: int
    g: int
    q: int

    @property
    def generator(self) -> int:
        """The group's generator g."""
        return self.g

    @property
    def order(self) -> int:
        """The order q of g."""
        return self.q

    @property
    def field_bytes(self) -> int:
        """Length of a public value (and of the shared secret), bytes."""
        return (self.p.bit_length() + 7) // 8

    def random_scalar(self) -> int:
        """A private key: uniform in ``[1, q-1]``, from the OS."""
        return 1 + secrets.randbelow(self.q - 1)

    def multiply(self, element: int, scalar: int) -> int:
        """``element ^ scalar mod p``.

        Raises:
            ProtocolError: the result is the identity (a hostile peer's value).

        """
        result = pow(element, scalar, self.p)
        if result == 1:
            raise ProtocolError("DH: a key agreement gave the identity")
        return result

    def add(self, first: int, second: int) -> int:
        """The group operation, ``first · second mod p``.

        Raises:
            ProtocolError: the product is the identity.

        """
        result = first * second % self.p
        if result == 1:
            raise ProtocolError("DH: a product gave the identity")
        return result

    def x_bytes(self, element: int) -> bytes:
        """The shared secret: ``element`` as an octet string of the prime's length."""
        return self.encode(element)

    def encode(self, element: int) -> bytes:
        """A public value as an octet string of the prime's length."""
        return element.to_bytes(self.field_bytes, "big")

    def decode(self, data: bytes) -> int:
        """A received public value, checked to lie in the subgroup of order q.

        Raises:
            ProtocolError: empty, out of range, or outside the subgroup.

        """
        value = int.from_bytes(data, "big")
        if not data or not 1 < value < self.p - 1 or pow(value, self.q, self.p) != 1:
            raise ProtocolError(f"DH: the public value is not in {self.name}")
        return value


#: RFC 5114 2.1: the 1024-bit MODP group with a 160-bit prime order subgroup (PACE parameter 0).
MODP_1024_160 = DhDomain(
    "MODP-1024-160",
    int(
        "B10B8F96A080E01DDE92DE5EAE5D54EC52C99FBCFB06A3C69A6A9DCA52D23B616073E28675A23D18"
        "9838EF1E2EE652C013ECB4AEA906112324975C3CD49B83BFACCBDD7D90C4BD7098488E9C219A7372"
        "4EFFD6FAE5644738FAA31A4FF55BCCC0A151AF5F0DC8B4BD45BF37DF365C1A65E68CFDA76D4DA708"
        "DF1FB2BC2E4A4371",
        16,
    ),
    int(
        "A4D1CBD5C3FD34126765A442EFB99905F8104DD258AC507FD6406CFF14266D31266FEA1E5C41564B"
        "777E690F5504F213160217B4B01B886A5E91547F9E2749F4D7FBD7D3B9A92EE1909D0D2263F80A76"
        "A6A24C087A091F531DBF0A0169B6A28AD662A4D18E73AFA32D779D5918D08BC8858F4DCEF97C2A24"
        "855E6EEB22B3B2E5",
        16,
    ),
    int("F518AA8781A8DF278ABA4E7D64B7CB9D49462353", 16),
)

#: PACE's standardized DH groups by parameter ID (2048-bit groups 1 and 2 not included).
STANDARD_GROUPS: dict[int, DhDomain] = {0: MODP_1024_160}
