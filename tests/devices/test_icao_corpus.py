"""Every parser and verifier over the public test corpus (tests/data/icao/SOURCES.md).

The files are BSI TR-03105-5 and ETSI TR 103 200 reference documents and a real
passport's Active Authentication exchanges, as pymrtd's tests publish them; the
expected verdicts are the ones pymrtd asserts for the same files.
"""

from __future__ import annotations

import hashlib
import io
import json
from datetime import date
from pathlib import Path

import pytest
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from PIL import Image

from devices.card_reader.icao import aa, ca, keys, lds, pa
from devices.card_reader.icao.reader import read_identity
from devices.card_reader.identity import BacKey, ReadIssue
from devices.sim.card_reader.vcard.chip import EmrtdChip

DATA = Path(__file__).parent.parent / "data" / "icao"
REFERENCE_SETS = ["bsi-tr03105-5", "etsi-tr103200"]
#: Data group number -> file name in a reference set.
GROUP_FILES = {1: "DG1.bin", 14: "DG14.bin", 15: "DG15.bin"}


def groups(name: str) -> dict[int, bytes]:
    return {n: (DATA / name / f).read_bytes() for n, f in GROUP_FILES.items()}


def test_every_corpus_file_is_listed_in_sources() -> None:
    sources = (DATA / "SOURCES.md").read_text("utf-8")
    files = [p for p in DATA.rglob("*") if p.is_file() and p.name != "SOURCES.md"]
    assert files
    for path in files:
        assert f"`{path.relative_to(DATA).as_posix()}`" in sources


@pytest.mark.parametrize("name", REFERENCE_SETS)
def test_reference_sod_signature_and_document_signer(name: str) -> None:
    sod = pa.parse_sod((DATA / name / "EF_SOD.bin").read_bytes())
    assert sod.hash_name == "sha256"
    check = pa.signature_valid(sod)
    assert (check.valid, check.unknown) == (True, None)
    assert check.signer is not None
    assert check.signer.dump() == (DATA / name / "DSC.cer").read_bytes()
    assert check.signer["signature_algorithm"].signature_algo == "rsassa_pss"


def test_bsi_hashes_cover_dg1_and_dg14_not_dg15() -> None:
    issues: list[ReadIssue] = []
    sod = (DATA / "bsi-tr03105-5" / "EF_SOD.bin").read_bytes()
    verdict = pa.passive_auth(sod, groups("bsi-tr03105-5"), None, issues)
    assert (verdict.hashes_valid, verdict.signature_valid, verdict.chain_valid) == (
        False,
        True,
        None,
    )
    assert issues == [
        ReadIssue(subject="DG15", status="unverified", reason="EF.SOD lists no hash for it")
    ]
    parsed = pa.parse_sod(sod)
    assert sorted(parsed.hashes) == [1, 2, 3, 4, 14]
    assert parsed.hashes[1].hex().upper().startswith("4170CA879FCE6A22")


def test_etsi_hashes_cover_every_group() -> None:
    issues: list[ReadIssue] = []
    sod = (DATA / "etsi-tr103200" / "EF_SOD.bin").read_bytes()
    verdict = pa.passive_auth(sod, groups("etsi-tr103200"), None, issues)
    assert (verdict.hashes_valid, verdict.signature_valid) == (True, True)
    assert issues == []


def test_the_document_signer_is_not_its_own_csca() -> None:
    sod = (DATA / "bsi-tr03105-5" / "EF_SOD.bin").read_bytes()
    dsc = asn1_x509.Certificate.load((DATA / "bsi-tr03105-5" / "DSC.cer").read_bytes())
    assert pa.passive_auth(sod, groups("bsi-tr03105-5"), [dsc]).chain_valid is False


def test_id_data_sod_modified_by_pymrtd_parses_and_its_altered_signature_fails() -> None:
    sod = (DATA / "pymrtd" / "EF_SOD_id_data.bin").read_bytes()
    dg = groups("bsi-tr03105-5")
    issues: list[ReadIssue] = []
    verdict = pa.passive_auth(sod, {1: dg[1], 14: dg[14]}, None, issues)
    assert (verdict.hashes_valid, verdict.signature_valid) == (True, False)
    assert issues == []


