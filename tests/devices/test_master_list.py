"""CSCA master lists: parse, verify, and load from ``csca_dir`` (constructed lists).

The lists here are *constructed* by this project in the ICAO 9303-12 shape (CMS
SignedData, eContentType 2.23.136.1.1.2, ``CscaMasterList``), signed by a master
list signer that a listed CSCA issued; no published master list is in the corpus.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from pathlib import Path

import pytest
from asn1crypto import algos, cms, core
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from devices.card_reader.icao import lds, masterlist, pa
from devices.card_reader.icao.pa import as_asn1
from devices.card_reader.pcsc import load_cscas
from devices.errors import HardwareError, ProtocolError
from devices.sim.card_reader.specimen_cards import SPECIMEN_CARDS
from devices.sim.card_reader.vcard.files import SpecimenPki, card_files, make_pki


def certificate(
    subject: str,
    key: ec.EllipticCurvePrivateKey,
    issuer: str,
    issuer_key: ec.EllipticCurvePrivateKey,
) -> x509.Certificate:
    now = dt.datetime.now(tz=dt.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
        .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer)]))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=30))
        .sign(issuer_key, hashes.SHA256())
    )


def build_list(
    cscas: list[x509.Certificate], signer: x509.Certificate, signer_key: ec.EllipticCurvePrivateKey
) -> bytes:
    """A master list of ``cscas`` signed by ``signer`` (constructed)."""
    content = masterlist.CscaMasterList(
        {
            "version": 0,
            "cert_list": [
                asn1_x509.Certificate.load(c.public_bytes(serialization.Encoding.DER))
                for c in cscas
            ],
        }
    ).dump()
    attrs = cms.CMSAttributes(
        [
            {"type": "content_type", "values": [cms.ContentType(masterlist.MASTER_LIST_OID)]},
            {"type": "message_digest", "values": [hashlib.sha256(content).digest()]},
        ]
    )
    cert = asn1_x509.Certificate.load(signer.public_bytes(serialization.Encoding.DER))
    info = cms.SignerInfo(
        {
            "version": "v1",
            "sid": cms.SignerIdentifier(
                {
                    "issuer_and_serial_number": {
                        "issuer": cert.issuer,
                        "serial_number": cert.serial_number,
                    }
                }
            ),
            "digest_algorithm": {"algorithm": "sha256"},
            "signed_attrs": attrs,
            "signature_algorithm": algos.SignedDigestAlgorithm({"algorithm": "sha256_ecdsa"}),
            "signature": signer_key.sign(attrs.dump(), ec.ECDSA(hashes.SHA256())),
        }
    )
    signed = cms.SignedData(
        {
            "version": "v3",
            "digest_algorithms": [{"algorithm": "sha256"}],
            "encap_content_info": {
                "content_type": masterlist.MASTER_LIST_OID,
                "content": core.ParsableOctetString(content),
            },
            "certificates": [cert],
            "signer_infos": [info],
        }
    )
    return cms.ContentInfo({"content_type": "signed_data", "content": signed}).dump()


@pytest.fixture(scope="module")
def published() -> tuple[bytes, SpecimenPki, x509.Certificate]:
    """A state's list: its CSCA (which issued the list signer) and a foreign state's CSCA."""
    state = make_pki("VN CSCA")
    foreign = make_pki("foreign CSCA")
    csca_key = ec.generate_private_key(ec.SECP256R1())
    csca = certificate("ML CSCA", csca_key, "ML CSCA", csca_key)
    signer_key = ec.generate_private_key(ec.SECP256R1())
    signer = certificate("ML signer", signer_key, "ML CSCA", csca_key)
    return build_list([csca, state.csca, foreign.csca], signer, signer_key), state, csca


def test_a_master_list_is_trusted_through_its_publishers_csca(
    published: tuple[bytes, SpecimenPki, x509.Certificate],
) -> None:
    data, state, publisher = published
    listed = masterlist.parse_master_list(data, [publisher])
    assert (listed.trusted, listed.reason) == (True, None)
    assert len(listed.cscas) == 3
    files = card_files(SPECIMEN_CARDS["default"], state)
    groups = {1: files[lds.Ef.DG1], 2: files[lds.Ef.DG2], 13: files[lds.Ef.DG13]}
    assert pa.passive_auth(files[lds.Ef.SOD], groups, listed.cscas).chain_valid is True


def test_a_list_vouching_only_for_itself_is_not_trusted(
    published: tuple[bytes, SpecimenPki, x509.Certificate],
) -> None:
    data, _, _ = published
    alone = masterlist.parse_master_list(data)
    assert alone.trusted is False
    assert alone.reason is not None
    assert "only by a CSCA in the list itself" in alone.reason


def test_a_tampered_or_unchained_list_is_not_trusted(
    published: tuple[bytes, SpecimenPki, x509.Certificate],
) -> None:
    data, _, publisher = published
    flipped = bytearray(data)
    flipped[len(data) // 2] ^= 0x01
    try:
        tampered = masterlist.parse_master_list(bytes(flipped), [publisher])
    except ProtocolError:  # a flipped length byte breaks the ASN.1: refused too
        tampered = None
    assert tampered is None or tampered.trusted is False
    key = ec.generate_private_key(ec.SECP256R1())
    stranger = certificate("stranger", key, "nobody", key)
    alone = masterlist.parse_master_list(
        build_list([make_pki("x").csca], stranger, key), [publisher]
    )
    assert alone.trusted is False
    assert alone.reason == "the signer was issued by no trusted CSCA"


def test_csca_dir_takes_a_list_its_publishers_csca_vouches_for(
    published: tuple[bytes, SpecimenPki, x509.Certificate], tmp_path: Path
) -> None:
    data, state, publisher = published
    (tmp_path / "icao.ml").write_bytes(data)
    with pytest.raises(HardwareError, match=r"icao\.ml.*not trusted"):
        load_cscas(tmp_path)
    (tmp_path / "publisher.pem").write_bytes(publisher.public_bytes(serialization.Encoding.PEM))
    loaded = [as_asn1(c).dump() for c in load_cscas(tmp_path)]
    assert state.csca.public_bytes(serialization.Encoding.DER) in loaded
    assert len(loaded) == 4  # the publisher's certificate file and the three listed
    key = ec.generate_private_key(ec.SECP256R1())
    stranger = certificate("stranger", key, "nobody", key)
    (tmp_path / "bad.ml").write_bytes(build_list([make_pki("x").csca], stranger, key))
    with pytest.raises(HardwareError, match=r"bad\.ml.*not trusted"):
        load_cscas(tmp_path)


# --- real master lists: Germany (BSI) and the Netherlands ---------------------------------------

LISTS = Path(__file__).parent.parent / "data" / "icao" / "masterlists"
REAL = [
    ("DE_ML_2026-05-28-08-28-45.ml", "DE_ROOT_CA_CSCA07.cer"),
    ("NL_ML_2026-07-22.ml", "NL_ROOT_CA.cer"),
]


@pytest.mark.parametrize(("name", "root"), REAL)
def test_a_published_master_list_verifies_through_its_states_root(name: str, root: str) -> None:
    data = (LISTS / name).read_bytes()
    anchor = asn1_x509.Certificate.load((LISTS / root).read_bytes())
    listed = masterlist.parse_master_list(data, [anchor])
    assert (listed.trusted, listed.reason) == (True, None)
    assert len(listed.cscas) > 400
    vietnam = [c for c in listed.cscas if c.subject.native.get("country_name") == "VN"]
    assert [c.subject.native["common_name"] for c in vietnam] == ["CSCA ePassport Vietnam"]
    explicit = [
        c
        for c in listed.cscas
        if c.public_key.algorithm == "ec"
        and c.public_key["algorithm"]["parameters"].name == "specified"
    ]
    assert explicit, "real lists hold CSCAs with explicit EC parameters"
    assert masterlist.parse_master_list(data).trusted is False


def test_the_german_list_fails_against_the_dutch_root() -> None:
    data = (LISTS / REAL[0][0]).read_bytes()
    dutch = asn1_x509.Certificate.load((LISTS / REAL[1][1]).read_bytes())
    assert masterlist.parse_master_list(data, [dutch]).trusted is False
