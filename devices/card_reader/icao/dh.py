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

#: RFC 5114 2.2: the 2048-bit MODP group with a 224-bit prime order subgroup (parameter 1).
MODP_2048_224 = DhDomain(
    "MODP-2048-224",
    int(
        "AD107E1E9123A9D0D660FAA79559C51FA20D64E5683B9FD1B54B1597B61D0A75E6FA141DF95A56DB"
        "AF9A3C407BA1DF15EB3D688A309C180E1DE6B85A1274A0A66D3F8152AD6AC2129037C9EDEFDA4DF8"
        "D91E8FEF55B7394B7AD5B7D0B6C12207C9F98D11ED34DBF6C6BA0B2C8BBC27BE6A00E0A0B9C49708"
        "B3BF8A317091883681286130BC8985DB1602E714415D9330278273C7DE31EFDC7310F7121FD5A074"
        "15987D9ADC0A486DCDF93ACC44328387315D75E198C641A480CD86A1B9E587E8BE60E69CC928B2B9"
        "C52172E413042E9B23F10B0E16E79763C9B53DCF4BA80A29E3FB73C16B8E75B97EF363E2FFA31F71"
        "CF9DE5384E71B81C0AC4DFFE0C10E64F",
        16,
    ),
    int(
        "AC4032EF4F2D9AE39DF30B5C8FFDAC506CDEBE7B89998CAF74866A08CFE4FFE3A6824A4E10B9A6F0"
        "DD921F01A70C4AFAAB739D7700C29F52C57DB17C620A8652BE5E9001A8D66AD7C17669101999024A"
        "F4D027275AC1348BB8A762D0521BC98AE247150422EA1ED409939D54DA7460CDB5F6C6B250717CBE"
        "F180EB34118E98D119529A45D6F834566E3025E316A330EFBB77A86F0C1AB15B051AE3D428C8F8AC"
        "B70A8137150B8EEB10E183EDD19963DDD9E263E4770589EF6AA21E7F5F2FF381B539CCE3409D13CD"
        "566AFBB48D6C019181E1BCFE94B30269EDFE72FE9B6AA4BD7B5A0F1C71CFFF4C19C418E1F6EC0179"
        "81BC087F2A7065B384B890D3191F2BFA",
        16,
    ),
    int("801C0D34C58D93FE997177101F80535A4738CEBCBF389A99B36371EB", 16),
)

#: RFC 5114 2.3: the 2048-bit MODP group with a 256-bit prime order subgroup (parameter 2).
MODP_2048_256 = DhDomain(
    "MODP-2048-256",
    int(
        "87A8E61DB4B6663CFFBBD19C651959998CEEF608660DD0F25D2CEED4435E3B00E00DF8F1D61957D4"
        "FAF7DF4561B2AA3016C3D91134096FAA3BF4296D830E9A7C209E0C6497517ABD5A8A9D306BCF67ED"
        "91F9E6725B4758C022E0B1EF4275BF7B6C5BFC11D45F9088B941F54EB1E59BB8BC39A0BF12307F5C"
        "4FDB70C581B23F76B63ACAE1CAA6B7902D52526735488A0EF13C6D9A51BFA4AB3AD8347796524D8E"
        "F6A167B5A41825D967E144E5140564251CCACB83E6B486F6B3CA3F7971506026C0B857F689962856"
        "DED4010ABD0BE621C3A3960A54E710C375F26375D7014103A4B54330C198AF126116D2276E11715F"
        "693877FAD7EF09CADB094AE91E1A1597",
        16,
    ),
    int(
        "3FB32C9B73134D0B2E77506660EDBD484CA7B18F21EF205407F4793A1A0BA12510DBC15077BE463F"
        "FF4FED4AAC0BB555BE3A6C1B0C6B47B1BC3773BF7E8C6F62901228F8C28CBB18A55AE31341000A65"
        "0196F931C77A57F2DDF463E5E9EC144B777DE62AAAB8A8628AC376D282D6ED3864E67982428EBC83"
        "1D14348F6F2F9193B5045AF2767164E1DFC967C1FB3F2E55A4BD1BFFE83B9C80D052B985D182EA0A"
        "DB2A3B7313D3FE14C8484B1E052588B9B7D2BBD2DF016199ECD06E1557CD0915B3353BBB64E0EC37"
        "7FD028370DF92B52C7891428CDC67EB6184B523D1DB246C32F63078490F00EF8D647D148D4795451"
        "5E2327CFEF98C582664B4C0F6CC41659",
        16,
    ),
    int("8CF83642A709A097B447997640129DA299B1A47D1EB3750BA308B0FE64F5FBD3", 16),
)

#: PACE's standardized DH groups by parameter ID (ICAO 9303-11 table 6).
STANDARD_GROUPS: dict[int, DhDomain] = {0: MODP_1024_160, 1: MODP_2048_224, 2: MODP_2048_256}
