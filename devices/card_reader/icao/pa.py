"""Passive authentication (ICAO 9303-11 section 5.1): EF.SOD, data group hashes, signer, chain.

EF.SOD is a CMS SignedData whose content is the LDS security object (the hash
of every data group).  ``asn1crypto`` parses it (``cryptography``'s PKCS#7
support cannot express the LDS content type); ``cryptography`` verifies.  Each
verdict is reported on its own: a failed check never hides behind another.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TypeAlias

from asn1crypto import algos, cms, core
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from devices.card_reader.identity import PassiveAuth, ReadIssue
from devices.errors import ProtocolError

from . import keys, tlv
from .lds import TAG_SOD

#: eContentType of the LDS security object (id-icao-ldsSecurityObject).
LDS_SECURITY_OBJECT_OID = "2.23.136.1.1.1"
#: id-data: some issuers' SODs carry the LDS security object under this content type.
ID_DATA_OID = "1.2.840.113549.1.7.1"


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

    The LDS security object is accepted under its own content type and under
    id-data (seen in real passports).  A hash algorithm this code does not
    know is kept: :func:`hashes_valid` reports it as not judgeable.

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
        if encap["content_type"].dotted not in (LDS_SECURITY_OBJECT_OID, ID_DATA_OID):
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
    return Sod(hash_name, values, signed)


def hashes_valid(sod: Sod, groups: Mapping[int, bytes]) -> bool:
    """True when every read data group (number -> whole file) matches its hash in EF.SOD."""
    return bool(groups) and not unverified_groups(sod, groups)


def unverified_groups(sod: Sod, groups: Mapping[int, bytes]) -> dict[int, str]:
    """The read data groups EF.SOD does not vouch for: number -> why.

    Raises:
        keys.UnknownAlgorithm: EF.SOD's hash algorithm is not supported.

    """
    keys.hash_type(sod.hash_name)
    found: dict[int, str] = {}
    for number, content in groups.items():
        expected = sod.hashes.get(number)
        if expected is None:
            found[number] = "EF.SOD lists no hash for it"
        elif not hmac.compare_digest(expected, hashlib.new(sod.hash_name, content).digest()):
            found[number] = "its hash does not match EF.SOD"
    return found


def normalised_name(name: asn1_x509.Name) -> tuple[tuple[str, str], ...]:
    """A name's attributes, RFC 5280 string-prepped and sorted: equal whatever the RDN order."""
    return _normalised(name.dump())


@functools.lru_cache(maxsize=4096)
def _normalised(der: bytes) -> tuple[tuple[str, str], ...]:
    """:func:`normalised_name` by DER (string preparation is slow; CSCAs recur every read)."""
    name = asn1_x509.Name.load(der)
    return tuple(
        sorted(
            (attr["type"].dotted, str(attr.prepped_value)) for rdn in name.chosen for attr in rdn
        )
    )


def _key_ids(cert: asn1_x509.Certificate) -> set[bytes]:
    """The certificate's subject key identifier: its extension, and RFC 5280 method 1."""
    ids = {hashlib.sha1(bytes(cert.public_key["public_key"].contents[1:])).digest()}  # noqa: S324
    if cert.key_identifier is not None:
        ids.add(bytes(cert.key_identifier))
    return ids


def signer_certificate(signed: cms.SignedData, signer: cms.SignerInfo) -> asn1_x509.Certificate:
    """The document signer certificate ``signer`` names, by issuer and serial or by key ID.

    The issuer name is compared normalised (RDN order and string case do not
    matter); a certificate whose key identifier matches is accepted too.
    """
    sid = signer["sid"]
    certificates = [
        choice.chosen
        for choice in signed["certificates"] or []
        if isinstance(choice.chosen, asn1_x509.Certificate)
    ]
    for cert in certificates:
        if sid.name == "issuer_and_serial_number":
            wanted = sid.chosen
            if cert.serial_number == wanted["serial_number"].native and normalised_name(
                cert.issuer
            ) == normalised_name(wanted["issuer"]):
                return cert
        elif bytes(sid.chosen.native) in _key_ids(cert):
            return cert
    raise ProtocolError("EF.SOD: no document signer certificate for its signer")


def verify_signed(
    spki: bytes,
    signature: bytes,
    message: bytes,
    algorithm: algos.SignedDigestAlgorithm,
    digest: str,
) -> bool:
    """Verify with the key ``spki``; raises :class:`keys.UnknownAlgorithm` when not judgeable."""
    name = algorithm.signature_algo
    pss = None
    if name == "rsassa_pss":
        params = algorithm["parameters"]
        mgf = params["mask_gen_algorithm"]["parameters"]["algorithm"].native
        pss = (mgf, int(params["salt_length"].native))
        digest = params["hash_algorithm"]["algorithm"].native
    return keys.verify(keys.load_public_key(spki), signature, message, name, digest, pss=pss)


@dataclass(frozen=True, slots=True)
class SignatureCheck:
    """The SOD signature verdict.

    Attributes:
        valid: the signature verifies with the document signer certificate.
        signer: that certificate, when the SOD carries it.
        unknown: why the signature could not be judged (an algorithm or key
            this code does not implement); ``None`` when it was judged.

    """

    valid: bool
    signer: asn1_x509.Certificate | None
    unknown: str | None = None