@pytest.mark.parametrize("name", REFERENCE_SETS)
def test_reference_dg14_explicit_brainpool_p224_and_3des(name: str) -> None:
    dg14 = ca.parse_dg14((DATA / name / "DG14.bin").read_bytes())
    assert dg14.infos == [ca.CaInfo(ca.ID_CA_ECDH_3DES, 1, None)]
    chosen = dg14.choice()
    assert chosen is not None
    info, key = chosen
    loaded = keys.load_public_key(key)
    assert isinstance(loaded, keys.EcKey)
    assert loaded.curve == "BRAINPOOLP224r1"
    terminal = ca.CaTerminal(info, key)
    assert len(terminal.public_key()) == 1 + 2 * 28
    (mse,) = ca.commands(info, terminal.public_key())
    assert (mse.p1, mse.p2) == (0x41, 0xA6)


@pytest.mark.parametrize("name", REFERENCE_SETS)
def test_reference_dg15_is_an_rsa_1024_key(name: str) -> None:
    key = aa.parse_dg15((DATA / name / "DG15.bin").read_bytes())
    assert not isinstance(key, keys.EcKey)
    assert key.key_size == 1024


@pytest.mark.parametrize(
    ("name", "expiry"), [("bsi-tr03105-5", "2023-10-31"), ("etsi-tr103200", "2013-10-31")]
)
def test_reference_dg1_passport_mrz(name: str, expiry: str) -> None:
    """TD3 (passport) MRZ of the BSI specimen, every check digit verified."""
    mrz = lds.parse_dg1((DATA / name / "DG1.bin").read_bytes(), date(2026, 1, 1))
    assert (mrz.document_code, mrz.issuing_state, mrz.nationality) == ("P", "D", "D")
    assert (mrz.document_number, mrz.surname, mrz.given_names) == (
        "C11T002JM",
        "MUSTERMANN",
        "ERIKA",
    )
    assert (mrz.date_of_birth, mrz.sex, mrz.date_of_expiry) == ("1996-08-12", "F", expiry)
    assert len(mrz.lines) == 2


def test_real_passport_active_authentication_rsa_iso9796_2() -> None:
    record = json.loads((DATA / "pymrtd" / "real_passport_aa_rsa.json").read_text("utf-8"))
    key = aa.parse_dg15((DATA / "pymrtd" / record["dg15"]).read_bytes())
    assert record["exchanges"]
    for exchange in record["exchanges"]:
        challenge = bytes.fromhex(exchange["challenge"])
        signature = bytes.fromhex(exchange["signature"])
        assert aa.verify(key, challenge, signature, None) is True
        assert aa.verify(key, hashlib.sha256(challenge).digest()[:8], signature, None) is False


# --- tsemrtd: a Bundesdruckerei-signed specimen (explicit EC parameters, JPEG 2000) ----------

TSEMRTD = DATA / "tsemrtd"


def tsemrtd_groups() -> dict[int, bytes]:
    names = {1: "EF_DG1.bin", 2: "EF_DG2.bin", 14: "EF_DG14.bin", 15: "EF_DG15.bin"}
    return {n: (TSEMRTD / f).read_bytes() for n, f in names.items()}


def test_tsemrtd_sod_signed_with_explicit_ec_parameters_verifies() -> None:
    sod = pa.parse_sod((TSEMRTD / "EF_SOD.bin").read_bytes())
    check = pa.signature_valid(sod)
    assert (check.valid, check.unknown) == (True, None)
    assert check.signer is not None
    assert check.signer.public_key["algorithm"]["parameters"].name == "specified"
    with pytest.raises(UnsupportedAlgorithm):
        x509.load_der_x509_certificate(check.signer.dump()).public_key()
    assert check.signer["signature_algorithm"].signature_algo == "ecdsa"


def test_tsemrtd_hashes_sha1_and_dg15_unverified() -> None:
    issues: list[ReadIssue] = []
    sod = (TSEMRTD / "EF_SOD.bin").read_bytes()
    verdict = pa.passive_auth(sod, tsemrtd_groups(), None, issues)
    assert (verdict.hashes_valid, verdict.signature_valid) == (False, True)
    assert issues == [
        ReadIssue(subject="DG15", status="unverified", reason="EF.SOD lists no hash for it")
    ]
    assert pa.parse_sod(sod).hash_name == "sha1"
    assert lds.parse_com((TSEMRTD / "EF_COM.bin").read_bytes()) == [1, 2, 3, 14]


