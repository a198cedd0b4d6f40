"""LDS parsers and passive authentication over the virtual card's files, and DG13 by layout."""

from __future__ import annotations

from datetime import date

import msgspec
import pytest

from devices.card_reader.icao import lds, pa, tlv
from devices.errors import ProtocolError
from devices.sim.card_reader.behaviour import render_face
from devices.sim.card_reader.specimen_cards import SPECIMEN_CARDS
from devices.sim.card_reader.vcard.files import card_files, make_pki, shared_pki

TODAY = date(2026, 1, 1)
CARD = SPECIMEN_CARDS["default"]
FID = {n: int(fid) for n, fid in {1: lds.Ef.DG1, 2: lds.Ef.DG2, 13: lds.Ef.DG13}.items()}


def groups_of(files: dict[int, bytes]) -> dict[int, bytes]:
    return {n: files[fid] for n, fid in FID.items() if fid in files}


def test_the_card_files_parse_back_to_the_specimen() -> None:
    files = card_files(CARD)
    assert lds.parse_com(files[lds.Ef.COM]) == [1, 2, 13]
    mrz = lds.parse_dg1(files[lds.Ef.DG1], TODAY)
    assert (mrz.document_number, mrz.optional_data) == ("099000123", "079099000123")
    assert mrz.lines == CARD.mrz_lines()
    face = lds.parse_dg2(files[lds.Ef.DG2])
    assert face.mime == "image/jpeg"
    assert face.data == render_face(CARD.looks)
    dg13 = lds.parse_dg13(files[lds.Ef.DG13])
    expected = CARD.dg13_record()
    assert expected is not None
    assert dg13 == msgspec.structs.replace(expected, unknown={"15": "specimen"})


def test_a_card_without_dg13_does_not_list_it() -> None:
    files = card_files(SPECIMEN_CARDS["noDg13"])
    assert lds.parse_com(files[lds.Ef.COM]) == [1, 2]
    assert lds.Ef.DG13 not in files


def test_passive_authentication_verdicts() -> None:
    pki = shared_pki()
    files = card_files(CARD, pki)
    groups = groups_of(files)
    sod = files[lds.Ef.SOD]
    ok = pa.passive_auth(sod, groups, [pki.csca])
    assert (ok.hashes_valid, ok.signature_valid, ok.chain_valid) == (True, True, True)
    assert pa.passive_auth(sod, groups, None).chain_valid is None
    other = make_pki("other CSCA")
    wrong = pa.passive_auth(sod, groups, [other.csca])
    assert (wrong.hashes_valid, wrong.signature_valid, wrong.chain_valid) == (True, True, False)


def test_an_rsa_document_signer_verifies() -> None:
    pki = make_pki("RSA", rsa_signer=True)
    files = card_files(CARD, pki)
    verdict = pa.passive_auth(files[lds.Ef.SOD], groups_of(files), [pki.csca])
    assert (verdict.hashes_valid, verdict.signature_valid, verdict.chain_valid) == (
        True,
        True,
        True,
    )
    assert (
        pa.passive_auth(files[lds.Ef.SOD], groups_of(files), [shared_pki().csca]).chain_valid
        is False
    )


def test_a_tampered_group_fails_its_hash_only() -> None:
    pki = shared_pki()
    files = card_files(CARD, pki, tamper=2)
    verdict = pa.passive_auth(files[lds.Ef.SOD], groups_of(files), [pki.csca])
    assert verdict.hashes_valid is False
    assert verdict.signature_valid is True
    assert verdict.chain_valid is True


def test_a_forged_signature_is_reported() -> None:
    pki = shared_pki()
    files = card_files(CARD, pki)
    sod = bytearray(files[lds.Ef.SOD])
    # The ECDSA signature is the last BIT of the SignerInfo, at the end of the file.
    sod[-5] ^= 0x01
    verdict = pa.passive_auth(bytes(sod), groups_of(files), [pki.csca])
    assert verdict.signature_valid is False
    assert verdict.hashes_valid is True


def test_malformed_files_are_protocol_errors() -> None:
    with pytest.raises(ProtocolError):
        pa.parse_sod(tlv.encode(0x77, b"\x30\x03\x02\x01"))
    with pytest.raises(ProtocolError):
        lds.parse_dg2(tlv.encode(0x75, tlv.encode(0x7F61, tlv.encode(0x02, b"\x01"))))
    with pytest.raises(ProtocolError):
        lds.parse_dg13(b"\x6d\x05\x30\x03\x02")
    with pytest.raises(ProtocolError):
        lds.parse_com(b"\x60\x81")


def entry(number: int, *values: bytes) -> bytes:
    return tlv.encode(0x30, tlv.encode(0x02, bytes([number])) + b"".join(values))


def utf8(text: str) -> bytes:
    return tlv.encode(0x0C, text.encode())


def test_dg13_layout_as_independent_readers_decode_it() -> None:
    """Entries ``30 LL 02 01 NN 0C LL text`` (field numbers 1-13, 16), dates dd/mm/yyyy.

    The layout public CCCD readers decode (docs/card-reader.md lists them): an
    outer wrapper, parents' names as a nested pair, an expiry of "no limit",
    a date with an unknown day, an unnamed field and an empty one.
    """
    body = b"".join(
        [
            entry(1, utf8("001099012345")),
            entry(2, utf8("Đỗ Thị Mỹ Duyên")),
            entry(3, utf8("00/07/1999")),
            entry(4, utf8("Nữ")),
            entry(5, utf8("Việt Nam")),
            entry(6, utf8("Kinh")),
            entry(7, utf8("")),
            entry(11, utf8("10/08/2021")),
            entry(12, utf8("Không thời hạn")),
            entry(13, tlv.encode(0x30, utf8("Đỗ Văn A") + utf8("Lê Thị B"))),
            entry(16, utf8("013456789")),
            entry(20, utf8("x"), utf8("y")),
        ]
    )
    dg13 = lds.parse_dg13(tlv.encode(0x6D, tlv.encode(0x30, body)))
    assert dg13.id_number == "001099012345"
    assert dg13.full_name == "Đỗ Thị Mỹ Duyên"
    assert dg13.date_of_birth == "1999-07"
    assert dg13.sex == "Nữ"
    assert dg13.religion is None
    assert dg13.date_of_issue == "2021-08-10"
    assert dg13.date_of_expiry is None
    assert (dg13.father_name, dg13.mother_name) == ("Đỗ Văn A", "Lê Thị B")
    assert dg13.old_id_number == "013456789"
    assert dg13.unknown == {"20": "x | y"}
    assert dg13.place_of_residence is None
