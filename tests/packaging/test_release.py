"""Release tests (./dev test --slow): the package from a signed repository in a clean bookworm root.

A clean Debian bookworm root (mmdebstrap, cached) gets the fleet's source entry
and the test key, installs kioskd with apt (which verifies the signed index and
every package's hash), and runs what the package installed: ``kioskd
--version``, ``kioskd provision`` (reading only packaged data), ``kioskd
check-config`` and ``kioskd run --sim`` to READY=1 (the sd_notify message systemd
waits for).
"""

from __future__ import annotations

import contextlib
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from daemon import __version__
from daemon.broker import free_port
from tests.packaging.debroot import REPO_IN_ROOT, DebRoot, Repository

pytestmark = pytest.mark.release

ROOT = Path(__file__).resolve().parents[2]
BOARD = "rel-0001"


@dataclass(frozen=True)
class Release:
    root: DebRoot
    repo: Repository
    deb: Path
    work: Path


@pytest.fixture(scope="module")
def release(tmp_path_factory: pytest.TempPathFactory) -> Release:
    work = tmp_path_factory.mktemp("release")
    built = subprocess.run(
        [str(ROOT / "dev"), "deb", str(work / "dist")], capture_output=True, text=True,
        timeout=900, check=False,
    )  # fmt: skip
    assert built.returncode == 0, built.stderr[-3000:]
    (deb,) = (work / "dist").glob("kioskd_*_amd64.deb")
    repo = Repository.make(work)
    repo.publish(deb)
    root = DebRoot.make(work, repo.path)
    keyring = root.path / "etc/apt/keyrings/kioskd.asc"
    keyring.parent.mkdir(parents=True, exist_ok=True)
    keyring.write_bytes(repo.public_key())
    # What docs/updates.md tells a technician to write before the first install.
    (root.path / "etc/apt/sources.list.d/kioskd.sources").write_text(
        f"Types: deb\nURIs: file:{REPO_IN_ROOT}/\nSuites: ./\n"
        "Signed-By: /etc/apt/keyrings/kioskd.asc\n"
    )
    return Release(root, repo, deb, work)


def _ok(done: subprocess.CompletedProcess[str]) -> str:
    assert done.returncode == 0, (done.stdout + done.stderr)[-4000:]
    return done.stdout


@pytest.fixture(scope="module")
def installed(release: Release) -> Release:
    _ok(release.root.run("apt-get update -q && apt-get install -y -q kioskd", timeout=600))
    return release


def test_apt_refuses_a_repository_signed_by_another_key(release: Release, tmp_path: Path) -> None:
    other = Repository.make(tmp_path)
    keyring = release.root.path / "etc/apt/keyrings/kioskd.asc"
    good = keyring.read_bytes()
    keyring.write_bytes(other.public_key())
    try:
        done = release.root.run("apt-get update -q", timeout=300)
        assert "NO_PUBKEY" in done.stdout + done.stderr or "not signed" in done.stdout + done.stderr
        assert "kioskd" in done.stdout + done.stderr
    finally:
        keyring.write_bytes(good)


def test_installed_version_and_files(installed: Release) -> None:
    assert _ok(installed.root.run("kioskd --version")).strip() == __version__
    status = _ok(installed.root.run("dpkg-query -W -f='${Status} ${Version}' kioskd"))
    assert status == f"install ok installed {__version__}"
    passwd = (installed.root.path / "etc/passwd").read_text()
    assert "\nkioskd:" in passwd, "the package's sysusers.d made the daemon's user"
    assert list((installed.root.path / "opt/kioskd/lib").rglob("__pycache__")), "postinst compiled"


def test_provision_check_config_and_run_from_the_package(installed: Release) -> None:
    key = installed.root.path / "tmp/kioskd.asc"
    key.write_bytes(installed.repo.public_key())
    out = _ok(
        installed.root.run(
            f"kioskd provision --yes --simulate --board {BOARD} --no-pcsc"
            f" --apt-url file:{REPO_IN_ROOT} --apt-key /tmp/kioskd.asc"
        )
    )
    assert "✗" not in out
    root = installed.root.path
    wants = root / "etc/systemd/system/multi-user.target.wants/kioskd.service"
    assert str(wants.readlink()) == "/lib/systemd/system/kioskd.service"
    assert not (root / "etc/systemd/system/kioskd.service").exists()
    config = _ok(installed.root.run("kioskd check-config /etc/kioskd/kioskd.toml"))
    assert f"board {BOARD}" in config
    _ok(installed.root.run("apt-get update -q", timeout=300))  # provisioning's entry verifies
    command = f"kioskd run --sim --mqtt-port {free_port()} --ws-port 0 --ui-port 0"
    assert _ready(installed.root, command) is not None


def _ready(root: DebRoot, command: str, timeout: float = 90) -> float | None:
    """Seconds until ``command`` in the root sent READY=1 over sd_notify, or None."""
    name = f"kioskd-release-test-{time.monotonic_ns()}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind("\0" + name)
        sock.settimeout(1)
        start = time.monotonic()
        with _running(root, f"NOTIFY_SOCKET=@{name} exec {command}") as proc:
            while time.monotonic() - start < timeout and proc.poll() is None:
                try:
                    message = sock.recv(4096).decode()
                except TimeoutError:
                    continue
                if "READY=1" in message.split("\n"):
                    return time.monotonic() - start
    return None


@contextlib.contextmanager
def _running(root: DebRoot, script: str) -> Iterator[subprocess.Popen[bytes]]:
    """``script`` running in the root; terminated (its PID namespace with it) on exit."""
    proc = subprocess.Popen(
        root.command(script), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
