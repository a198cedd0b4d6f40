"""Passive authentication (ICAO 9303-11 section 5.1): EF.SOD, data group hashes, signer, chain.

EF.SOD is a CMS SignedData whose content is the LDS security object (the hash
of every data group).  ``asn1crypto`` parses it (``cryptography``'s PKCS#7
support cannot express the LDS content type); ``cryptography`` verifies.  Each
verdict is reported on its own: a failed check never hides behind another.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from asn1crypto import cms, core
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa

from devices.card_reader.identity import PassiveAuth
from devices.errors import ProtocolError

from . import tlv
from .lds import TAG_SOD

#: eContentType of the LDS security object (id-icao-ldsSecurityObject).
LDS_SECURITY_OBJECT_OID = "2.23.136.1.1.1"


class DataGroupHash(core.Sequence):  # type: ignore[misc] # asn1crypto is untyped
    """``SEQUENCE { dataGroupNumber INTEGER, dataGroupHashValue OCTET STRING }``."""

    _fields = [  # noqa: RUF012 - asn1crypto's declaration style
        ("data_group_number", core.Integer),
        ("data_group_hash_value", core.OctetString),
    ]


class DataGroupHashes(core.SequenceOf):  # type: ignore[misc]
    """``SEQUENCE OF DataGroupHash``."""

    _child_spec = DataGroupHash


class LdsSecurityObject(core.Sequence):  # type: ignore[misc]
    """``LDSSecurityObject`` (9303-10 section 4.6.2); the optional version info is kept raw."""

    _fields = [  # noqa: RUF012 - asn1crypto's declaration style
        ("version", core.Integer),
        ("hash_algorithm", cms.DigestAlgorithm),
        ("data_group_hash_values", DataGroupHashes),
        ("lds_version_info", core.Any, {"optional": True}),
    ]


_HASHES: dict[str, type[hashes.HashAlgorithm]] = {
    "sha1": hashes.SHA1,
    "sha224": hashes.SHA224,
    "sha256": hashes.SHA256,
    "sha384": hashes.SHA384,
    "sha512": hashes.SHA512,
}


def _hash_type(name: str) -> type[hashes.HashAlgorithm]:
    found = _HASHES.get(name)
    if found is None:
        raise ProtocolError(f"EF.SOD: unsupported hash algorithm {name}")
    return found


@dataclass(frozen=True, slots=True)
class Sod:
    """A parsed EF.SOD.

    Attributes:
        hash_name: the data group hash algorithm (``sha256``, ...).
        hashes: data group number -> hash value.
        signed_data: the CMS SignedData, for signature verification.

    """

    hash_name: str
    hashes: Mapping[int, bytes]
    signed_data: cms.SignedData


def parse_sod(data: bytes) -> Sod:
    """Decode EF.SOD (outer tag 0x77 around a CMS ContentInfo).

    Raises:
        ProtocolError: not an EF.SOD, not SignedData or not an LDS security object.

    """
    item = tlv.read_tlv(data)
    if item.tag != TAG_SOD:
        raise ProtocolError(f"EF.SOD: unexpected outer tag {item.tag:#x}")
    try:
        info = cms.ContentInfo.load(item.value, strict=True)
        if info["content_type"].native != "signed_data":
            raise ProtocolError("EF.SOD: not a CMS SignedData")
        signed: cms.SignedData = info["content"]
        encap = signed["encap_content_info"]
        if encap["content_type"].dotted != LDS_SECURITY_OBJECT_OID:
            raise ProtocolError("EF.SOD: the content is not an LDS security object")
        content = encap["content"]
        raw = content.parsed.dump() if isinstance(content, core.ParsableOctetString) else b""
        lso = LdsSecurityObject.load(raw, strict=True)
        hash_name = lso["hash_algorithm"]["algorithm"].native
        values = {
            int(entry["data_group_number"].native): bytes(entry["data_group_hash_value"].native)
            for entry in lso["data_group_hash_values"]
        }
    except (ValueError, TypeError, KeyError) as exc:
        raise ProtocolError("EF.SOD: malformed ASN.1") from exc
    _hash_type(hash_name)
    return Sod(hash_name, values, signed)


def hashes_valid(sod: Sod, groups: Mapping[int, bytes]) -> bool:
    """True when every read data group (number -> whole file) matches its hash in EF.SOD."""
    if not groups:
        return False
    for number, content in groups.items():
        expected = sod.hashes.get(number)
        actual = hashlib.new(sod.hash_name, content).digest()
        if expected is None or not hmac.compare_digest(expected, actual):
            return False
    return True


def _signer_certificate(signed: cms.SignedData, signer: cms.SignerInfo) -> x509.Certificate:
    sid = signer["sid"]
    for choice in signed["certificates"] or []:
        cert = choice.chosen
        if not isinstance(cert, cms.Certificate):
            continue
        if sid.name == "issuer_and_serial_number":
            match = (
                cert.issuer == sid.chosen["issuer"]
                and cert.serial_number == sid.chosen["serial_number"].native
            )
        else:
            match = cert.key_identifier == sid.chosen.native
        if match:
            return x509.load_der_x509_certificate(cert.dump())
    raise ProtocolError("EF.SOD: no document signer certificate for its signer")


def _verify(
    key: object, signature: bytes, message: bytes, algorithm: cms.SignedDigestAlgorithm, digest: str
) -> None:
    chosen = _hash_type(digest)()
    algo = algorithm.signature_algo
    if isinstance(key, rsa.RSAPublicKey) and algo == "rsassa_pss":
        params = algorithm["parameters"]
        pss_hash = _hash_type(params["hash_algorithm"]["algorithm"].native)()
        salt = int(params["salt_length"].native)
        key.verify(signature, message, padding.PSS(padding.MGF1(pss_hash), salt), pss_hash)
    elif isinstance(key, rsa.RSAPublicKey) and algo == "rsassa_pkcs1v15":
        key.verify(signature, message, padding.PKCS1v15(), chosen)
    elif isinstance(key, ec.EllipticCurvePublicKey) and algo == "ecdsa":
        key.verify(signature, message, ec.ECDSA(chosen))
    else:
        raise InvalidSignature


def signature_valid(sod: Sod) -> tuple[bool, x509.Certificate | None]:
    """Verify the SOD's signature with the document signer certificate it carries.

    Checks the signed attributes' message digest against the LDS security
    object, then the signature over the attributes re-encoded as a SET.

    Returns:
        ``(valid, document signer certificate or None if none was found)``.

    """
    signed = sod.signed_data
    signers = signed["signer_infos"]
    if len(signers) != 1:
        return False, None
    signer = signers[0]
    try:
        certificate = _signer_certificate(signed, signer)
    except ProtocolError:
        return False, None
    digest = signer["digest_algorithm"]["algorithm"].native
    content = signed["encap_content_info"]["content"].contents
    attrs = signer["signed_attrs"]
    message_digest = None
    for attr in attrs:
        if attr["type"].native == "message_digest":
            message_digest = bytes(attr["values"][0].native)
    try:
        if message_digest is None or not hmac.compare_digest(
            message_digest, hashlib.new(digest, content).digest()
        ):
            return False, certificate
        _verify(
            certificate.public_key(),
            bytes(signer["signature"].native),
            attrs.untag().dump(force=True),
            signer["signature_algorithm"],
            digest,
        )
    except (InvalidSignature, ValueError, TypeError, ProtocolError):
        return False, certificate
    return True, certificate


def chain_valid(
    signer: x509.Certificate | None, cscas: Iterable[x509.Certificate] | None
) -> bool | None:
    """True when the document signer was issued and signed by one of ``cscas``.

    ``None`` when no CSCA is configured (the chain cannot be judged).
    """
    if cscas is None:
        return None
    if signer is None:
        return False
    for csca in cscas:
        try:
            signer.verify_directly_issued_by(csca)
        except (ValueError, TypeError, InvalidSignature):
            continue
        return True
    return False


def passive_auth(
    sod_file: bytes, groups: Mapping[int, bytes], cscas: Iterable[x509.Certificate] | None
) -> PassiveAuth:
    """All three verdicts for the data groups read (number -> whole file).

    Raises:
        ProtocolError: EF.SOD is malformed.

    """
    sod = parse_sod(sod_file)
    signed, signer = signature_valid(sod)
    return PassiveAuth(
        hashes_valid=hashes_valid(sod, groups),
        signature_valid=signed,
        chain_valid=chain_valid(signer, cscas),
    )
