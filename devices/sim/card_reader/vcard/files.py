"""A specimen chip's files: EF.CardAccess, EF.COM, DG1, DG2, DG13-15, EF.SOD, built at run time.

The PKI is generated in memory with ``cryptography`` (ECDSA P-256, or an RSA
document signer on request): a test
CSCA and a document signer it issued, once per process.  Nothing is
downloaded and nothing here is a real person.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
from collections.abc import Mapping
from dataclasses import dataclass

from asn1crypto import algos, cms, core
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.x509.oid import NameOID

from devices.card_reader.icao import aa, ca, pace, tlv
from devices.card_reader.icao.lds import DG_TAGS, TAG_COM, TAG_SOD, Dg13Field, Ef
from devices.card_reader.icao.pa import LDS_SECURITY_OBJECT_OID, LdsSecurityObject
from devices.sim.card_reader.behaviour import card_portrait
from devices.sim.card_reader.specimen_cards import SpecimenCard

_CERT_YEARS = 10
#: PACE domain parameters of the specimen chips: brainpoolP256r1 (as the ICAO worked example).
BRAINPOOL_P256R1 = 13
NIST_P256 = 12
PACE_AES_128 = f"{pace.ID_PACE}.2.2"
_PORTRAIT_WIDTH, _PORTRAIT_HEIGHT = 180, 240


@dataclass(frozen=True, slots=True)
class SpecimenPki:
    """A test CSCA and a document signer it issued (private key kept for signing)."""

    csca: x509.Certificate
    signer: x509.Certificate
    signer_key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey

    @property
    def csca_pem(self) -> bytes:
        """The CSCA certificate as PEM (what an operator would put in ``csca_dir``)."""
        return self.csca.public_bytes(serialization.Encoding.PEM)


def _name(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.COUNTRY_NAME, "VN"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "kioskd test PKI"),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def make_pki(label: str = "CSCA", *, rsa_signer: bool = False) -> SpecimenPki:
    """Generate a fresh CSCA and document signer (ECDSA P-256, or an RSA-2048 signer)."""
    now = dt.datetime.now(tz=dt.UTC)
    until = now + dt.timedelta(days=365 * _CERT_YEARS)
    csca_key = ec.generate_private_key(ec.SECP256R1())
    csca_name = _name(f"kioskd test {label}")
    csca = (
        x509.CertificateBuilder()
        .subject_name(csca_name)
        .issuer_name(csca_name)
        .public_key(csca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(until)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .sign(csca_key, hashes.SHA256())
    )
    signer_key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey = (
        rsa.generate_private_key(65537, 2048)
        if rsa_signer
        else ec.generate_private_key(ec.SECP256R1())
    )
    signer = (
        x509.CertificateBuilder()
        .subject_name(_name(f"kioskd test document signer ({label})"))
        .issuer_name(csca_name)
        .public_key(signer_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(until)
        .sign(csca_key, hashes.SHA256())
    )
    return SpecimenPki(csca, signer, signer_key)


@dataclass(frozen=True, slots=True)
class ChipKeys:
    """A chip's private keys: Chip Authentication (ECDH) and Active Authentication."""

    ca: ec.EllipticCurvePrivateKey
    aa: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey

    @classmethod
    def generate(cls, *, rsa_aa: bool = False) -> ChipKeys:
        """Fresh keys: brainpoolP256r1 for both, or an RSA-2048 Active Authentication key."""
        aa_key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey = (
            rsa.generate_private_key(65537, 2048)
            if rsa_aa
            else ec.generate_private_key(ec.BrainpoolP256R1())
        )
        return cls(ec.generate_private_key(ec.BrainpoolP256R1()), aa_key)

    @property
    def aa_signature(self) -> str | None:
        """The ActiveAuthenticationInfo algorithm DG14 names (ECDSA keys only)."""
        return None if isinstance(self.aa, rsa.RSAPrivateKey) else aa.ECDSA_PLAIN_SHA256


#: Chip Authentication protocol of the specimen chips.
CA_AES_128 = f"{ca.ID_CA_ECDH}.2"


def build_dg14(keys: ChipKeys) -> bytes:
    """DG14: the chip's Chip Authentication key and protocol, and its AA signature algorithm."""
    der = keys.ca.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return ca.build_dg14(der, CA_AES_128, keys.aa_signature)


@functools.cache
def shared_pki() -> SpecimenPki:
    """The process-wide test PKI the virtual cards are signed under."""
    return make_pki()