def signature_valid(sod: Sod) -> SignatureCheck:
    """Verify the SOD's signature with the document signer certificate it carries.

    Checks the signed attributes' message digest against the LDS security
    object, then the signature over the attributes re-encoded as a SET.
    Never raises: what cannot be judged is reported in ``unknown``.
    """
    return signed_data_valid(sod.signed_data)


def signed_data_valid(signed: cms.SignedData) -> SignatureCheck:
    """Verify a document signer's CMS SignedData (EF.SOD, EF.CardSecurity): see signature_valid."""
    signers = signed["signer_infos"]
    if len(signers) != 1:
        return SignatureCheck(valid=False, signer=None, unknown=f"{len(signers)} signer infos")
    signer = signers[0]
    try:
        certificate = signer_certificate(signed, signer)
    except ProtocolError as exc:
        return SignatureCheck(valid=False, signer=None, unknown=str(exc))
    try:
        digest = signer["digest_algorithm"]["algorithm"].native
        content = signed["encap_content_info"]["content"].contents
        attrs = signer["signed_attrs"]
        message_digest = None
        for attr in attrs:
            if attr["type"].native == "message_digest":
                message_digest = bytes(attr["values"][0].native)
        keys.hash_type(digest)  # an unknown digest is "unknown", not "invalid"
        if message_digest is None or not hmac.compare_digest(
            message_digest, hashlib.new(digest, content).digest()
        ):
            return SignatureCheck(valid=False, signer=certificate)
        valid = verify_signed(
            certificate.public_key.dump(),
            bytes(signer["signature"].native),
            attrs.untag().dump(force=True),
            signer["signature_algorithm"],
            digest,
        )
    except keys.UnknownAlgorithm as exc:
        return SignatureCheck(valid=False, signer=certificate, unknown=str(exc))
    except (ValueError, TypeError, KeyError, ProtocolError):
        return SignatureCheck(valid=False, signer=certificate)
    return SignatureCheck(valid=valid, signer=certificate)


def _issued_by(signer: asn1_x509.Certificate, csca: asn1_x509.Certificate) -> bool:
    """True when ``csca`` issued ``signer`` (names or key IDs agree) and its signature verifies."""
    aki = signer.authority_key_identifier
    ski = csca.key_identifier
    if aki is not None and ski is not None:  # the cheap test first: hundreds of CSCAs per read
        if bytes(aki) != bytes(ski):
            return False
    elif normalised_name(signer.issuer) != normalised_name(csca.subject):
        return False
    algorithm = signer["signature_algorithm"]
    return verify_signed(
        csca.public_key.dump(),
        bytes(signer["signature_value"].native),
        signer["tbs_certificate"].dump(),
        algorithm,
        algorithm.hash_algo,
    )


#: A CSCA as configured: from a certificate file (``cryptography``) or a master list
#: (``asn1crypto``, which also reads the encodings ``cryptography`` refuses).
Csca: TypeAlias = x509.Certificate | asn1_x509.Certificate


def as_asn1(cert: Csca) -> asn1_x509.Certificate:
    """``cert`` as an ``asn1crypto`` certificate."""
    if isinstance(cert, asn1_x509.Certificate):
        return cert
    return asn1_x509.Certificate.load(cert.public_bytes(serialization.Encoding.DER))


def chain_valid(
    signer: asn1_x509.Certificate | None,
    cscas: Iterable[Csca] | None,
) -> tuple[bool | None, str | None]:
    """Whether the document signer was issued and signed by one of ``cscas``.

    Returns:
        ``(verdict, reason unknown)``: ``None`` when no CSCA is configured;
        ``False`` with a reason when a matching CSCA's algorithm is not supported.

    """
    if cscas is None:
        return None, None
    if signer is None:
        return False, None
    unknown = None
    for csca in cscas:
        try:
            if _issued_by(signer, as_asn1(csca)):
                return True, None
        except keys.UnknownAlgorithm as exc:
            unknown = str(exc)
        except (ValueError, TypeError, KeyError, ProtocolError):
            continue
    return False, unknown


def passive_auth(
    sod_file: bytes,
    groups: Mapping[int, bytes],
    cscas: Iterable[Csca] | None,
    issues: list[ReadIssue] | None = None,
) -> PassiveAuth:
    """All three verdicts for the data groups read (number -> whole file).

    When ``issues`` is given, what could not be judged (status ``unknown``)
    and each data group EF.SOD does not vouch for (``unverified``) is added.

    Raises:
        ProtocolError: EF.SOD is malformed.

    """
    found = issues if issues is not None else []
    sod = parse_sod(sod_file)
    check = signature_valid(sod)
    if check.unknown is not None:
        found.append(ReadIssue(subject="EF.SOD signature", status="unknown", reason=check.unknown))
    chain, chain_unknown = chain_valid(check.signer, cscas)
    if chain_unknown is not None:
        found.append(ReadIssue(subject="CSCA chain", status="unknown", reason=chain_unknown))
    try:
        unverified = unverified_groups(sod, groups)
        hashes_ok = bool(groups) and not unverified
    except keys.UnknownAlgorithm as exc:
        found.append(ReadIssue(subject="EF.SOD hashes", status="unknown", reason=str(exc)))
        unverified, hashes_ok = dict.fromkeys(groups, "EF.SOD's hashes cannot be checked"), False
    found.extend(
        ReadIssue(subject=f"DG{number}", status="unverified", reason=reason)
        for number, reason in sorted(unverified.items())
    )
    return PassiveAuth(
        hashes_valid=hashes_ok,
        signature_valid=check.valid,
        chain_valid=chain,
    )
