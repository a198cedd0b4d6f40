"""Documents as citizens carry them (issue 18): the eight failures, and reads that never die.

Each test here failed before the fix it names.  Vectors marked *constructed*
were built by this project (with ``cryptography``/``asn1crypto``) in the shape
the cited sources describe; real-world files live in tests/data/icao/ and are
run by ``test_icao_corpus.py``.
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Callable
from datetime import date

import pytest
from asn1crypto import algos, cms, core
from asn1crypto import keys as asn1_keys
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from ecdsa import SigningKey, curves
from ecdsa.util import sigencode_der
from PIL import Image

from devices.card_reader.icao import aa, ca, lds, pa, tlv
from devices.card_reader.icao.reader import read_identity
from devices.card_reader.identity import IdentityResult, parse_mrz
from devices.errors import ProtocolError
from devices.scanner.frames import Code, TextFormat, aim_symbology, parse_text
from devices.sim.card_reader.behaviour import render_face
from devices.sim.card_reader.specimen_cards import SPECIMEN_CARDS
from devices.sim.card_reader.vcard.chip import EmrtdChip
from devices.sim.card_reader.vcard.files import (
    ChipKeys,
    SpecimenPki,
    build_dg2,
    card_files,
    make_pki,
)

#: id-data, the eContentType some issuers' SODs carry.
ID_DATA = "1.2.840.113549.1.7.1"
CARD = SPECIMEN_CARDS["default"]
TODAY = date(2026, 1, 1)


def groups_of(files: dict[int, bytes]) -> dict[int, bytes]:
    fids = {1: lds.Ef.DG1, 2: lds.Ef.DG2, 13: lds.Ef.DG13, 14: lds.Ef.DG14, 15: lds.Ef.DG15}
    return {n: files[fid] for n, fid in fids.items() if fid in files}


# --- constructed certificates with explicit EC domain parameters -------------------------------


def explicit_spki(
    public: ec.EllipticCurvePublicKey, curve: object = curves.BRAINPOOLP256r1
) -> bytes:
    """``public`` as a SubjectPublicKeyInfo with its curve given explicitly (constructed)."""
    field = curve.curve  # type: ignore[attr-defined]
    g = curve.generator  # type: ignore[attr-defined]
    size = (field.p().bit_length() + 7) // 8
    point = public.public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )
    base = b"\x04" + int(g.x()).to_bytes(size, "big") + int(g.y()).to_bytes(size, "big")
    domain = asn1_keys.SpecifiedECDomain(
        {
            "version": "ecdpVer1",
            "field_id": {"field_type": "prime_field", "parameters": field.p()},
            "curve": {"a": field.a().to_bytes(size, "big"), "b": field.b().to_bytes(size, "big")},
            "base": base,
            "order": int(curve.order),  # type: ignore[attr-defined]
            "cofactor": 1,
        }
    )
    info = asn1_keys.PublicKeyInfo(
        {
            "algorithm": {
                "algorithm": "ec",
                "parameters": asn1_keys.ECDomainParameters(name="specified", value=domain),
            },
            "public_key": point,
        }
    )
    return info.dump()


def with_spki(
    cert: x509.Certificate, spki: bytes, issuer_key: ec.EllipticCurvePrivateKey
) -> x509.Certificate:
    """``cert`` with another SubjectPublicKeyInfo, re-signed by ``issuer_key`` (constructed)."""
    original = asn1_x509.Certificate.load(cert.public_bytes(serialization.Encoding.DER))
    tbs = asn1_x509.TbsCertificate.load(original["tbs_certificate"].dump())
    tbs["subject_public_key_info"] = asn1_keys.PublicKeyInfo.load(spki)
    signature = issuer_key.sign(tbs.dump(force=True), ec.ECDSA(hashes.SHA256()))
    rebuilt = asn1_x509.Certificate(
        {
            "tbs_certificate": tbs,
            "signature_algorithm": {"algorithm": "sha256_ecdsa"},
            "signature_value": signature,
        }
    )
    return x509.load_der_x509_certificate(rebuilt.dump())


def explicit_pki() -> tuple[SpecimenPki, x509.Certificate]:
    """A brainpoolP256r1 CSCA and signer, both with explicit parameters; and the CSCA (constructed)."""
    import datetime as dt

    from cryptography.x509.oid import NameOID

    now = dt.datetime.now(tz=dt.UTC)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "explicit CSCA")])
    csca_key = ec.generate_private_key(ec.BrainpoolP256R1())
    signer_key = ec.generate_private_key(ec.BrainpoolP256R1())

    def cert(subject: x509.Name, public: ec.EllipticCurvePublicKey) -> x509.Certificate:
        return (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(name)
            .public_key(public)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(days=1))
            .not_valid_after(now + dt.timedelta(days=30))
            .sign(csca_key, hashes.SHA256())
        )

    csca = with_spki(
        cert(name, csca_key.public_key()), explicit_spki(csca_key.public_key()), csca_key
    )
    signer_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "explicit DS")])
    signer = with_spki(
        cert(signer_name, signer_key.public_key()), explicit_spki(signer_key.public_key()), csca_key
    )
    return SpecimenPki(csca, signer, signer_key), csca


def test_1_explicit_ec_parameters_in_the_document_signer_and_csca() -> None:
    pki, csca = explicit_pki()
    with pytest.raises(UnsupportedAlgorithm):  # what cryptography does with the curve given so
        pki.signer.public_key()
    files = card_files(CARD, pki)
    verdict = pa.passive_auth(files[lds.Ef.SOD], groups_of(files), [csca])
    assert (verdict.hashes_valid, verdict.signature_valid, verdict.chain_valid) == (
        True,
        True,
        True,
    )
    assert (
        pa.passive_auth(files[lds.Ef.SOD], groups_of(files), [make_pki().csca]).chain_valid is False
    )


def test_1_an_explicit_curve_matching_no_named_one_is_handled_directly() -> None:
    """brainpoolP256r1's group with generator 2G: equal to no standardized curve (constructed)."""
    from devices.card_reader.icao import keys

    named = curves.BRAINPOOLP256r1
    generator = named.generator * 2
    custom = curves.Curve("custom", named.curve, generator, (1, 3, 9999, 1))
    signing = SigningKey.generate(curve=custom, hashfunc=hashlib.sha256)
    point = signing.get_verifying_key().pubkey.point
    public = ec.EllipticCurvePublicNumbers(
        int(point.x()), int(point.y()), ec.BrainpoolP256R1()
    ).public_key()
    key = keys.load_public_key(explicit_spki(public, custom))
    assert isinstance(key, keys.EcKey)
    assert (key.curve, key.named) == ("explicit", None)
    message = b"signed attributes"
    der = signing.sign(message, hashfunc=hashlib.sha256, sigencode=sigencode_der)
    assert keys.verify(key, der, message, "ecdsa", "sha256") is True
    assert keys.verify(key, der, message + b"!", "ecdsa", "sha256") is False
    matched = keys.load_public_key(explicit_spki(public))
    assert isinstance(matched, keys.EcKey)
    assert matched.curve == "BRAINPOOLP256r1"
    assert matched.named is not None


