"""The AES primitives of PACE and AES secure messaging (ICAO 9303-11 sections 9.7, 9.8.6).

AES-CBC, the one-block AES encryption that turns the send sequence counter
into an IV, AES-CMAC truncated to 8 bytes, and the key derivation function
for AES keys (SHA-1 for 128-bit keys, SHA-256 for 192 and 256 bits).  All from
``cryptography``.
"""

from __future__ import annotations

import hashlib

from cryptography.hazmat.primitives import cmac
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

BLOCK = 16
#: Secure messaging and PACE tokens carry the first 8 bytes of the CMAC.
MAC_BYTES = 8
_ZERO_IV = bytes(BLOCK)
_AES_128 = 16


def cbc_encrypt(key: bytes, data: bytes, iv: bytes = _ZERO_IV) -> bytes:
    """AES-CBC over whole blocks (no padding added here).

    Raises:
        ValueError: the key is not 16, 24 or 32 bytes, or the data not whole blocks.

    """
    encryptor = Cipher(algorithms.AES(key), modes.CBC(iv)).encryptor()
    return encryptor.update(data) + encryptor.finalize()


def cbc_decrypt(key: bytes, data: bytes, iv: bytes = _ZERO_IV) -> bytes:
    """AES-CBC decryption of whole blocks (padding left in place).

    Raises:
        ValueError: the key is not 16, 24 or 32 bytes, or the data not whole blocks.

    """
    decryptor = Cipher(algorithms.AES(key), modes.CBC(iv)).decryptor()
    return decryptor.update(data) + decryptor.finalize()


def encrypt_block(key: bytes, block: bytes) -> bytes:
    """AES of one 16-byte block (the secure messaging IV is ``E(KS_enc, SSC)``)."""
    return cbc_encrypt(key, block)


def cmac8(key: bytes, data: bytes) -> bytes:
    """AES-CMAC of ``data``, truncated to its first 8 bytes."""
    mac = cmac.CMAC(algorithms.AES(key))
    mac.update(data)
    return mac.finalize()[:MAC_BYTES]


def derive_key(seed: bytes, counter: int, key_bytes: int) -> bytes:
    """ICAO 9303-11 9.7.1 key derivation for AES: ``H(seed || counter)`` cut to the key size.

    H is SHA-1 for AES-128 and SHA-256 for AES-192 and AES-256.  ``counter`` is
    1 (encryption), 2 (MAC) or 3 (PACE password key).
    """
    material = seed + counter.to_bytes(4, "big")
    if key_bytes == _AES_128:
        return hashlib.sha1(material).digest()[:key_bytes]  # noqa: S324 - mandated by 9303
    return hashlib.sha256(material).digest()[:key_bytes]