# --- data groups ---------------------------------------------------------------------------


def build_com(groups: list[int]) -> bytes:
    """EF.COM: LDS 1.7, Unicode 4.0.0, and the tag list of ``groups``."""
    body = tlv.encode(0x5F01, b"0107") + tlv.encode(0x5F36, b"040000")
    body += tlv.encode(0x5C, bytes(DG_TAGS[n] for n in groups))
    return tlv.encode(TAG_COM, body)


def build_dg1(lines: list[str]) -> bytes:
    """DG1: the MRZ lines concatenated in tag 5F1F."""
    return tlv.encode(DG_TAGS[1], tlv.encode(0x5F1F, "".join(lines).encode("ascii")))


def build_dg2(jpeg: bytes) -> bytes:
    """DG2: one biometric template holding an ISO 19794-5 facial record with a JPEG."""
    image_info = bytes([1, 0]) + _PORTRAIT_WIDTH.to_bytes(2) + _PORTRAIT_HEIGHT.to_bytes(2)
    image_info += bytes([1, 2]) + bytes(4)  # sRGB, digital camera, device 0, quality 0
    face_info = bytes(2) + bytes([1, 0, 0]) + bytes(3) + bytes(2) + bytes(6)  # male, no marks
    block = face_info + image_info + jpeg
    block = (len(block) + 4).to_bytes(4) + block
    record = b"FAC\x00010\x00" + (14 + len(block)).to_bytes(4) + (1).to_bytes(2) + block
    header = tlv.encode(0x80, b"\x01\x01") + tlv.encode(0x81, b"\x02")  # ICAO header v1.1, face
    header += tlv.encode(0x87, b"\x01\x01")  # CBEFF format owner
    template = tlv.encode(0xA1, header) + tlv.encode(0x5F2E, record)
    group = tlv.encode(0x02, b"\x01") + tlv.encode(0x7F60, template)
    return tlv.encode(DG_TAGS[2], tlv.encode(0x7F61, group))


def _dmy(iso: str | None) -> str:
    if not iso:
        return "Không thời hạn"
    year, month, day = iso.split("-")
    return f"{day}/{month}/{year}"


def _entry(number: int, *texts: str) -> bytes:
    body = tlv.encode(0x02, bytes([number]))
    body += b"".join(tlv.encode(0x0C, text.encode()) for text in texts)
    return tlv.encode(0x30, body)


def build_dg13(card: SpecimenCard) -> bytes:
    """DG13 as the citizen card stores it: ``SEQUENCE { INTEGER field, UTF8String... }`` entries.

    Dates are ``dd/mm/yyyy``; parents' names are two strings of field 13.  An
    entry numbered 15 (not named by the parser) checks that unknown fields are kept.
    A ``dg13_garbled`` card has its religion in an 8-bit encoding, not UTF-8.
    """
    record = card.dg13_record()
    assert record is not None
    entries = [
        _entry(Dg13Field.ID_NUMBER, record.id_number),
        _entry(Dg13Field.FULL_NAME, record.full_name),
        _entry(Dg13Field.DATE_OF_BIRTH, _dmy(record.date_of_birth)),
        _entry(Dg13Field.SEX, record.sex),
        _entry(Dg13Field.NATIONALITY, record.nationality),
        _entry(Dg13Field.ETHNICITY, record.ethnicity or ""),
        _entry(Dg13Field.RELIGION, record.religion or ""),
        _entry(Dg13Field.PLACE_OF_ORIGIN, record.place_of_origin or ""),
        _entry(Dg13Field.PLACE_OF_RESIDENCE, record.place_of_residence or ""),
        _entry(Dg13Field.PERSONAL_IDENTIFICATION, record.personal_identification or ""),
        _entry(Dg13Field.DATE_OF_ISSUE, _dmy(record.date_of_issue)),
        _entry(Dg13Field.DATE_OF_EXPIRY, _dmy(record.date_of_expiry)),
        _entry(Dg13Field.PARENTS, record.father_name or "", record.mother_name or ""),
        _entry(Dg13Field.SPOUSE, record.spouse_name or ""),
        _entry(15, "specimen"),
        _entry(Dg13Field.OLD_ID_NUMBER, record.old_id_number or ""),
    ]
    if card.dg13_garbled:  # one field in a legacy 8-bit encoding, not UTF-8
        body = tlv.encode(0x02, bytes([Dg13Field.RELIGION])) + tlv.encode(0x0C, b"Kh\xf4ng")
        entries[Dg13Field.RELIGION - 1] = tlv.encode(0x30, body)
    return tlv.encode(DG_TAGS[13], b"".join(entries))


