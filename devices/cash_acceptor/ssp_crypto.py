"""eSSP: SSP's encryption layer (GA138 "Encryption Layer" and "Encryption Keys").

The 128-bit AES key is two halves, each a 64-bit number sent little-endian: the
low half is the fixed key the machine's maker sets (default
``0x0123456701234567``, GA138's "Ssp Set Encryption Key" example), the high
half is negotiated per session by a Diffie-Hellman exchange: the host sends a
prime GENERATOR and a prime MODULUS (SET_GENERATOR, SET_MODULUS), then
GENERATOR^host_random mod MODULUS (REQUEST_KEY_EXCHANGE); the slave answers
GENERATOR^slave_random mod MODULUS; each side raises the other's number to its
own random.

An encrypted packet's DATA is ``STEX(0x7E)`` and an AES-128-ECB encrypted
block of ``eLENGTH eCOUNT(4, little-endian) eDATA ePACKING eCRCL eCRCH``,
packed with random bytes to a multiple of 16, its CRC the SSP CRC-16 over
everything before it.  The counter: the host puts its count in each packet it
encrypts and then adds one; the slave accepts a packet whose count equals its
own, adds one, and replies with that count; the host accepts a reply whose
count equals its own (ITL's host code as published in
github.com/kybarg/encrypted-smiley-secure-protocol src/index.js and its C
counterparts; tests/devices/test_ssp.py replays a packet that library made).

AES comes from ``cryptography``, imported with the first session.
"""

from __future__ import annotations

import secrets
from typing import TYPE_CHECKING

from devices.errors import ProtocolError

from .ssp import STEX, crc_bytes

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.ciphers import Cipher
    from cryptography.hazmat.primitives.ciphers.modes import ECB

#: The fixed half of the key when the maker set none (GA138).
DEFAULT_FIXED_KEY = 0x0123456701234567
#: AES block size, in bytes.
BLOCK = 16
#: eLENGTH + eCOUNT + eCRC.
OVERHEAD = 7
#: Bits of the primes the host picks (the slave checks they are prime; 64 bits at most).
PRIME_BITS = 62
#: Witnesses that make Miller-Rabin exact below 2**64.
_WITNESSES = (2, 3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37)


class EsspError(ProtocolError):
    """An eSSP block that does not open: wrong key, CRC, length or counter."""


def is_prime(n: int) -> bool:
    """Exact primality below 2**64 (deterministic Miller-Rabin)."""
    if n < 2:  # noqa: PLR2004 - the first prime
        return False
    for p in _WITNESSES:
        if n % p == 0:
            return n == p
    d, r = n - 1, 0
    while d % 2 == 0:
        d, r = d // 2, r + 1
    for a in _WITNESSES:
        x = pow(a, d, n)
        if x in (1, n - 1):
            continue
        for _ in range(r - 1):
            x = pow(x, 2, n)
            if x == n - 1:
                break
        else:
            return False
    return True


def random_prime(bits: int = PRIME_BITS) -> int:
    """A random prime of ``bits`` bits (top bit set)."""
    while True:
        n = secrets.randbits(bits) | (1 << (bits - 1)) | 1
        if is_prime(n):
            return n


def key_bytes(fixed_key: int, negotiated: int) -> bytes:
    """The 16-byte AES key: fixed half then negotiated half, each 64-bit little-endian."""
    return fixed_key.to_bytes(8, "little") + negotiated.to_bytes(8, "little")


def _cipher(key: bytes) -> Cipher[ECB]:
    from cryptography.hazmat.primitives.ciphers import (  # noqa: PLC0415 - loaded with a session
        Cipher,
        algorithms,
        modes,
    )

    return Cipher(algorithms.AES128(key), modes.ECB())  # noqa: S305 - ECB is what eSSP specifies


