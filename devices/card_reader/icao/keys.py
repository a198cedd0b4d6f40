"""Public keys and signatures as documents carry them: RSA, and EC on named or explicit curves.

Real document signer, CSCA and Active Authentication keys come with their
curve given *explicitly* (prime, coefficients, generator, order) rather than
by name; ``cryptography`` refuses such keys.  Here explicit parameters equal
to a standardized curve's are matched to it (and verified with
``cryptography``); a curve that matches none is handled directly with
``ecdsa``'s arithmetic.  ECDSA signatures are accepted in DER
(``SEQUENCE { r, s }``) and in plain ``r || s`` form (BSI TR-03111).

An algorithm, key type or curve encoding this code does not know raises
:class:`UnknownAlgorithm` (a verdict of "unknown", never a crash); a
signature that does not verify is ``False``.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

from asn1crypto import keys as asn1_keys
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from ecdsa import BadSignatureError, VerifyingKey, curves, ellipticcurve
from ecdsa.util import sigdecode_der, sigdecode_string

from devices.errors import ProtocolError


class UnknownAlgorithm(ProtocolError):
    """A key type, curve encoding or signature algorithm this code does not implement."""


_HASHES: dict[str, type[hashes.HashAlgorithm]] = {
    "sha1": hashes.SHA1,
    "sha224": hashes.SHA224,
    "sha256": hashes.SHA256,
    "sha384": hashes.SHA384,
    "sha512": hashes.SHA512,
}

#: ``ecdsa`` curve name -> ``cryptography`` curve, for the curves both know.
_CRYPTOGRAPHY_CURVES: dict[str, type[ec.EllipticCurve]] = {
    "NIST192p": ec.SECP192R1,
    "NIST224p": ec.SECP224R1,
    "NIST256p": ec.SECP256R1,
    "NIST384p": ec.SECP384R1,
    "NIST521p": ec.SECP521R1,
    "SECP256k1": ec.SECP256K1,
    "BRAINPOOLP256r1": ec.BrainpoolP256R1,
    "BRAINPOOLP384r1": ec.BrainpoolP384R1,
    "BRAINPOOLP512r1": ec.BrainpoolP512R1,
}
_WEIERSTRASS = [c for c in curves.curves if isinstance(c.curve, ellipticcurve.CurveFp)]
_EXPLICIT_OID = (1, 3, 9999)  # ecdsa wants an OID for a curve; an explicit one has none


def hash_type(name: str) -> hashes.HashAlgorithm:
    """The ``cryptography`` hash called ``name`` (``sha256``...).

    Raises:
        UnknownAlgorithm: not a SHA-1 or SHA-2 hash.

    """
    found = _HASHES.get(name)
    if found is None:
        raise UnknownAlgorithm(f"hash algorithm {name} is not supported")
    return found()


@dataclass(frozen=True, slots=True)
class EcKey:
    """An EC public key: ``cryptography``'s on a known curve, else ``ecdsa``'s.

    Attributes:
        curve: the standardized curve's name (``BRAINPOOLP256r1``), or ``explicit``.
        named: the key as ``cryptography`` holds it, when it knows the curve.
        point: the key as ``ecdsa`` holds it (always set).

    """

    curve: str
    named: ec.EllipticCurvePublicKey | None
    point: Any

    @property
    def order_bytes(self) -> int:
        """Length of ``r`` (and ``s``) in a plain signature, bytes."""
        return (int(self.point.curve.order).bit_length() + 7) // 8


PublicKey = rsa.RSAPublicKey | EcKey


def _ints(values: Any) -> tuple[int, ...]:
    return tuple(int(v) for v in values)


def _explicit_curve(spec: asn1_keys.SpecifiedECDomain) -> Any:
    """The ``ecdsa`` curve of explicit parameters: a standardized one if equal, else built."""
    if spec["field_id"]["field_type"].native != "prime_field":
        raise UnknownAlgorithm("EC key: only prime field curves are supported")
    p = int(spec["field_id"]["parameters"].native)
    a = int.from_bytes(bytes(spec["curve"]["a"].native), "big")
    b = int.from_bytes(bytes(spec["curve"]["b"].native), "big")
    order = int(spec["order"].native)
    cofactor = int(spec["cofactor"].native or 1)
    gx, gy = _ints(spec["base"].to_coords())
    for known in _WEIERSTRASS:
        field = known.curve
        generator = known.generator
        if (field.p(), field.a() % p, field.b() % p, int(known.order)) == (
            p,
            a % p,
            b % p,
            order,
        ) and (
            int(generator.x()),
            int(generator.y()),
        ) == (gx, gy):
            return known
    field = ellipticcurve.CurveFp(p, a, b, cofactor)
    if not field.contains_point(gx, gy):
        raise ProtocolError("EC key: the generator is not on the curve")
    generator = ellipticcurve.PointJacobi(field, gx, gy, 1, order, generator=True)
    return curves.Curve("explicit", field, generator, _EXPLICIT_OID)


def _curve(params: asn1_keys.ECDomainParameters) -> Any:
    """The ``ecdsa`` curve of an EC key's parameters (named, or explicit)."""
    if params.name == "named":
        oid = tuple(int(arc) for arc in params.chosen.dotted.split("."))
        curve = next((c for c in curves.curves if c.oid == oid), None)
        if curve is None:
            raise UnknownAlgorithm(f"EC key: curve {params.chosen.native} is not supported")
        return curve
    if params.name == "specified":
        return _explicit_curve(params.chosen)
    raise UnknownAlgorithm("EC key: implicit curve parameters are not supported")