# --- DG13 layouts ------------------------------------------------------------------------------


def entry(number: int, *values: bytes) -> bytes:
    return tlv.encode(0x30, tlv.encode(0x02, bytes([number])) + b"".join(values))


def utf8(text: str) -> bytes:
    return tlv.encode(0x0C, text.encode())


#: 1.0.10646.1.0.8 (ISO/IEC 10646 UTF-8), the OID in the header real cards carry.
UTF8_OID = tlv.encode(0x06, bytes.fromhex("28D316010008"))
ENTRIES = b"".join(
    [
        entry(1, utf8("001099012345")),
        entry(2, utf8("Đỗ Thị Mỹ Duyên")),
        entry(3, utf8("20/07/1999")),
        entry(4, utf8("Nữ")),
        entry(5, utf8("Việt Nam")),
        entry(11, utf8("10/08/2021")),
        entry(12, utf8("20/07/2039")),
        entry(13, tlv.encode(0x30, utf8("Đỗ Văn A") + utf8("Lê Thị B"))),
        entry(14, tlv.encode(0x30, utf8("Trần Văn C"))),
    ]
)
HEADER = tlv.encode(0x30, tlv.encode(0x02, b"\x01") + UTF8_OID + tlv.encode(0x31, ENTRIES))


@pytest.mark.parametrize(
    "body",
    [HEADER, tlv.encode(0x30, HEADER), ENTRIES],
    ids=["header", "header-in-a-sequence", "bare-entries"],
)
def test_2_dg13_with_the_outer_header_of_real_cards(body: bytes) -> None:
    """``SEQUENCE { INTEGER 1, OID 1.0.10646.1.0.8, SET { entries } }`` (constructed; layout cited
    in docs/card-reader.md), also nested in one more SEQUENCE, and without it."""
    dg13 = lds.parse_dg13(tlv.encode(0x6D, body))
    assert dg13.id_number == "001099012345"
    assert dg13.full_name == "Đỗ Thị Mỹ Duyên"
    assert dg13.date_of_birth == "1999-07-20"
    assert (dg13.date_of_issue, dg13.date_of_expiry) == ("2021-08-10", "2039-07-20")
    assert (dg13.father_name, dg13.mother_name, dg13.spouse_name) == (
        "Đỗ Văn A",
        "Lê Thị B",
        "Trần Văn C",
    )
    assert dg13.unknown == {}


