"""Proposed device configs and udev rules from detected hardware; batch and fleet answers."""

from __future__ import annotations

import datetime as dt
import tomllib
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from provisioning.detect import detect
from provisioning.plan import validate
from provisioning.proposal import ProposalError, propose
from tests.provisioning import boards, support


def test_pi4_proposal(tmp_path: Path) -> None:
    inventory = detect(boards.build(tmp_path, boards.rpi4()), pcsc=lambda: boards.PI4_PCSC)
    proposal = propose(inventory, {"ttyACM1": "coinAcceptor", "/dev/ttyACM2": "none"})
    assert proposal.devices == {
        "coinAcceptor": {"class": "coinAcceptor", "driver": "cctalk", "port": "/dev/kiosk/coin"},
        "printer": {
            "class": "printer",
            "driver": "escpos",
            "connection": "file",
            "device": "/dev/kiosk/printer",
        },
        "cardReader": {
            "class": "cardReader",
            "driver": "pcsc",
            "reader": "^ACS ACR39U ICC Reader",
        },
        "camera": {"class": "camera", "driver": "picamera2"},
    }
    assert proposal.rules == [
        # the CH9102 has no serial number: its USB port tells it from its twin on 1-1.3.4
        'SUBSYSTEM=="tty", ATTRS{idVendor}=="1a86", ATTRS{idProduct}=="55d4", KERNELS=="1-1.3.3", '
        'SYMLINK+="kiosk/coin", GROUP="dialout", MODE="0660"',
        'SUBSYSTEM=="usbmisc", ATTRS{idVendor}=="0416", ATTRS{idProduct}=="5011", '
        'ATTRS{serial}=="Printer", SYMLINK+="kiosk/printer", GROUP="lp", MODE="0660"',
    ]
    # The tables are valid for the drivers this machine has; the others are named.
    unchecked = validate({"board": {"id": "hcm-q6-0001"}, "devices": proposal.devices})
    # (ccTalk may not be merged yet; picamera2 does not install off a Pi)
    assert set(unchecked) <= {"coinAcceptor", "camera"}
    notes = "\n".join(proposal.notes)
    assert "/dev/ttyACM0 (2341:0043 Arduino Uno)" in notes
    assert "ttyACM2" not in notes  # assigned "none"
    assert "GPIO header on /dev/gpiochip0 (pinctrl-bcm2711)" in notes


def test_pi3_serial_scanner(tmp_path: Path) -> None:
    inventory = detect(boards.build(tmp_path, boards.rpi3()), pcsc=tuple)
    proposal = propose(inventory, {"ttyUSB0": "scanner"})
    assert proposal.devices == {
        "scanner": {"class": "scanner", "driver": "serial", "port": "/dev/kiosk/scanner"},
    }
    assert 'KERNELS=="1-1.2", SYMLINK+="kiosk/scanner"' in proposal.udev_rules()


def test_bad_assignments(tmp_path: Path) -> None:
    inventory = detect(boards.build(tmp_path, boards.rpi3()), pcsc=tuple)
    with pytest.raises(ProposalError, match="no serial port ttyUSB9"):
        propose(inventory, {"ttyUSB9": "scanner"})
    with pytest.raises(ProposalError, match="not 'printer'"):
        propose(inventory, {"ttyUSB0": "printer"})


def test_batch_csv(tmp_path: Path) -> None:
    batch = tmp_path / "boards.csv"
    batch.write_text("board,tenant,site\nhcm-q6-0001,hcm,Phường 1\nhcm-q6-0002,hcm,Phường 2\n")
    images = tmp_path / "images"
    done = support.provision(
        Path(f"{images}/{{board}}"), "--batch", str(batch), "--simulate", "--yes"
    )
    assert done.returncode == 0, done.stdout
    for n in (1, 2):
        config = tomllib.loads((images / f"hcm-q6-000{n}/etc/kioskd/kioskd.toml").read_text())
        assert config["board"] == {"id": f"hcm-q6-000{n}", "tenant": "hcm", "site": f"Phường {n}"}


def _ca(tmp_path: Path) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "kiosk fleet test CA")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now)
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    path = tmp_path / "ca.pem"
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return key, cert, path


