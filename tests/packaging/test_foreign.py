"""The Raspberry Pi OS packages, built and run in emulated roots (./dev test --slow).

For arm64 (Pi OS 64-bit) and armhf (Pi OS 32-bit), ``./dev deb --arch ARCH`` builds
``kioskd_*_ARCH.deb`` natively in a bookworm root of that architecture run under
qemu-user by proot (``debian/foreign-root``; no binfmt_misc handler), from the same
hashed lock as amd64, and lintian passes it.  Here the package is checked to hold
only that architecture's code (binutils' ``readelf``) and exactly the lock's runtime
pins for it, then a clean root installs it from the signed repository with apt and
runs, under qemu, what the package installed: ``kioskd --version``, ``kioskd
provision``, ``kioskd check-config`` and ``kioskd run --sim`` to READY=1.  About 10
minutes for arm64 with its roots cached, 25 without; armhf compiles seven packages
more (docs/packaging.md, "Architectures").
"""

from __future__ import annotations

import re
import subprocess
import sys
import time
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from daemon import __version__
from daemon.broker import free_port
from tests.packaging.debroot import REPO_IN_ROOT, DebRoot, Repository, ready

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "debian"))
from runtime_lock import runtime_lock  # noqa: E402

pytestmark = pytest.mark.release

BOARD = "arm-0001"


@dataclass(frozen=True)
class Target:
    """A Debian architecture of Raspberry Pi OS, as the checks see it."""

    arch: str
    #: ``uname -m`` in its root, which is also its ``platform_machine`` marker.
    machine: str
    #: readelf's name of its machine.
    elf: str
    #: What names its compiled extension modules (``_scard.cpython-311-{tag}.so``).
    tag: str

    def markers(self) -> dict[str, str]:
        """The marker environment of a board of this architecture."""
        return {
            "platform_machine": self.machine,
            "sys_platform": "linux",
            "platform_system": "Linux",
        }


TARGETS = (
    Target("arm64", "aarch64", "AArch64", "aarch64-linux-gnu"),  # Pi 3/4/5, Pi OS 64-bit
    Target("armhf", "armv7l", "ARM", "arm-linux-gnueabihf"),  # Pi 2 and later, Pi OS 32-bit
)


def _timed(target: Target, what: str, started: float) -> None:
    print(f"{target.arch}: {what} in {time.monotonic() - started:.0f} s")  # noqa: T201 - measured


@pytest.fixture(scope="module", params=TARGETS, ids=[t.arch for t in TARGETS])
def target(request: pytest.FixtureRequest) -> Target:
    found: Target = request.param
    return found


@pytest.fixture(scope="module")
def package(target: Target, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    started = time.monotonic()
    built = subprocess.run(
        [str(ROOT / "dev"), "deb", "--arch", target.arch, str(out)], capture_output=True,
        text=True, timeout=7200, check=False,
    )  # fmt: skip
    assert built.returncode == 0, (built.stdout + built.stderr)[-4000:]
    _timed(target, "./dev deb --arch (lintian passed)", started)
    (deb,) = out.glob(f"kioskd_*_{target.arch}.deb")
    return deb


def test_package_holds_its_architecture_s_code_and_the_locked_pins(
    target: Target, package: Path, tmp_path: Path
) -> None:
    fields = subprocess.run(
        ["dpkg-deb", "-f", str(package), "Architecture", "Version"],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    assert fields.split() == ["Architecture:", target.arch, "Version:", __version__]
    subprocess.run(["dpkg-deb", "-x", str(package), str(tmp_path)], check=True, timeout=300)
    objects = [p for p in (tmp_path / "opt/kioskd").rglob("*.so*") if p.is_file()]
    names = {p.name for p in objects}
    # pyscard and evdev have no wheel for either: compiled in the root.
    assert any(n.startswith("_scard.") and target.tag in n for n in names), sorted(names)
    assert any(n.startswith("_input.") and target.tag in n for n in names), sorted(names)
    for path in objects:
        header = subprocess.run(
            ["readelf", "-h", str(path)], capture_output=True, text=True, check=True
        ).stdout
        assert re.search(rf"Machine:\s+{target.elf}$", header, re.MULTILINE), (path, header)
    (site,) = (tmp_path / "opt/kioskd/lib").glob("python3.*/site-packages")
    installed = {
        canonicalize_name(d.metadata["Name"]): d.version
        for d in metadata.distributions(path=[str(site)])
    }
    installed.pop("kioskd")
    wanted = {}
    lock = runtime_lock(
        (ROOT / "requirements.txt").read_text(), (ROOT / "pyproject.toml").read_text()
    )
    for line in lock.splitlines():
        if line and not line[0].isspace() and not line.startswith("#"):
            req = Requirement(line.rstrip(" \\"))
            if req.marker is None or req.marker.evaluate(target.markers()):
                (spec,) = req.specifier
                wanted[canonicalize_name(req.name)] = spec.version
    assert installed == wanted


def test_installs_from_the_signed_repository_and_runs(
    target: Target, package: Path, tmp_path: Path
) -> None:
    repo = Repository.make(tmp_path)
    try:
        repo.publish(package)
        started = time.monotonic()
        root = DebRoot.make(tmp_path, repo.path, arch=target.arch)
        root.trust(repo.public_key())
        _timed(target, "clean root", started)

        def ok(script: str, timeout: float = 600) -> str:
            done = root.run(script, timeout=timeout)
            assert done.returncode == 0, (done.stdout + done.stderr)[-4000:]
            return done.stdout

        started = time.monotonic()
        ok("apt-get update -q && apt-get install -y -q kioskd", timeout=1800)
        _timed(target, "apt-get install kioskd", started)
        assert ok("uname -m").strip() == target.machine, "the root runs under qemu"
        assert ok("dpkg --print-architecture").strip() == target.arch
        started = time.monotonic()
        assert ok("kioskd --version").strip() == __version__
        _timed(target, "kioskd --version", started)
        key = root.path / "tmp/kioskd.asc"
        key.write_bytes(repo.public_key())
        out = ok(
            f"kioskd provision --yes --simulate --board {BOARD} --no-pcsc"
            f" --apt-url file:{REPO_IN_ROOT} --apt-key /tmp/kioskd.asc"
        )
        assert "✗" not in out
        assert f"board {BOARD}" in ok("kioskd check-config /etc/kioskd/kioskd.toml")
        seconds = ready(
            root, f"kioskd run --sim --mqtt-port {free_port()} --ws-port 0 --ui-port 0", timeout=600
        )
        assert seconds is not None, "kioskd run --sim sent no READY=1"
        print(f"{target.arch}: kioskd run --sim ready in {seconds:.0f} s")  # noqa: T201
    finally:
        repo.close()
