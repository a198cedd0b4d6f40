"""`./dev deb` builds the amd64 package, lintian passes it, and it holds what a board needs.

The runtime set is checked against the dependency metadata of the packages
themselves (not against our own filter's idea of it) in every run.  The build
(about a minute, its wheels downloaded again) and lintian are a release test, run
by ``./dev test --slow`` with the others that build the package: the default suite
stays within CI's 15 minutes.
"""

from __future__ import annotations

import re
import subprocess
import sys
from importlib import metadata, resources
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "debian"))
from runtime_lock import runtime_lock  # noqa: E402

DEV_TOOLS = {"pytest", "mypy", "ruff", "playwright", "hypothesis", "zxing-cpp", "pytest-asyncio"}


def _names(lock: str) -> set[str]:
    return {
        canonicalize_name(re.split(r"[=; ]", line, maxsplit=1)[0])
        for line in lock.splitlines()
        if line and not line[0].isspace() and not line.startswith("#")
    }


def _closure_from_metadata() -> set[str]:
    """kioskd's runtime dependencies, transitively, from the installed packages' metadata."""
    todo = [Requirement(r) for r in metadata.requires("kioskd") or []]
    seen: set[str] = set()
    while todo:
        req = todo.pop()
        if req.marker is not None and not req.marker.evaluate({"extra": ""}):
            continue
        name = canonicalize_name(req.name)
        if name in seen:
            continue
        seen.add(name)
        todo += [Requirement(r) for r in metadata.requires(name) or []]
    return seen


def test_runtime_lock_is_the_dependency_closure() -> None:
    lock = (ROOT / "requirements.txt").read_text()
    runtime = runtime_lock(lock, (ROOT / "pyproject.toml").read_text())
    names = _names(runtime)
    assert not names & DEV_TOOLS, "test tools stay out of the package"
    here = {n for n in _closure_from_metadata() if n in _names(lock)}
    assert here <= names, f"needed at run time but left out: {sorted(here - names)}"
    # Every kept pin is copied with its hashes (pip --require-hashes accepts it).
    hashes: dict[str, int] = {}
    for line in runtime.splitlines():
        if not line[0].isspace():
            hashes[line] = 0
        elif "--hash=sha256:" in line:
            hashes[list(hashes)[-1]] += 1
    assert all(hashes.values()), [pin for pin, n in hashes.items() if not n]


@pytest.fixture(scope="session")
def deb(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("deb")
    done = subprocess.run(
        [str(ROOT / "dev"), "deb", str(out)],
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    (package,) = out.glob("kioskd_*_amd64.deb")
    return package


def _contents(deb: Path) -> dict[str, str]:
    listing = subprocess.run(
        ["dpkg-deb", "-c", str(deb)], capture_output=True, text=True, check=True
    )
    entries = {}
    for line in listing.stdout.splitlines():
        path = line.split(None, 5)[5]
        target = path.partition(" -> ")[2]
        entries[path.partition(" -> ")[0].removeprefix(".")] = target
    return entries


@pytest.mark.release
def test_package_holds_units_rules_and_the_venv(deb: Path, tmp_path: Path) -> None:
    entries = _contents(deb)
    for path in (
        "/lib/systemd/system/kioskd.service",
        "/lib/systemd/system/kioskd-ui.service",
        "/lib/systemd/system/kioskd-update.path",
        "/lib/systemd/system/kioskd-update.service",
        "/lib/systemd/system/kioskd-update-resume.service",
        "/lib/udev/rules.d/90-kioskd.rules",
        "/usr/lib/sysusers.d/kioskd.conf",
        "/usr/lib/tmpfiles.d/kioskd.conf",
        "/opt/kioskd/bin/kioskd",
        "/usr/share/doc/kioskd/technician.md",
        "/usr/share/doc/kioskd/updates.md",
    ):
        assert path in entries, path
    assert entries["/usr/bin/kioskd"] == "/opt/kioskd/bin/kioskd"
    assert entries["/opt/kioskd/bin/python3.11"] == "/usr/bin/python3.11", "Debian's interpreter"
    assert not any("__pycache__" in p for p in entries), "bytecode is compiled by postinst"
    assert not any(Path(p).name in {"pytest", "mypy"} for p in entries)
    subprocess.run(["dpkg-deb", "-x", str(deb), str(tmp_path)], check=True)
    unit = resources.files("provisioning").joinpath("systemd/kioskd.service").read_bytes()
    assert (tmp_path / "lib/systemd/system/kioskd.service").read_bytes() == unit
    script = (tmp_path / "opt/kioskd/bin/kioskd").read_text()
    assert script.startswith("#!/opt/kioskd/bin/python\n"), "relocated from the build directory"
    control = subprocess.run(
        ["dpkg-deb", "-f", str(deb), "Depends", "Version"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    for dependency in (
        "python3.11",
        "python3",
        "mosquitto",
        "pcscd",
        "fonts-dejavu-core",
        "systemd",
    ):
        assert re.search(rf"(?<![\w.-]){re.escape(dependency)}(?![\w.-])", control), dependency
    from daemon import __version__

    assert f"Version: {__version__}" in control, "debian/changelog names daemon.__version__"