def test_tsemrtd_jpeg_2000_portrait_is_decoded_for_display() -> None:
    face = lds.parse_dg2((TSEMRTD / "EF_DG2.bin").read_bytes())
    assert face.mime == "image/jp2"
    assert hashlib.sha256(face.data).hexdigest() == (
        "45f7dcc68564616fef418cf5721ce5851c27af56fc8b762b19762b06275a1a2d"
    )
    shown = lds.display_jpeg(face)
    assert shown.display_jpeg is not None
    # The JPEG 2000 codestream is 413 x 531; its ISO 19794-5 header claims 337 x 449.
    with Image.open(io.BytesIO(face.data)) as original:
        assert original.size == (413, 531)
    with Image.open(io.BytesIO(shown.display_jpeg)) as image:
        assert (image.format, image.size) == ("JPEG", (413, 531))


def test_tsemrtd_dg14_and_a_dg15_modulus_without_its_leading_zero() -> None:
    dg14 = ca.parse_dg14((TSEMRTD / "EF_DG14.bin").read_bytes())
    chosen = dg14.choice()
    assert chosen is not None
    assert chosen[0].protocol == ca.ID_CA_ECDH_3DES
    loaded = keys.load_public_key(chosen[1])
    assert isinstance(loaded, keys.EcKey)
    assert loaded.curve == "BRAINPOOLP224r1"
    dg15 = (TSEMRTD / "EF_DG15.bin").read_bytes()
    assert bytes.fromhex("028180CF") in dg15  # a 1024-bit modulus with its top bit set, no 00
    with pytest.raises(ValueError, match=r"ASN\.1"):
        serialization.load_der_public_key(dg15[3:])
    key = aa.parse_dg15(dg15)
    assert not isinstance(key, keys.EcKey)
    assert key.key_size == 1024


async def test_a_virtual_chip_holding_the_tsemrtd_files_reads_and_fails_chip_authentication() -> (
    None
):
    """The real files on this project's virtual chip: read, verified, and found to be a copy.

    The chip opens with BAC from the specimen's MRZ; every data group EF.COM lists
    (DG1, DG2, DG14; DG3 is not read) matches EF.SOD, whose explicit-parameter
    signature verifies; the virtual chip does not hold DG14's private key, so Chip
    Authentication fails, as it must for a cloned chip.
    """
    files = {
        int(lds.Ef.COM): (TSEMRTD / "EF_COM.bin").read_bytes(),
        int(lds.Ef.SOD): (TSEMRTD / "EF_SOD.bin").read_bytes(),
        int(lds.Ef.DG1): (TSEMRTD / "EF_DG1.bin").read_bytes(),
        int(lds.Ef.DG2): (TSEMRTD / "EF_DG2.bin").read_bytes(),
        int(lds.Ef.DG14): (TSEMRTD / "EF_DG14.bin").read_bytes(),
    }
    key = BacKey(document_number="C11T002JM", date_of_birth="960812", date_of_expiry="131031")
    chip = EmrtdChip(files, key)

    async def transmit(raw: bytes) -> bytes:
        return chip.process(raw)

    result = await read_identity(transmit, key, lambda *_: None, today=date(2026, 1, 1), cscas=None)
    assert result.mrz.name == "MUSTERMANN ERIKA"
    assert result.face.mime == "image/jp2"
    assert result.face.display_jpeg is not None
    assert (result.passive_auth.hashes_valid, result.passive_auth.signature_valid) == (True, True)
    assert result.passive_auth.chain_valid is None
    assert result.chip_authentication is False
    assert result.active_authentication is None
    assert result.dg13 is None
    assert result.issues == []


# --- gmrtd: ICAO 39794-5 application profile DG2 samples ---------------------------------------

GMRTD = DATA / "gmrtd"


@pytest.mark.parametrize(
    "name", ["ICAO_39794_5_AP_DG2_AllFields.dat", "ICAO_39794_5_AP_DG2_MandFields.dat"]
)
def test_iso_39794_5_dg2_gives_the_published_face(name: str) -> None:
    face = lds.parse_dg2((GMRTD / name).read_bytes())
    assert face.data == (GMRTD / "ICAO_39794_5_AP_DG2_Face.jpg").read_bytes()
    assert face.mime == "image/jp2"  # the sample's ".jpg" face is a JPEG 2000 file
    assert lds.display_jpeg(face).display_jpeg is not None