def _rsa_key(info: asn1_keys.PublicKeyInfo) -> rsa.RSAPublicKey:
    """The RSA key, its modulus read as unsigned.

    Real DG15s encode the modulus without the leading zero byte DER requires
    for a positive INTEGER (``02 81 80 CF...``); ``cryptography`` refuses that,
    every reader in the field takes it as the unsigned number it is meant to be.
    """
    numbers = info["public_key"].parsed
    modulus = int.from_bytes(numbers["modulus"].contents, "big")
    exponent = int.from_bytes(numbers["public_exponent"].contents, "big")
    return rsa.RSAPublicNumbers(exponent, modulus).public_key()


def curve_from_parameters(ec_parameters_der: bytes) -> Any:
    """The ``ecdsa`` curve of DER ``ECParameters`` (explicit, or a named curve's OID).

    Raises:
        UnknownAlgorithm: a curve not known by name, or implicit parameters.
        ProtocolError: malformed parameters.

    """
    try:
        params = asn1_keys.ECDomainParameters.load(ec_parameters_der, strict=True)
        return _curve(params)
    except (ValueError, TypeError, KeyError) as exc:
        raise ProtocolError(f"EC domain parameters: malformed ({exc})") from None


def load_public_key(spki_der: bytes) -> PublicKey:
    """Load a SubjectPublicKeyInfo: RSA, or EC with a named or explicit curve.

    Raises:
        UnknownAlgorithm: another key type, or a curve not known by name.
        ProtocolError: malformed key.

    """
    try:
        info = asn1_keys.PublicKeyInfo.load(spki_der, strict=True)
        algorithm = info["algorithm"]["algorithm"].native
        if algorithm == "rsa":
            return _rsa_key(info)
        if algorithm != "ec":
            raise UnknownAlgorithm(f"key type {algorithm} is not supported")
        curve = _curve(info["algorithm"]["parameters"])
        point = bytes(info["public_key"].native)
    except (ValueError, TypeError, KeyError) as exc:
        raise ProtocolError(f"key: malformed public key info ({exc})") from None
    try:
        verifying = VerifyingKey.from_string(point, curve=curve)
    except Exception as exc:  # noqa: BLE001 - ecdsa raises several unrelated types
        raise ProtocolError(f"EC key: the point is not on the curve ({exc})") from None
    crypto_curve = _CRYPTOGRAPHY_CURVES.get(curve.name)
    named = None
    if crypto_curve is not None:
        try:
            named = ec.EllipticCurvePublicKey.from_encoded_point(crypto_curve(), point)
        except (ValueError, UnsupportedAlgorithm):
            named = None
    return EcKey(curve.name, named, verifying)


def load_any(key: PublicKey | bytes) -> PublicKey:
    """A key loaded with :func:`load_public_key` if given as SubjectPublicKeyInfo DER."""
    return load_public_key(key) if isinstance(key, bytes) else key


def verify_ecdsa(key: EcKey, signature: bytes, message: bytes, hash_name: str) -> bool:
    """True when ``signature`` (DER or plain ``r || s``) is ``key``'s ECDSA of ``message``.

    Raises:
        UnknownAlgorithm: the hash is not supported.

    """
    chosen = hash_type(hash_name)
    plain = len(signature) == 2 * key.order_bytes
    if key.named is not None:
        der = signature
        if plain:
            half = key.order_bytes
            r, s = int.from_bytes(signature[:half], "big"), int.from_bytes(signature[half:], "big")
            der = encode_dss_signature(r, s)
        try:
            key.named.verify(der, message, ec.ECDSA(chosen))
        except (InvalidSignature, ValueError):
            return False
        return True
    try:
        return bool(
            key.point.verify(
                signature,
                message,
                hashfunc=getattr(hashlib, hash_name),
                sigdecode=sigdecode_string if plain else sigdecode_der,
            )
        )
    except (BadSignatureError, ValueError, AssertionError):
        return False
    except Exception:  # noqa: BLE001 - ecdsa's DER decoder raises its own error types
        return False


def verify(
    key: PublicKey,
    signature: bytes,
    message: bytes,
    algorithm: str,
    hash_name: str,
    *,
    pss: tuple[str, int] | None = None,
) -> bool:
    """Verify a CMS or X.509 signature.

    Args:
        key: from :func:`load_public_key`.
        signature: the signature value.
        message: what was signed.
        algorithm: ``rsassa_pkcs1v15``, ``rsassa_pss`` or ``ecdsa`` (asn1crypto's names).
        hash_name: the digest (``sha256``...).
        pss: RSASSA-PSS ``(MGF1 hash name, salt length)``.

    Raises:
        UnknownAlgorithm: the algorithm does not fit the key or is not supported.

    """
    if isinstance(key, EcKey):
        if algorithm != "ecdsa":
            raise UnknownAlgorithm(f"signature algorithm {algorithm} does not fit an EC key")
        return verify_ecdsa(key, signature, message, hash_name)
    chosen = hash_type(hash_name)
    if algorithm == "rsassa_pkcs1v15":
        scheme: padding.AsymmetricPadding = padding.PKCS1v15()
    elif algorithm == "rsassa_pss" and pss is not None:
        scheme = padding.PSS(padding.MGF1(hash_type(pss[0])), pss[1])
    else:
        raise UnknownAlgorithm(f"signature algorithm {algorithm} does not fit an RSA key")
    try:
        key.verify(signature, message, scheme, chosen)
    except (InvalidSignature, ValueError):
        return False
    return True
