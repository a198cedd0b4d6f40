"""EF.CardSecurity (BSI TR-03110, ICAO 9303-11 9.2.4): the chip's signed SecurityInfos.

PACE with the chip authentication mapping proves the chip holds the private
key of a static public key that EF.CardSecurity publishes; the file is a CMS
SignedData (eContentType ``id-SecurityObject``) signed by the document signer,
so the key is as trustworthy as EF.SOD.  Read from the master file after PACE.
"""

from __future__ import annotations

from dataclasses import dataclass

from asn1crypto import cms, core

from devices.errors import ProtocolError

from . import ec, tlv
from .ca import ID_PK_ECDH
from .dh import DhDomain

#: EF.CardSecurity's file identifier in the master file (EF.SOD's, in the application, is the same).
FID = 0x011D
#: eContentType of EF.CardSecurity (id-SecurityObject, BSI TR-03110 part 3).
SECURITY_OBJECT_OID = "0.4.0.127.0.7.3.2.1"
_TAG_SEQUENCE, _TAG_SET, _TAG_OID, _TAG_INTEGER, _TAG_BIT_STRING = 0x30, 0x31, 0x06, 0x02, 0x03


@dataclass(frozen=True, slots=True)
class ChipKey:
    """A ChipAuthenticationPublicKeyInfo: the raw public point, its domain ID and key ID."""

    point: bytes
    parameter_id: int | None
    key_id: int | None


@dataclass(frozen=True, slots=True)
class CardSecurity:
    """A parsed EF.CardSecurity: the signed data and its ECDH chip keys."""

    signed_data: cms.SignedData
    keys: list[ChipKey]

    def cam_key(self, parameter_id: int) -> ChipKey | None:
        """The static key for PACE-CAM on ``parameter_id``.

        A key whose key ID is the domain parameter ID first (BSI TR-03110-3 A.1.1.2
        ties them for PACE-CAM), else the first key on those domain parameters,
        else the only key.
        """
        on_curve = [k for k in self.keys if k.parameter_id in (parameter_id, None)]
        by_id = [k for k in on_curve if k.key_id == parameter_id]
        if by_id:
            return by_id[0]
        return on_curve[0] if on_curve else None


def _oid(item: tlv.Tlv) -> str:
    return str(core.ObjectIdentifier.load(tlv.encode(_TAG_OID, item.value)).dotted)


def _chip_key(fields: list[tlv.Tlv]) -> ChipKey | None:
    spki = fields[1]
    parts = spki.children() if spki.tag == _TAG_SEQUENCE else []
    if len(parts) != 2 or parts[1].tag != _TAG_BIT_STRING or not parts[1].value:  # noqa: PLR2004
        return None
    algorithm = parts[0].children()
    parameter = None
    if len(algorithm) > 1 and algorithm[1].tag == _TAG_INTEGER:
        parameter = int.from_bytes(algorithm[1].value, "big")
    key_id = None
    if len(fields) > 2 and fields[2].tag == _TAG_INTEGER:  # noqa: PLR2004
        key_id = int.from_bytes(fields[2].value, "big")
    return ChipKey(parts[1].value[1:], parameter, key_id)


def parse_card_security(data: bytes) -> CardSecurity:
    """Decode EF.CardSecurity (a DER ContentInfo).

    Raises:
        ProtocolError: not a SignedData holding SecurityInfos.

    """
    try:
        info = cms.ContentInfo.load(data, strict=True)
        if info["content_type"].native != "signed_data":
            raise ProtocolError("EF.CardSecurity: not a CMS SignedData")
        signed: cms.SignedData = info["content"]
        encap = signed["encap_content_info"]
        if encap["content_type"].dotted != SECURITY_OBJECT_OID:
            raise ProtocolError("EF.CardSecurity: the content is not a security object")
        infos = tlv.read_tlv(bytes(encap["content"].contents))
    except (ValueError, TypeError, KeyError, tlv.TlvError) as exc:
        raise ProtocolError(f"EF.CardSecurity: malformed ASN.1 ({exc})") from None
    if infos.tag != _TAG_SET:
        raise ProtocolError("EF.CardSecurity: not a SET of SecurityInfos")
    keys = []
    for item in infos.children():
        fields = item.children() if item.tag == _TAG_SEQUENCE else []
        if len(fields) >= 2 and fields[0].tag == _TAG_OID and _oid(fields[0]) == ID_PK_ECDH:  # noqa: PLR2004
            key = _chip_key(fields)
            if key is not None:
                keys.append(key)
    return CardSecurity(signed, keys)


def cam_point(
    card_security: CardSecurity, domain: ec.Domain | DhDomain, parameter_id: int
) -> ec.Point:
    """The static public key PACE-CAM checks, as a point of the PACE domain.

    Raises:
        ProtocolError: no such key, or not a point of ``domain`` (an elliptic curve).

    """
    if not isinstance(domain, ec.Domain):
        raise ProtocolError("PACE-CAM: runs on elliptic curves only")
    key = card_security.cam_key(parameter_id)
    if key is None:
        raise ProtocolError("EF.CardSecurity: no chip key for PACE-CAM on these domain parameters")
    return domain.decode(key.point)