def _sign(csr_pem: bytes, ca_key: ec.EllipticCurvePrivateKey, ca: x509.Certificate) -> bytes:
    csr = x509.load_pem_x509_csr(csr_pem)
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(csr.subject)
        .issuer_name(ca.subject)
        .public_key(csr.public_key())
        .serial_number(2)
        .not_valid_before(now)
        .not_valid_after(now + dt.timedelta(days=1))
        .sign(ca_key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM)


def test_fleet_identity(tmp_path: Path) -> None:
    ca_key, ca, ca_path = _ca(tmp_path)
    root = support.make_image(tmp_path / "image")
    args = [
        "--yes",
        "--simulate",
        "--board",
        "hcm-q6-0007",
        "--tenant",
        "hcm",
        "--fleet-url",
        "mqtts://fleet.example:8883",
    ]
    done = support.provision(root, *args, "--fleet-ca", str(ca_path))
    assert done.returncode == 0, done.stdout
    fleet = root / "etc/kioskd/fleet"
    assert (fleet / "key.pem").stat().st_mode & 0o777 == 0o600
    csr = x509.load_pem_x509_csr((fleet / "csr.pem").read_bytes())
    assert csr.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "hcm-q6-0007"
    assert csr.is_signature_valid
    uplink = tomllib.loads((root / "etc/kioskd/kioskd.toml").read_text())["uplink"]
    assert uplink == {
        "enabled": False,
        "url": "mqtts://fleet.example:8883",
        "ca_file": "/etc/kioskd/fleet/ca.pem",
        "cert_file": "/etc/kioskd/fleet/cert.pem",
        "key_file": "/etc/kioskd/fleet/key.pem",
        "username": "hcm-q6-0007",
        "health_interval_s": 60.0,
    }
    key_before = (fleet / "key.pem").read_bytes()
    assert support.provision(root, "--check").returncode == 0  # key and CSR are kept
    cert = tmp_path / "board.pem"
    cert.write_bytes(_sign((fleet / "csr.pem").read_bytes(), ca_key, ca))
    done = support.provision(root, "--yes", "--fleet-cert", str(cert))
    assert done.returncode == 0, done.stdout
    assert (fleet / "key.pem").read_bytes() == key_before
    assert (fleet / "cert.pem").read_bytes() == cert.read_bytes()
    assert tomllib.loads((root / "etc/kioskd/kioskd.toml").read_text())["uplink"]["enabled"] is True
    # A certificate for another key is refused.
    other = ec.generate_private_key(ec.SECP256R1())
    foreign_csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "x")]))
        .sign(other, hashes.SHA256())
    )
    cert.write_bytes(_sign(foreign_csr.public_bytes(serialization.Encoding.PEM), ca_key, ca))
    refused = support.provision(root, "--yes", "--fleet-cert", str(cert))
    assert refused.returncode == 2
    assert "not issued for this board's key" in refused.stdout


def test_fleet_password_needs_tls(tmp_path: Path) -> None:
    """A fleet password over plain mqtt:// is refused, naming the option; nothing is written."""
    _, _, ca_path = _ca(tmp_path)
    root = support.make_image(tmp_path / "image")
    password = tmp_path / "fleet.password"
    password.write_text("s3cret-fleet\n")
    args = ["--yes", "--simulate", "--board", "hcm-q6-0008", "--fleet-ca", str(ca_path)]
    args += ["--fleet-password-file", str(password)]
    refused = support.provision(root, *args, "--fleet-url", "mqtt://fleet.example:1883")
    assert refused.returncode == 2
    assert "--fleet-url mqtts://" in refused.stdout
    assert "mqtt://fleet.example:1883" in refused.stdout
    assert not (root / "etc/kioskd").exists()
    done = support.provision(root, *args, "--fleet-url", "mqtts://fleet.example:8883")
    assert done.returncode == 0, done.stdout
    uplink = tomllib.loads((root / "etc/kioskd/kioskd.toml").read_text())["uplink"]
    assert uplink["password_file"] == "/etc/kioskd/fleet/password"
