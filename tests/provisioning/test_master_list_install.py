"""``kioskd provision master-list``: a trusted list is installed, an untrusted one refused.

The lists are constructed (tests/devices/test_master_list.py builds them).
"""

from __future__ import annotations

from pathlib import Path

from cryptography.hazmat.primitives.asymmetric import ec
from typer.testing import CliRunner

from daemon.cli import app
from devices.card_reader.pcsc import load_cscas
from devices.sim.vcard.files import make_pki
from tests.devices.test_master_list import build_list, certificate


def _trusted_list() -> tuple[bytes, int]:
    key = ec.generate_private_key(ec.SECP256R1())
    csca = certificate("ML CSCA", key, "ML CSCA", key)
    signer_key = ec.generate_private_key(ec.SECP256R1())
    signer = certificate("ML signer", signer_key, "ML CSCA", key)
    return build_list([csca, make_pki("VN").csca], signer, signer_key), 2


def test_a_trusted_list_is_installed_where_the_reader_reads_it(tmp_path: Path) -> None:
    data, count = _trusted_list()
    source = tmp_path / "VN_masterlist.ml"
    source.write_bytes(data)
    root = tmp_path / "image"
    result = CliRunner().invoke(app, ["provision", "master-list", str(source), "--root", str(root)])
    assert result.exit_code == 0, result.output
    installed = root / "etc" / "kioskd" / "csca" / "VN_masterlist.ml"
    assert installed.read_bytes() == data
    assert oct(installed.stat().st_mode & 0o777) == "0o644"
    assert f"installed {count} CSCAs" in result.output
    assert len(load_cscas(installed.parent)) == count


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