def test_2_the_oid_bytes_are_the_utf8_oid() -> None:
    assert core.ObjectIdentifier.load(UTF8_OID).dotted == "1.0.10646.1.0.8"


# --- DG14 without ChipAuthenticationInfo ---------------------------------------------------------


def test_3_dg14_with_a_key_and_no_ca_info_implies_3des() -> None:
    chip = ChipKeys.generate()
    der = chip.ca.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    only_key = tlv.encode(
        0x6E,
        tlv.encode(
            0x31,
            tlv.encode(
                0x30, tlv.encode(0x06, bytes(core.ObjectIdentifier(ca.ID_PK_ECDH).contents)) + der
            ),
        ),
    )
    dg14 = ca.parse_dg14(only_key)
    assert dg14.infos == []
    chosen = dg14.choice()
    assert chosen is not None
    info, key = chosen
    assert (info.protocol, info.version, info.key_bytes) == ("0.4.0.127.0.7.2.2.3.2.1", 1, 0)
    terminal = ca.CaTerminal(info, key)
    (mse,) = ca.commands(info, terminal.public_key())
    assert (mse.ins, mse.p1, mse.p2) == (0x22, 0x41, 0xA6)  # MSE:Set KAT
    from devices.card_reader.icao.apdu import CommandApdu

    command = CommandApdu(0x00, 0xB0, 0x00, 0x00, le=4)
    chip_side = ca.chip_session(chip.ca, info, terminal.public_key())
    assert chip_side.unwrap(terminal.session().protect(command)) == command


# --- Active Authentication: DER ECDSA ------------------------------------------------------------


def test_4_ecdsa_active_authentication_in_der_and_plain() -> None:
    private = ec.generate_private_key(ec.BrainpoolP256R1())
    key = aa.parse_dg15(aa.build_dg15(private.public_key()))
    nonce = bytes(range(8))
    der = private.sign(nonce, ec.ECDSA(hashes.SHA256()))
    assert aa.verify(key, nonce, der, None) is True
    assert aa.verify(key, nonce, aa.sign(private, nonce), None) is True
    assert aa.verify(key, bytes(8), der, None) is False
    other = ec.generate_private_key(ec.BrainpoolP256R1()).sign(nonce, ec.ECDSA(hashes.SHA256()))
    assert aa.verify(key, nonce, other, None) is False


# --- SignerInfo issuer matching, id-data -----------------------------------------------------------


def resigned(sod: bytes, pki: SpecimenPki, change: Callable[[cms.SignedData], None]) -> bytes:
    """EF.SOD after ``change`` to its SignedData, signed attributes signed again (constructed)."""
    info = cms.ContentInfo.load(tlv.read_tlv(sod).value)
    signed = info["content"]
    change(signed)
    signer = signed["signer_infos"][0]
    attrs = signer["signed_attrs"]
    key = pki.signer_key
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    signer["signature"] = key.sign(attrs.untag().dump(force=True), ec.ECDSA(hashes.SHA256()))
    return tlv.encode(0x77, info.dump(force=True))