def build_sod(groups: Mapping[int, bytes], pki: SpecimenPki) -> bytes:
    """EF.SOD: SHA-256 of each group, in a CMS SignedData signed by the document signer."""
    lso = LdsSecurityObject(
        {
            "version": 0,
            "hash_algorithm": {"algorithm": "sha256"},
            "data_group_hash_values": [
                {"data_group_number": n, "data_group_hash_value": hashlib.sha256(g).digest()}
                for n, g in sorted(groups.items())
            ],
        }
    )
    content = lso.dump()
    attrs = cms.CMSAttributes(
        [
            {"type": "content_type", "values": [cms.ContentType(LDS_SECURITY_OBJECT_OID)]},
            {"type": "message_digest", "values": [hashlib.sha256(content).digest()]},
        ]
    )
    key = pki.signer_key
    if isinstance(key, rsa.RSAPrivateKey):
        signature = key.sign(attrs.dump(), padding.PKCS1v15(), hashes.SHA256())
        algorithm = "sha256_rsa"
    else:
        signature = key.sign(attrs.dump(), ec.ECDSA(hashes.SHA256()))
        algorithm = "sha256_ecdsa"
    signer_cert = asn1_x509.Certificate.load(pki.signer.public_bytes(serialization.Encoding.DER))
    signer_info = cms.SignerInfo(
        {
            "version": "v1",
            "sid": cms.SignerIdentifier(
                {
                    "issuer_and_serial_number": {
                        "issuer": signer_cert.issuer,
                        "serial_number": signer_cert.serial_number,
                    }
                }
            ),
            "digest_algorithm": {"algorithm": "sha256"},
            "signed_attrs": attrs,
            "signature_algorithm": algos.SignedDigestAlgorithm({"algorithm": algorithm}),
            "signature": signature,
        }
    )
    signed = cms.SignedData(
        {
            "version": "v3",
            "digest_algorithms": [{"algorithm": "sha256"}],
            "encap_content_info": {
                "content_type": LDS_SECURITY_OBJECT_OID,
                "content": core.ParsableOctetString(content),
            },
            "certificates": [signer_cert],
            "signer_infos": [signer_info],
        }
    )
    info = cms.ContentInfo({"content_type": "signed_data", "content": signed})
    return tlv.encode(TAG_SOD, info.dump())


def card_files(
    card: SpecimenCard,
    pki: SpecimenPki | None = None,
    tamper: int | None = None,
    *,
    pace_domain: int = BRAINPOOL_P256R1,
    chip_keys: ChipKeys | None = None,
) -> dict[int, bytes]:
    """Every file of ``card``'s chip, by file identifier.

    A card with a CAN offers PACE (ECDH generic mapping, AES-128, on the
    standardized domain parameters ``pace_domain``) in EF.CardAccess; one
    without has no EF.CardAccess and opens with BAC only.  With ``chip_keys``
    the chip has DG14 (Chip Authentication) and DG15 (Active Authentication)
    holding their public halves, hashed in EF.SOD.  ``tamper`` names a
    data group whose content is changed after signing (one byte of its last
    value flipped), as a forged chip would hold it.
    """
    groups = {
        1: build_dg1(card.mrz_lines()),
        2: build_dg2(card_portrait(card).data),
    }
    if card.dg13:
        groups[13] = build_dg13(card)
    if chip_keys is not None:
        groups[14] = build_dg14(chip_keys)
        groups[15] = aa.build_dg15(chip_keys.aa.public_key())
    sod = build_sod(groups, pki or shared_pki())
    if tamper is not None:
        forged = bytearray(groups[tamper])
        forged[-1] ^= 0x01
        groups[tamper] = bytes(forged)
    fids = {1: Ef.DG1, 2: Ef.DG2, 13: Ef.DG13, 14: Ef.DG14, 15: Ef.DG15}
    files = {fids[n]: content for n, content in groups.items()}
    files[Ef.COM] = build_com(sorted(groups))
    files[Ef.SOD] = sod
    if card.can is not None:
        files[Ef.CARD_ACCESS] = pace.build_card_access(
            [pace.PaceInfo(PACE_AES_128, 2, pace_domain)]
        )
    return {int(fid): content for fid, content in files.items()}
