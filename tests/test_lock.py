"""requirements.txt agrees with pyproject.toml and with the venv the suite runs in.

`./dev` installs every Python package from requirements.txt with pip --require-hashes;
`./dev lock` rewrites it. These tests fail when someone edits pyproject.toml's
dependencies without refreshing the lock, or when the venv drifted from the lock.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

import pytest
from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parent.parent
LOCK = ROOT / "requirements.txt"
PYPROJECT = ROOT / "pyproject.toml"
# Extras ./dev installs; `pi` comes from Raspberry Pi OS's apt (picamera2), not the lock.
INSTALLED_EXTRAS = ("test",)


@dataclass(frozen=True)
class Pin:
    """One locked package: its requirement line and how many file hashes it carries."""

    requirement: Requirement
    hashes: int

    @property
    def version(self) -> Version:
        (spec,) = self.requirement.specifier
        return Version(spec.version)

    def applies_here(self) -> bool:
        marker = self.requirement.marker
        return marker is None or marker.evaluate()


def _pins() -> dict[str, Pin]:
    pins: dict[str, Pin] = {}
    current: Requirement | None = None
    hashes = 0
    for line in [*LOCK.read_text(encoding="utf-8").splitlines(), ""]:
        stripped = line.strip()
        if line and not line[0].isspace() and not line.startswith("#"):
            if current is not None:
                pins[canonicalize_name(current.name)] = Pin(current, hashes)
            current, hashes = Requirement(stripped.removesuffix("\\").strip()), 0
        elif stripped.startswith("--hash=sha256:"):
            hashes += 1
    if current is not None:
        pins[canonicalize_name(current.name)] = Pin(current, hashes)
    return pins


def _project_requirements() -> list[Requirement]:
    project = tomllib.loads(PYPROJECT.read_text(encoding="utf-8"))
    lines = list(project["project"]["dependencies"])
    for extra in INSTALLED_EXTRAS:
        lines += project["project"]["optional-dependencies"][extra]
    lines += project["build-system"]["requires"]
    return [Requirement(line) for line in lines]


def test_every_locked_package_is_pinned_exactly_with_hashes() -> None:
    pins = _pins()
    assert len(pins) > 20
    for name, pin in pins.items():
        specs = list(pin.requirement.specifier)
        assert len(specs) == 1, f"{name}: {pin.requirement.specifier}"
        assert specs[0].operator == "==", f"{name} is not pinned with =="
        assert pin.hashes >= 1, f"{name} has no --hash (pip --require-hashes would refuse)"


def test_every_pyproject_requirement_is_locked_at_a_version_it_allows() -> None:
    pins = _pins()
    for requirement in _project_requirements():
        pin = pins.get(canonicalize_name(requirement.name))
        assert pin is not None, f"{requirement} is in pyproject.toml, not in the lock: ./dev lock"
        assert requirement.specifier.contains(pin.version, prereleases=True), (
            f"pyproject.toml asks {requirement}, the lock pins {pin.version}: ./dev lock"
        )


def _closure() -> set[str]:
    """Names of the pyproject requirements and everything they need, on this machine."""
    env = default_environment()
    visited: set[tuple[str, str]] = set()
    todo = [(req, "") for req in _project_requirements()]
    while todo:
        requirement, extra = todo.pop()
        marker = requirement.marker
        if marker is not None and not marker.evaluate({**env, "extra": extra}):
            continue
        name = canonicalize_name(requirement.name)
        for key in [(name, ""), *((name, e) for e in requirement.extras)]:
            if key in visited:
                continue
            visited.add(key)
            todo += [(Requirement(line), key[1]) for line in metadata.requires(name) or []]
    return {name for name, _ in visited}


def test_the_lock_holds_exactly_what_pyproject_needs() -> None:
    here = {name for name, pin in _pins().items() if pin.applies_here()}
    needed = _closure()
    assert needed - here == set(), "needed but not locked: ./dev lock"
    assert here - needed == set(), "locked but needed by nothing in pyproject.toml: ./dev lock"


@pytest.mark.parametrize("name", sorted(n for n, p in _pins().items() if p.applies_here()))
def test_the_venv_has_the_locked_version(name: str) -> None:
    pin = _pins()[name]
    installed = Version(metadata.version(name))
    assert installed == pin.version, f"{name} {installed} installed, {pin.version} locked"


def test_dev_installs_from_the_lock_with_hashes() -> None:
    dev = (ROOT / "dev").read_text(encoding="utf-8")
    assert re.search(r"pip install --require-hashes --no-deps .*\n?.*-r \$LOCK", dev)
    assert "--no-build-isolation -e ." in dev