def test_5_signer_issuer_in_another_rdn_order_or_by_key_identifier() -> None:
    pki = make_pki("order")
    files = card_files(CARD, pki)
    cert = asn1_x509.Certificate.load(pki.signer.public_bytes(serialization.Encoding.DER))

    def reorder(signed: cms.SignedData) -> None:
        sid = signed["signer_infos"][0]["sid"].chosen
        rdns = list(cert.issuer.chosen)
        sid["issuer"] = asn1_x509.Name(name="", value=asn1_x509.RDNSequence(list(reversed(rdns))))

    def by_key_id(signed: cms.SignedData) -> None:
        ski = hashlib.sha1(bytes(cert.public_key["public_key"].contents[1:])).digest()
        signed["signer_infos"][0]["sid"] = cms.SignerIdentifier(
            name="subject_key_identifier", value=ski
        )
        signed["signer_infos"][0]["version"] = "v3"

    for change in (reorder, by_key_id):
        sod = resigned(files[lds.Ef.SOD], pki, change)
        verdict = pa.passive_auth(sod, groups_of(files), [pki.csca])
        assert (verdict.hashes_valid, verdict.signature_valid, verdict.chain_valid) == (
            True,
            True,
            True,
        )


def test_6_sod_with_econtent_type_id_data() -> None:
    pki = make_pki("id-data")
    files = card_files(CARD, pki)

    def to_id_data(signed: cms.SignedData) -> None:
        signed["encap_content_info"]["content_type"] = ID_DATA
        signer = signed["signer_infos"][0]
        attrs = cms.CMSAttributes(
            [
                {"type": "content_type", "values": [cms.ContentType(ID_DATA)]},
                {
                    "type": "message_digest",
                    "values": [
                        a["values"][0]
                        for a in signer["signed_attrs"]
                        if a["type"].native == "message_digest"
                    ][0:1],
                },
            ]
        )
        signer["signed_attrs"] = attrs

    sod = resigned(files[lds.Ef.SOD], pki, to_id_data)
    verdict = pa.passive_auth(sod, groups_of(files), [pki.csca])
    assert (verdict.hashes_valid, verdict.signature_valid, verdict.chain_valid) == (
        True,
        True,
        True,
    )


# --- DG2: ISO/IEC 39794-5, JPEG 2000 ---------------------------------------------------------------


def iso39794_dg2(image: bytes) -> bytes:
    """DG2 whose biometric data block is an ISO/IEC 39794-5 face image data block (constructed:
    context-tagged DER, version block, then a representation with the image in a 2D block)."""
    version = tlv.encode(0xA0, tlv.encode(0x80, b"\x00") + tlv.encode(0x81, b"\x00"))
    image_block = tlv.encode(
        0xA0, tlv.encode(0x80, image) + tlv.encode(0xA1, tlv.encode(0x80, b"\x00"))
    )
    representation = tlv.encode(0x30, tlv.encode(0x80, b"\x01") + tlv.encode(0xA1, image_block))
    block = tlv.encode(0xA1, version + tlv.encode(0xA1, representation))
    header = (
        tlv.encode(0x80, b"\x01\x02") + tlv.encode(0x81, b"\x02") + tlv.encode(0x87, b"\x01\x01")
    )
    template = tlv.encode(0xA1, header) + tlv.encode(0x5F2E, block)
    group = tlv.encode(0x02, b"\x01") + tlv.encode(0x7F60, template)
    return tlv.encode(0x75, tlv.encode(0x7F61, group))


def test_7_dg2_in_iso_39794_5_gives_its_face() -> None:
    jpeg = render_face(CARD.looks)
    face = lds.parse_dg2(iso39794_dg2(jpeg))
    assert (face.mime, face.data) == ("image/jpeg", jpeg)


def jp2(size: tuple[int, int] = (60, 80)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, (200, 150, 120)).save(out, format="JPEG2000")
    return out.getvalue()


