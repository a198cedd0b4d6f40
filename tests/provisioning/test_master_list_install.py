"""``kioskd provision master-list``: a list is installed only through its publisher's CSCA.

The German master list (BSI, with its root CSCA) is the real one in
tests/data/icao/masterlists (SOURCES.md); the other lists are constructed
(tests/devices/test_master_list.py builds them).
"""

from __future__ import annotations

from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from typer.testing import CliRunner

from daemon.cli import app
from devices.card_reader.pcsc import load_cscas
from devices.sim.card_reader.vcard.files import make_pki
from tests.devices.test_master_list import build_list, certificate

LISTS = Path(__file__).parent.parent / "data" / "icao" / "masterlists"


def test_the_published_german_list_is_installed_with_its_root(tmp_path: Path) -> None:
    source = LISTS / "DE_ML_2026-05-28-08-28-45.ml"
    root = tmp_path / "image"
    refused = CliRunner().invoke(
        app, ["provision", "master-list", str(source), "--root", str(root)]
    )
    assert refused.exit_code == 1
    assert "trust the publishing state's CSCA first" in refused.output
    folder = root / "etc" / "kioskd" / "csca"
    assert not (folder / source.name).exists()
    trust = str(LISTS / "DE_ROOT_CA_CSCA07.cer")
    result = CliRunner().invoke(
        app, ["provision", "master-list", str(source), "--root", str(root), "--trust", trust]
    )
    assert result.exit_code == 0, result.output
    installed = folder / source.name
    assert installed.read_bytes() == source.read_bytes()
    assert oct(installed.stat().st_mode & 0o777) == "0o644"
    assert (folder / "DE_ROOT_CA_CSCA07.der").is_file()
    assert "installed 588 CSCAs" in result.output
    assert len(load_cscas(folder)) == 1 + 588  # the root, then every listed CSCA


def test_a_list_trusted_through_an_installed_csca_needs_no_option(tmp_path: Path) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    publisher = certificate("ML CSCA", key, "ML CSCA", key)
    signer_key = ec.generate_private_key(ec.SECP256R1())
    signer = certificate("ML signer", signer_key, "ML CSCA", key)
    source = tmp_path / "VN_masterlist.ml"
    source.write_bytes(build_list([publisher, make_pki("VN").csca], signer, signer_key))
    root = tmp_path / "image"
    folder = root / "etc" / "kioskd" / "csca"
    folder.mkdir(parents=True)
    (folder / "publisher.pem").write_bytes(publisher.public_bytes(serialization.Encoding.PEM))
    result = CliRunner().invoke(app, ["provision", "master-list", str(source), "--root", str(root)])
    assert result.exit_code == 0, result.output
    assert "installed 2 CSCAs" in result.output


def test_an_untrusted_list_is_refused_and_nothing_is_written(tmp_path: Path) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    stranger = certificate("stranger", key, "nobody", key)
    source = tmp_path / "bad.ml"
    source.write_bytes(build_list([make_pki("x").csca], stranger, key))
    root = tmp_path / "image"
    result = CliRunner().invoke(app, ["provision", "master-list", str(source), "--root", str(root)])
    assert result.exit_code == 1
    assert "not trusted" in result.output
    assert not (root / "etc" / "kioskd" / "csca" / "bad.ml").exists()
    garbage = tmp_path / "garbage.ml"
    garbage.write_bytes(b"not a list")
    result = CliRunner().invoke(
        app, ["provision", "master-list", str(garbage), "--root", str(root)]
    )
    assert result.exit_code == 1
    assert "refused" in result.output
