"""ICAO CSCA master lists (ICAO 9303-12 section 8): CMS-signed bundles of CSCA certificates.

States and the ICAO PKD publish their trusted CSCAs as a CMS SignedData whose
content (eContentType ``id-icao-cscaMasterList``) is
``CscaMasterList ::= SEQUENCE { version INTEGER, certList SET OF Certificate }``,
signed by a master list signer certificate that the publishing state's CSCA
issued.  A list is trusted only when its signature verifies and its signer was
issued by a CSCA the operator already trusts (the publishing state's, obtained
out of band, e.g. the BSI's published German root CSCA): a list vouching for
itself proves nothing, anyone can sign one.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable
from dataclasses import dataclass

from asn1crypto import cms, core
from asn1crypto import x509 as asn1_x509
from cryptography import x509

from devices.errors import ProtocolError

from . import keys, pa

#: eContentType of a CSCA master list (id-icao-cscaMasterList).
MASTER_LIST_OID = "2.23.136.1.1.2"


class _Certificates(core.SetOf):  # type: ignore[misc] # asn1crypto is untyped
    """``SET OF Certificate``."""

    _child_spec = asn1_x509.Certificate


class CscaMasterList(core.Sequence):  # type: ignore[misc]
    """``CscaMasterList ::= SEQUENCE { version INTEGER, certList SET OF Certificate }``."""

    _fields = [  # noqa: RUF012 - asn1crypto's declaration style
        ("version", core.Integer),
        ("cert_list", _Certificates),
    ]


@dataclass(frozen=True, slots=True)
class MasterList:
    """A parsed and checked master list.

    Attributes:
        cscas: the CSCA certificates it lists.
        signer: the master list signer certificate, if the CMS carries it.
        trusted: the signature verifies and the signer was issued by an
            already trusted CSCA.
        reason: why it is not trusted (``None`` when it is).

    """

    cscas: list[asn1_x509.Certificate]
    signer: asn1_x509.Certificate | None
    trusted: bool
    reason: str | None


def parse_master_list(
    data: bytes, trusted: Iterable[x509.Certificate | asn1_x509.Certificate] = ()
) -> MasterList:
    """Parse a master list (DER ContentInfo) and judge it.

    Args:
        data: the ``.ml`` file as published.
        trusted: CSCAs the operator already trusts; the signer must chain to one.

    Raises:
        ProtocolError: not a CMS SignedData holding a CSCA master list.

    """
    try:
        info = cms.ContentInfo.load(data, strict=True)
        if info["content_type"].native != "signed_data":
            raise ProtocolError("master list: not a CMS SignedData")
        signed: cms.SignedData = info["content"]
        encap = signed["encap_content_info"]
        if encap["content_type"].dotted != MASTER_LIST_OID:
            raise ProtocolError("master list: the content is not a CSCA master list")
        content = bytes(encap["content"].contents)
        listed = CscaMasterList.load(content, strict=True)
        cscas = list(listed["cert_list"])
    except (ValueError, TypeError, KeyError) as exc:
        raise ProtocolError(f"master list: malformed ASN.1 ({exc})") from None
    signers = signed["signer_infos"]
    if len(signers) != 1:
        return MasterList(cscas, None, trusted=False, reason=f"{len(signers)} signer infos")
    signer_info = signers[0]
    try:
        signer = pa.signer_certificate(signed, signer_info)
    except ProtocolError as exc:
        return MasterList(cscas, None, trusted=False, reason=str(exc))
    reason = _check_signature(signer_info, signer, content)
    if reason is None:
        chained, unknown = pa.chain_valid(signer, list(trusted))
        if not chained:
            listed_issuer, _ = pa.chain_valid(signer, cscas)
            reason = unknown or (
                "the signer was issued only by a CSCA in the list itself: trust the "
                "publishing state's CSCA first"
                if listed_issuer
                else "the signer was issued by no trusted CSCA"
            )
    return MasterList(cscas, signer, trusted=reason is None, reason=reason)


def _check_signature(
    signer_info: cms.SignerInfo,
    signer: asn1_x509.Certificate,
    content: bytes,
) -> str | None:
    """``None`` when the signed attributes match ``content`` and their signature verifies."""
    try:
        digest = signer_info["digest_algorithm"]["algorithm"].native
        keys.hash_type(digest)
        attrs = signer_info["signed_attrs"]
        found = [
            bytes(a["values"][0].native) for a in attrs if a["type"].native == "message_digest"
        ]
        if not found or not hmac.compare_digest(found[0], hashlib.new(digest, content).digest()):
            return "the message digest does not match the list"
        valid = pa.verify_signed(
            signer.public_key.dump(),
            bytes(signer_info["signature"].native),
            attrs.untag().dump(force=True),
            signer_info["signature_algorithm"],
            digest,
        )
    except keys.UnknownAlgorithm as exc:
        return str(exc)
    except (ValueError, TypeError, KeyError, ProtocolError) as exc:
        return f"the signature cannot be checked ({exc})"
    return None if valid else "the signature does not verify"