def test_jpeg_2000_faces_get_a_jpeg_for_display() -> None:
    image = jp2()
    face = lds.parse_dg2(build_dg2(image))
    assert face.mime == "image/jp2"
    shown = lds.display_jpeg(face)
    assert shown.data == image
    assert shown.display_jpeg is not None
    with Image.open(io.BytesIO(shown.display_jpeg)) as decoded:
        assert (decoded.format, decoded.size) == ("JPEG", (60, 80))
    assert lds.display_jpeg(lds.parse_dg2(build_dg2(render_face(CARD.looks)))).display_jpeg is None


# --- AIM identifiers ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("identifier", "name"),
    [
        ("]K0", "code16k"),
        ("]J0", "dotcode"),
        ("]O4", "codablock"),
        ("]h0", "hanxin"),
        ("]B0", "telepen"),
        ("]T0", "code49"),
        ("]R0", "iata2of5"),
        ("]S0", "industrial2of5"),
        ("]D0", "codeone"),
        ("]g0", "gridmatrix"),
    ],
)
def test_8_aim_identifiers_outside_the_old_table_are_stripped(identifier: str, name: str) -> None:
    assert aim_symbology(identifier) == name
    assert parse_text(f"{identifier}HS-000123", TextFormat(aim=True)) == Code("HS-000123", name)


def test_8_a_registry_letter_this_table_lacks_is_still_an_identifier() -> None:
    assert aim_symbology("]w0") == "other"
    assert aim_symbology("]Q?") is None


# --- a read never dies ----------------------------------------------------------------------------


async def read(chip: EmrtdChip) -> IdentityResult:
    async def transmit(raw: bytes) -> bytes:
        return chip.process(raw)

    return await read_identity(transmit, CARD.bac_key(), lambda *_: None, today=TODAY, cscas=None)


def swap_group(files: dict[int, bytes], fid: int, content: bytes) -> dict[int, bytes]:
    changed = dict(files)
    changed[fid] = content
    return changed


async def test_a_bad_dg13_loses_neither_mrz_nor_face() -> None:
    keys_ = ChipKeys.generate()
    files = card_files(CARD, chip_keys=keys_)
    broken = swap_group(files, lds.Ef.DG13, bytes.fromhex("6D0830060201010C01FF"))
    result = await read(EmrtdChip(broken, CARD.bac_key(), CARD.can, keys_))
    assert result.dg13 is None
    assert result.mrz.document_number == "099000123"
    assert result.face.mime == "image/jpeg"
    subjects = {(i.subject, i.status) for i in result.issues}
    assert ("DG13", "unreadable") in subjects
    assert ("DG13", "unverified") in subjects  # its hash no longer matches EF.SOD
    assert result.chip_authentication is True
    assert result.active_authentication is True


async def test_a_fully_verified_read_has_no_issues() -> None:
    keys_ = ChipKeys.generate()
    result = await read(
        EmrtdChip(card_files(CARD, chip_keys=keys_), CARD.bac_key(), CARD.can, keys_)
    )
    assert result.issues == []


def test_an_unknown_signature_algorithm_is_unknown_not_a_crash() -> None:
    pki = make_pki("unknown")
    files = card_files(CARD, pki)

    def ed25519(signed: cms.SignedData) -> None:
        signed["signer_infos"][0]["signature_algorithm"] = algos.SignedDigestAlgorithm(
            {"algorithm": "ed25519"}
        )

    sod = resigned(files[lds.Ef.SOD], pki, ed25519)
    issues: list = []
    verdict = pa.passive_auth(sod, groups_of(files), [pki.csca], issues)
    assert (verdict.hashes_valid, verdict.signature_valid) == (True, False)
    assert [(i.subject, i.status) for i in issues] == [("EF.SOD signature", "unknown")]


# --- foreign documents: TD3 and TD2 MRZs -----------------------------------------------------


