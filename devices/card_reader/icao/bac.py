"""Basic Access Control (ICAO 9303-11 sections 4.3, 9.7): MRZ keys, mutual authentication.

The terminal side (:func:`terminal_cryptogram`, :func:`terminal_session`) is
what the driver runs; the chip side (:func:`chip_answer`) is what the
project's virtual card runs.  Both end in the same :class:`SessionKeys`.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass

from devices.errors import ProtocolError

from .cipher import KDF_ENC, KDF_MAC, derive_key, retail_mac, tdes_decrypt, tdes_encrypt

NONCE_BYTES = 8
KEY_BYTES = 16
#: EXTERNAL AUTHENTICATE data: a 32-byte cryptogram and its 8-byte MAC.
CRYPTOGRAM_BYTES = 32
AUTH_DATA_BYTES = CRYPTOGRAM_BYTES + 8
_SEED_BYTES = 16


@dataclass(frozen=True, slots=True)
class AccessKeys:
    """The document basic access keys K_enc and K_mac, derived from the MRZ information."""

    k_enc: bytes
    k_mac: bytes

    @classmethod
    def from_mrz_information(cls, mrz_information: str) -> AccessKeys:
        """Derive the keys from the 24-character MRZ information (number, birth, expiry)."""
        seed = key_seed(mrz_information)
        return cls(derive_key(seed, KDF_ENC), derive_key(seed, KDF_MAC))


@dataclass(slots=True)
class SessionKeys:
    """Secure messaging keys and the send sequence counter (8 bytes for 3DES, as an int)."""

    ks_enc: bytes
    ks_mac: bytes
    ssc: int


def key_seed(mrz_information: str) -> bytes:
    """K_seed: the first 16 bytes of SHA-1 over the MRZ information."""
    return hashlib.sha1(mrz_information.encode("ascii")).digest()[:_SEED_BYTES]  # noqa: S324


def session_keys(k_ifd: bytes, k_ic: bytes, rnd_ic: bytes, rnd_ifd: bytes) -> SessionKeys:
    """Session keys from K_IFD xor K_IC; SSC from the low halves of both nonces."""
    seed = bytes(a ^ b for a, b in zip(k_ifd, k_ic, strict=True))
    ssc = int.from_bytes(rnd_ic[4:] + rnd_ifd[4:], "big")
    return SessionKeys(derive_key(seed, KDF_ENC), derive_key(seed, KDF_MAC), ssc)


def _seal(keys: AccessKeys, plain: bytes) -> bytes:
    cryptogram = tdes_encrypt(keys.k_enc, plain)
    return cryptogram + retail_mac(keys.k_mac, cryptogram)


def _open(keys: AccessKeys, data: bytes) -> bytes | None:
    """Decrypt E || M after checking M; ``None`` when the MAC does not match."""
    if len(data) != AUTH_DATA_BYTES:
        return None
    cryptogram, mac = data[:CRYPTOGRAM_BYTES], data[CRYPTOGRAM_BYTES:]
    if not hmac.compare_digest(retail_mac(keys.k_mac, cryptogram), mac):
        return None
    return tdes_decrypt(keys.k_enc, cryptogram)


def terminal_cryptogram(keys: AccessKeys, rnd_ic: bytes, rnd_ifd: bytes, k_ifd: bytes) -> bytes:
    """EXTERNAL AUTHENTICATE data: E_IFD || M_IFD over RND.IFD || RND.IC || K.IFD."""
    return _seal(keys, rnd_ifd + rnd_ic + k_ifd)


def terminal_session(
    keys: AccessKeys, rnd_ic: bytes, rnd_ifd: bytes, k_ifd: bytes, answer: bytes
) -> SessionKeys:
    """Check the chip's EXTERNAL AUTHENTICATE answer and derive the session keys.

    Raises:
        ProtocolError: the answer's MAC is wrong or it does not echo our nonces
            (the chip accepted our cryptogram, so this is a broken or hostile chip).

    """
    plain = _open(keys, answer)
    if plain is None:
        raise ProtocolError("BAC: the chip's answer does not carry a valid MAC")
    if plain[:NONCE_BYTES] != rnd_ic or plain[NONCE_BYTES : 2 * NONCE_BYTES] != rnd_ifd:
        raise ProtocolError("BAC: the chip's answer does not echo the nonces")
    return session_keys(k_ifd, plain[2 * NONCE_BYTES :], rnd_ic, rnd_ifd)


def chip_answer(
    keys: AccessKeys, rnd_ic: bytes, k_ic: bytes, command_data: bytes
) -> tuple[bytes, SessionKeys] | None:
    """Chip side of EXTERNAL AUTHENTICATE: the answer E_IC || M_IC and the session keys.

    Returns ``None`` when the terminal's cryptogram fails (wrong MRZ data):
    its MAC does not verify or it does not echo RND.IC.
    """
    plain = _open(keys, command_data)
    if plain is None or plain[NONCE_BYTES : 2 * NONCE_BYTES] != rnd_ic:
        return None
    rnd_ifd, k_ifd = plain[:NONCE_BYTES], plain[2 * NONCE_BYTES :]
    answer = _seal(keys, rnd_ic + rnd_ifd + k_ic)
    return answer, session_keys(k_ifd, k_ic, rnd_ic, rnd_ifd)