def seal(key: bytes, count: int, data: bytes, packing: bytes | None = None) -> bytes:
    """An eSSP packet's DATA: STEX and the encrypted block of ``data`` with ``count``.

    ``packing`` (tests only) replaces the random packing bytes.

    Raises:
        ValueError: more than 255 data bytes, or ``packing`` of the wrong length.

    """
    if len(data) > 0xFF:  # noqa: PLR2004 - eLENGTH is one byte
        raise ValueError(f"eSSP data of {len(data)} bytes")
    size = -(-(len(data) + OVERHEAD) // BLOCK) * BLOCK
    pad = size - len(data) - OVERHEAD
    if packing is None:
        packing = secrets.token_bytes(pad)
    elif len(packing) != pad:
        raise ValueError(f"{len(packing)} packing bytes, {pad} needed")
    block = bytes([len(data)]) + (count & 0xFFFFFFFF).to_bytes(4, "little") + data + packing
    block += crc_bytes(block)
    encryptor = _cipher(key).encryptor()
    return bytes([STEX]) + encryptor.update(block) + encryptor.finalize()


def open_block(key: bytes, sealed: bytes) -> tuple[int, bytes]:
    """Decrypt an eSSP packet's DATA; return its count and data.

    Raises:
        EsspError: not an eSSP block, not whole AES blocks, or the CRC or length is
            wrong (a wrong key shows here).

    """
    body = sealed[1:]
    if sealed[:1] != bytes([STEX]) or not body or len(body) % BLOCK:
        raise EsspError(f"not an eSSP block ({len(sealed)} bytes)")
    decryptor = _cipher(key).decryptor()
    block = decryptor.update(body) + decryptor.finalize()
    if crc_bytes(block[:-2]) != block[-2:]:
        raise EsspError("eSSP block CRC does not match: wrong key or host not encrypting")
    length = block[0]
    if length + OVERHEAD > len(block):
        raise EsspError(f"eSSP length {length} in a block of {len(block)}")
    return int.from_bytes(block[1:5], "little"), block[5 : 5 + length]


class EsspSession:
    """One end of an encrypted session: its key and its packet counter (0 at negotiation).

    ``slave``: the validator's end (the simulator); the host's otherwise.
    """

    def __init__(self, key: bytes, *, slave: bool = False) -> None:
        if len(key) != BLOCK:
            raise ValueError("an eSSP key has 16 bytes")
        self.key = key
        self.slave = slave
        self.count = 0

    def wrap(self, data: bytes) -> bytes:
        """Seal ``data`` to send; the host's count then moves on by one."""
        sealed = seal(self.key, self.count, data)
        if not self.slave:
            self.count += 1
        return sealed

    def unwrap(self, sealed: bytes) -> bytes:
        """Open a received block whose count must be this end's; the slave's then moves on.

        Raises:
            EsspError: the block does not open, or its count is not the expected one.

        """
        count, data = open_block(self.key, sealed)
        if count != self.count & 0xFFFFFFFF:
            raise EsspError(f"eSSP count {count}, expected {self.count}")
        if self.slave:
            self.count += 1
        return data


class KeyExchange:
    """The host's half of the Diffie-Hellman exchange (GA138 "Encryption Keys", steps 1-10)."""

    def __init__(self) -> None:
        generator, modulus = random_prime(), random_prime()
        while modulus == generator:
            modulus = random_prime()
        self.generator, self.modulus = min(generator, modulus), max(generator, modulus)
        self._random = secrets.randbelow(self.modulus - 2) + 1
        #: GENERATOR ^ host_random mod MODULUS, sent with REQUEST_KEY_EXCHANGE.
        self.host_inter = pow(self.generator, self._random, self.modulus)

    def key(self, slave_inter: int) -> int:
        """The negotiated half: the slave's intermediate key ^ host_random mod MODULUS."""
        return pow(slave_inter, self._random, self.modulus)


def le64(value: int) -> bytes:
    """A 64-bit number as SSP sends it (little-endian)."""
    return value.to_bytes(8, "little")