def test_td3_and_td2_mrz_of_the_icao_specimens() -> None:
    """The specimen MRZs of ICAO 9303-4 (passport, TD3) and 9303-6 (TD2), Anna Maria Eriksson."""
    td3 = parse_mrz(
        "P<UTOERIKSSON<<ANNA<MARIA<<<<<<<<<<<<<<<<<<<L898902C36UTO7408122F1204159ZE184226B<<<<<10",
        TODAY,
    )
    assert (td3.document_code, td3.document_number, td3.optional_data) == (
        "P",
        "L898902C3",
        "ZE184226B",
    )
    assert (td3.date_of_birth, td3.sex, td3.date_of_expiry) == ("1974-08-12", "F", "2012-04-15")
    assert (td3.surname, td3.given_names, td3.nationality) == ("ERIKSSON", "ANNA MARIA", "UTO")
    td2 = parse_mrz(
        "I<UTOERIKSSON<<ANNA<MARIA<<<<<<<<<<<D231458907UTO7408122F1204159<<<<<<<6", TODAY
    )
    assert (td2.document_code, td2.document_number, td2.date_of_expiry) == (
        "I",
        "D23145890",
        "2012-04-15",
    )
    with pytest.raises(ProtocolError, match="composite"):
        parse_mrz("I<UTOERIKSSON<<ANNA<MARIA<<<<<<<<<<<D231458907UTO7408122F1204159<<<<<<<5", TODAY)
    with pytest.raises(ProtocolError, match="personal number"):
        parse_mrz(
            "P<UTOERIKSSON<<ANNA<MARIA<<<<<<<<<<<<<<<<<<<"
            "L898902C36UTO7408122F1204159ZE184226C<<<<<10",
            TODAY,
        )


def test_1_chip_authentication_on_an_explicit_curve_matching_no_named_one() -> None:
    """DG14's key on brainpoolP256r1's group with generator 2G (constructed): both ends agree."""
    from devices.card_reader.icao.apdu import CommandApdu

    named = curves.BRAINPOOLP256r1
    custom = curves.Curve("custom", named.curve, named.generator * 2, (1, 3, 9999, 2))
    chip_private = 0x1234567890ABCDEF
    point = custom.generator * chip_private
    public = ec.EllipticCurvePublicNumbers(
        int(point.x()), int(point.y()), ec.BrainpoolP256R1()
    ).public_key()
    info = ca.CaInfo(f"{ca.ID_CA_ECDH}.2", 1, None)
    terminal = ca.CaTerminal(info, explicit_spki(public, custom), ephemeral_key=0xCAFE)
    assert terminal.domain.name == "explicit"
    ephemeral = terminal.domain.decode(terminal.public_key())
    shared = terminal.domain.x_bytes(ephemeral * chip_private)
    chip_side = ca.channel(info, shared)
    command = CommandApdu(0x00, 0xB0, 0x00, 0x00, le=4)
    assert chip_side.unwrap(terminal.session().protect(command)) == command


async def test_without_a_readable_ef_com_and_ef_sod_the_mrz_and_face_still_come_back() -> None:
    """EF.COM missing and EF.SOD malformed (constructed): unverified data, marked so."""
    files = card_files(CARD)
    del files[int(lds.Ef.COM)]
    files[int(lds.Ef.SOD)] = tlv.encode(0x77, tlv.encode(0x30, tlv.encode(0x02, b"\x01")))
    result = await read(EmrtdChip(files, CARD.bac_key(), CARD.can))
    assert result.mrz.document_number == "099000123"
    assert result.face.mime == "image/jpeg"
    assert result.dg13 is None  # EF.COM would have listed it
    passive = result.passive_auth
    assert (passive.hashes_valid, passive.signature_valid, passive.chain_valid) == (
        False,
        False,
        None,
    )
    assert [(i.subject, i.status) for i in result.issues] == [
        ("EF.COM", "unreadable"),
        ("EF.SOD", "unreadable"),
        ("DG1", "unverified"),
        ("DG2", "unverified"),
    ]


async def test_without_ef_com_the_groups_ef_sod_lists_are_read() -> None:
    files = card_files(CARD)
    del files[int(lds.Ef.COM)]
    result = await read(EmrtdChip(files, CARD.bac_key(), CARD.can))
    assert result.dg13 is not None
    assert result.passive_auth.hashes_valid is True
    assert [(i.subject, i.status) for i in result.issues] == [("EF.COM", "unreadable")]
