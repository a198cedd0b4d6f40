"""Provisioning installs the fleet's signed repository (source entry + public key), and with
the Debian package installed it enables the packaged unit instead of copying it into /etc."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from importlib import resources
from pathlib import Path

import pytest

from provisioning import apt
from tests.provisioning import support

BOARD = "hcm-q6-0002"


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, Path]]:
    """A test signing key made by gpg: (public key file, private key file)."""
    home = tmp_path_factory.mktemp("gnupg")
    home.chmod(0o700)
    gpg = ["gpg", "--homedir", str(home), "--batch", "--pinentry-mode", "loopback"]
    subprocess.run(
        [*gpg, "--passphrase", "", "--quick-gen-key", "kioskd test <t@example>", "ed25519", "sign"],
        check=True,
        capture_output=True,
        timeout=60,
    )
    public, private = home / "public.asc", home / "private.asc"
    public.write_bytes(
        subprocess.run([*gpg, "--armor", "--export"], check=True, capture_output=True).stdout
    )
    private.write_bytes(
        subprocess.run(
            [*gpg, "--passphrase", "", "--armor", "--export-secret-keys"],
            check=True,
            capture_output=True,
        ).stdout
    )
    yield public, private
    # gpg started an agent for this home: it would outlive the test.
    subprocess.run(
        ["gpgconf", "--homedir", str(home), "--kill", "gpg-agent"], check=False, timeout=30
    )


def test_repository_and_key_are_installed_and_kept(tmp_path: Path, keys: tuple[Path, Path]) -> None:
    public, _ = keys
    image = support.provisioned(
        tmp_path, BOARD, "--apt-url", "https://apt.fleet.example/kioskd", "--apt-key", str(public)
    )
    root = image.root
    assert (root / apt.KEYRING.lstrip("/")).read_bytes() == public.read_bytes()
    sources = (root / apt.SOURCES.lstrip("/")).read_text()
    assert "URIs: https://apt.fleet.example/kioskd\n" in sources
    assert f"Signed-By: {apt.KEYRING}\n" in sources
    # The key file path is not recorded; a re-run keeps the installed key and changes nothing.
    assert "apt_key" not in (root / "etc/kioskd/provision.json").read_text().replace(
        '"apt_key": null', ""
    )
    rerun = support.provision(root, "--yes", "--check")
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr


def test_a_private_key_or_a_plain_url_is_refused(tmp_path: Path, keys: tuple[Path, Path]) -> None:
    public, private = keys
    root = support.make_image(tmp_path / "a")
    done = support.provision(
        root, "--yes", "--simulate", "--board", BOARD,
        "--apt-url", "https://apt.fleet.example/kioskd", "--apt-key", str(private),
    )  # fmt: skip
    assert done.returncode != 0
    assert "private key" in done.stdout + done.stderr
    assert not (root / "etc/kioskd/kioskd.toml").exists(), "a refused run writes nothing"
    done = support.provision(
        root, "--yes", "--simulate", "--board", BOARD,
        "--apt-url", "ftp://apt.fleet.example/kioskd", "--apt-key", str(public),
    )  # fmt: skip
    assert done.returncode != 0
    assert "--apt-url must be" in done.stdout + done.stderr
    done = support.provision(
        root, "--yes", "--simulate", "--board", BOARD, "--apt-url", "https://a.example/k"
    )
    assert done.returncode != 0
    assert "--apt-key" in done.stdout + done.stderr


def test_a_packaged_unit_is_enabled_not_copied(tmp_path: Path) -> None:
    root = support.make_image(tmp_path / "image")
    unit = root / "lib/systemd/system/kioskd.service"
    unit.parent.mkdir(parents=True)
    unit.write_text("[Service]\n")
    (unit.parent / "kioskd-ui.service").write_text("[Service]\n")
    sysusers = root / "usr/lib/sysusers.d/kioskd.conf"
    sysusers.parent.mkdir(parents=True)
    sysusers.write_bytes(
        resources.files("provisioning").joinpath("systemd/kioskd.sysusers").read_bytes()
    )
    done = support.provision(root, "--yes", "--simulate", "--board", BOARD)
    assert done.returncode == 0, done.stdout + done.stderr
    wants = root / "etc/systemd/system/multi-user.target.wants/kioskd.service"
    assert wants.is_symlink()
    assert str(wants.readlink()) == "/lib/systemd/system/kioskd.service"
    ui_wants = wants.with_name("kioskd-ui.service")
    assert str(ui_wants.readlink()) == "/lib/systemd/system/kioskd-ui.service"
    for copy in ("systemd/system/kioskd.service", "systemd/system/kioskd-ui.service",
                 "sysusers.d/kioskd.conf", "tmpfiles.d/kioskd.conf",
                 "udev/rules.d/90-kioskd.rules"):  # fmt: skip
        assert not (root / "etc" / copy).exists(), f"/etc/{copy} would shadow the package's"
