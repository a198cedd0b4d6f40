"""Active Authentication (ICAO 9303-11 section 6.1) and DG15, both ends.

The terminal sends an 8-byte random challenge with INTERNAL AUTHENTICATE; the
chip signs it with the private key whose public half DG15 holds.  ECDSA
signatures are plain ``r || s`` (DER accepted too) over the challenge, hashed as DG14's
``ActiveAuthenticationInfo`` says (SHA-256 when DG14 does not say); RSA
signatures follow ISO/IEC 9796-2 scheme 1 (partial message recovery, trailer
``BC`` for SHA-1 or ``xxCC`` naming the hash).  A clone holding DG15 (and a
genuine SOD) but not the private key cannot sign.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from collections.abc import Callable
from typing import Any

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec as crypto_ec
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

from devices.errors import ProtocolError

from . import keys, tlv
from .apdu import SHORT_MAX_LE, CommandApdu
from .lds import DG_TAGS

CHALLENGE_BYTES = 8
INS_INTERNAL_AUTHENTICATE = 0x88
_ECDSA_PLAIN = "0.4.0.127.0.7.1.1.4.1"
#: BSI TR-03111 ecdsa-plain-signatures by hash.
ECDSA_PLAIN_SHA256 = f"{_ECDSA_PLAIN}.3"
_ECDSA_HASHES: dict[str, str] = {
    f"{_ECDSA_PLAIN}.1": "sha1",
    f"{_ECDSA_PLAIN}.2": "sha224",
    ECDSA_PLAIN_SHA256: "sha256",
    f"{_ECDSA_PLAIN}.4": "sha384",
    f"{_ECDSA_PLAIN}.5": "sha512",
}
_CRYPTOGRAPHY_HASHES: dict[str, type[hashes.HashAlgorithm]] = {
    "sha1": hashes.SHA1,
    "sha224": hashes.SHA224,
    "sha256": hashes.SHA256,
    "sha384": hashes.SHA384,
    "sha512": hashes.SHA512,
}
#: ISO/IEC 9796-2 two-byte trailers (``xx CC``) by hash identifier; ``BC`` alone is SHA-1.
_ISO9796_HASHES: dict[int, Callable[..., Any]] = {
    0x33: hashlib.sha1,
    0x34: hashlib.sha256,
    0x35: hashlib.sha512,
    0x36: hashlib.sha384,
    0x38: hashlib.sha224,
}
_TRAILER_SHA1, _TRAILER_EXPLICIT = 0xBC, 0xCC
_SHA1_BYTES = 20
_HEADER_PARTIAL = 0x6A
_HEADER_MASK, _HEADER_BITS = 0xC0, 0x40

PublicKey = crypto_ec.EllipticCurvePublicKey | rsa.RSAPublicKey
PrivateKey = crypto_ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey


def parse_dg15(data: bytes) -> keys.PublicKey:
    """The Active Authentication public key of DG15 (a SubjectPublicKeyInfo).

    RSA, or EC on a named or explicit curve (:mod:`.keys`).

    Raises:
        ProtocolError: not a DG15, or a key not understood
            (:class:`~.keys.UnknownAlgorithm` for a type or curve not implemented).

    """
    outer = tlv.read_tlv(data)
    if outer.tag != DG_TAGS[15]:
        raise ProtocolError(f"DG15: unexpected outer tag {outer.tag:#x}")
    return keys.load_public_key(outer.value)


def build_dg15(public_key: PublicKey) -> bytes:
    """DG15 holding ``public_key``."""
    der = public_key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return tlv.encode(DG_TAGS[15], der)


def challenge() -> bytes:
    """A fresh 8-byte challenge from the OS."""
    return os.urandom(CHALLENGE_BYTES)


def command(nonce: bytes) -> CommandApdu:
    """INTERNAL AUTHENTICATE with the challenge."""
    return CommandApdu(0x00, INS_INTERNAL_AUTHENTICATE, 0, 0, nonce, le=SHORT_MAX_LE)


def _ecdsa_hash(signature_algorithm: str | None) -> str:
    if signature_algorithm is None:
        return "sha256"
    found = _ECDSA_HASHES.get(signature_algorithm)
    if found is None:
        raise ProtocolError(f"Active Authentication: unknown algorithm {signature_algorithm}")
    return found


def verify(
    key: keys.PublicKey, nonce: bytes, signature: bytes, signature_algorithm: str | None
) -> bool:
    """True when ``signature`` is the chip's signature of ``nonce`` (key from :func:`parse_dg15`).

    ECDSA signatures are accepted plain (``r || s``, as 9303-11 specifies) and
    in DER (``SEQUENCE { r, s }``, as some chips send them).

    Raises:
        ProtocolError: DG14 names an ECDSA algorithm this code does not know.

    """
    if isinstance(key, rsa.RSAPublicKey):
        return _verify_iso9796(key, nonce, signature)
    return keys.verify_ecdsa(key, signature, nonce, _ecdsa_hash(signature_algorithm))


def _recover(key: rsa.RSAPublicKey, signature: bytes) -> bytes | None:
    """The signed message representative (or ``n - it``, as ISO 9796-2 allows), if well formed."""
    numbers = key.public_numbers()
    size = (numbers.n.bit_length() + 7) // 8
    value = pow(int.from_bytes(signature, "big"), numbers.e, numbers.n)
    for candidate in (value, numbers.n - value):
        block = candidate.to_bytes(size, "big")
        if block[0] & _HEADER_MASK == _HEADER_BITS and block[-1] in (
            _TRAILER_SHA1,
            _TRAILER_EXPLICIT,
        ):
            return block
    return None


def _verify_iso9796(key: rsa.RSAPublicKey, nonce: bytes, signature: bytes) -> bool:
    block = _recover(key, signature)
    if block is None:
        return False
    if block[-1] == _TRAILER_SHA1:
        hash_fn, trailer = hashlib.sha1, 1
    else:
        found = _ISO9796_HASHES.get(block[-2])
        if found is None:
            return False
        hash_fn, trailer = found, 2
    digest_size = hash_fn().digest_size
    recovered = block[1 : len(block) - digest_size - trailer]
    digest = block[len(block) - digest_size - trailer : len(block) - trailer]
    return hmac.compare_digest(hash_fn(recovered + nonce).digest(), digest)


def sign(key: PrivateKey, nonce: bytes, signature_algorithm: str | None = None) -> bytes:
    """The chip's side: sign ``nonce`` (plain ECDSA, or ISO 9796-2 scheme 1 with SHA-1 for RSA)."""
    if isinstance(key, rsa.RSAPrivateKey):
        numbers = key.private_numbers()
        modulus = numbers.public_numbers.n
        size = (modulus.bit_length() + 7) // 8
        recovered = os.urandom(size - _SHA1_BYTES - 2)
        block = bytes([_HEADER_PARTIAL]) + recovered
        block += hashlib.sha1(recovered + nonce).digest() + bytes([_TRAILER_SHA1])  # noqa: S324
        value = pow(int.from_bytes(block, "big"), numbers.d, modulus)
        return min(value, modulus - value).to_bytes(size, "big")
    algorithm = _CRYPTOGRAPHY_HASHES[_ecdsa_hash(signature_algorithm)]()
    der = key.sign(nonce, crypto_ec.ECDSA(algorithm))
    r, s = decode_dss_signature(der)
    half = (key.curve.key_size + 7) // 8
    return r.to_bytes(half, "big") + s.to_bytes(half, "big")
