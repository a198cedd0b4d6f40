"""The block cipher primitives of BAC and 3DES secure messaging (ICAO 9303-11 sections 9.7, 9.8).

Two-key triple DES in CBC mode with a zero IV, ISO/IEC 9797-1 padding method 2,
the ISO/IEC 9797-1 MAC algorithm 3 ("retail MAC") with DES, and the key
derivation function from a seed.  ``cryptography`` >= 43 keeps TripleDES in its
``decrepit`` package.
"""

from __future__ import annotations

import hashlib

from cryptography.hazmat.decrepit.ciphers.algorithms import TripleDES
from cryptography.hazmat.primitives.ciphers import Cipher, modes

from devices.errors import ProtocolError

BLOCK = 8
_ZERO_IV = bytes(BLOCK)
_PAD_START = 0x80
#: Counter values of the key derivation function: encryption and MAC keys.
KDF_ENC = 1
KDF_MAC = 2
_DES_KEY = 8
_TDES_KEY = 16


def pad(data: bytes, block: int = BLOCK) -> bytes:
    """ISO/IEC 9797-1 padding method 2: a 0x80 byte, then zeros to a whole block."""
    padded = data + bytes([_PAD_START])
    return padded + bytes(-len(padded) % block)


def unpad(data: bytes) -> bytes:
    """Remove ISO/IEC 9797-1 padding method 2.

    Raises:
        ProtocolError: the padding is missing or malformed.

    """
    stripped = data.rstrip(b"\x00")
    if not stripped or stripped[-1] != _PAD_START:
        raise ProtocolError("secure messaging: bad padding in decrypted data")
    return stripped[:-1]


def _tdes(key: bytes) -> TripleDES:
    """Two-key 3DES (K1 K2 K1), given as the 24-byte key ``cryptography`` prefers."""
    if len(key) != _TDES_KEY:
        raise ValueError("a 3DES key here is 16 bytes (two-key triple DES)")
    return TripleDES(key + key[:_DES_KEY])


def tdes_encrypt(key: bytes, data: bytes) -> bytes:
    """Encrypt whole blocks with two-key 3DES-CBC and a zero IV.

    Raises:
        ValueError: the key is not 16 bytes or the data not whole blocks.

    """
    encryptor = Cipher(_tdes(key), modes.CBC(_ZERO_IV)).encryptor()
    return encryptor.update(data) + encryptor.finalize()


def tdes_decrypt(key: bytes, data: bytes) -> bytes:
    """Decrypt whole blocks with two-key 3DES-CBC and a zero IV.

    Raises:
        ValueError: the key is not 16 bytes or the data not whole blocks.

    """
    decryptor = Cipher(_tdes(key), modes.CBC(_ZERO_IV)).decryptor()
    return decryptor.update(data) + decryptor.finalize()


def retail_mac(key: bytes, data: bytes) -> bytes:
    """ISO/IEC 9797-1 MAC algorithm 3 with DES over ``data`` padded by method 2; 8 bytes.

    Single DES-CBC with the key's first half over every block, then the last
    block decrypted with the second half and encrypted with the first (which is
    a two-key 3DES operation on that block).

    Raises:
        ValueError: the key is not 16 bytes.

    """
    tdes = _tdes(key)
    blocks = pad(data)
    k1 = key[:_DES_KEY]
    chain = _ZERO_IV
    if len(blocks) > BLOCK:
        # 3DES with K1 K1 K1 is single DES.
        head = Cipher(TripleDES(k1 * 3), modes.CBC(_ZERO_IV)).encryptor()
        chain = (head.update(blocks[:-BLOCK]) + head.finalize())[-BLOCK:]
    last = bytes(a ^ b for a, b in zip(chain, blocks[-BLOCK:], strict=True))
    tail = Cipher(tdes, modes.ECB()).encryptor()  # noqa: S305 - one block: E(K1) D(K2) E(K1)
    return tail.update(last) + tail.finalize()


def _with_parity(key: bytes) -> bytes:
    """Set each byte's lowest bit so that the byte has odd parity (DES key convention)."""
    return bytes((b & 0xFE) | (((b & 0xFE).bit_count() + 1) & 1) for b in key)


def derive_key(seed: bytes, counter: int) -> bytes:
    """ICAO 9303-11 9.7.1 key derivation for 3DES: SHA-1(seed || counter), 16 bytes with parity.

    ``counter`` is :data:`KDF_ENC` or :data:`KDF_MAC`.
    """
    digest = hashlib.sha1(seed + counter.to_bytes(4, "big")).digest()  # noqa: S324 - mandated by 9303
    return _with_parity(digest[:_TDES_KEY])
