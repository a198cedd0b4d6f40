"""The reference UI's committed bundle (``static/``) and the sources it was built from (``web/``).

``static/BUILD.json`` records the SHA-256 of the sources (``package.json``,
``package-lock.json``, ``build.mjs``, ``src/``, ``data/``) and of every built
file.  ``./dev`` rebuilds when the sources' digest differs and node/npm exist;
a test fails when the committed bundle is stale or was edited by hand, so
neither a terminal nor the test suite needs npm.

``python -m daemon.ui.bundle check`` exits 1 when the bundle is stale;
``python -m daemon.ui.bundle stamp`` writes ``BUILD.json`` after a build.
"""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

import msgspec

HERE = Path(__file__).parent
WEB_DIR = HERE / "web"
STATIC_DIR = HERE / "static"
MANIFEST_NAME = "BUILD.json"
#: What the bundle is built from, relative to ``web/`` (directories are walked).
SOURCES = ("package.json", "package-lock.json", "build.mjs", "src", "data")


class Manifest(msgspec.Struct, frozen=True, rename="camel"):
    """``static/BUILD.json``: the sources' digest and each built file's SHA-256 (hex)."""

    sources_sha256: str
    files: dict[str, str]


def _files(root: Path, names: tuple[str, ...]) -> list[Path]:
    found: list[Path] = []
    for name in names:
        path = root / name
        found += sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    return found


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def sources_digest(web: Path = WEB_DIR) -> str:
    """SHA-256 over the sources' relative paths and contents (hex).

    Raises:
        FileNotFoundError: a source listed in ``SOURCES`` is missing.

    """
    digest = hashlib.sha256()
    for path in _files(web, SOURCES):
        digest.update(f"{path.relative_to(web).as_posix()}\0{_sha256(path)}\n".encode())
    return digest.hexdigest()


def built_files(static: Path = STATIC_DIR) -> dict[str, str]:
    """SHA-256 (hex) of every file of the bundle but the manifest, by relative path."""
    return {
        p.relative_to(static).as_posix(): _sha256(p)
        for p in sorted(static.rglob("*"))
        if p.is_file() and p.name != MANIFEST_NAME
    }


def stamp(web: Path = WEB_DIR, static: Path = STATIC_DIR) -> Manifest:
    """Write ``BUILD.json`` for the bundle as it is now; returns it."""
    manifest = Manifest(sources_sha256=sources_digest(web), files=built_files(static))
    text = msgspec.json.format(msgspec.json.encode(manifest), indent=2) + b"\n"
    (static / MANIFEST_NAME).write_bytes(text)
    return manifest


def problems(web: Path = WEB_DIR, static: Path = STATIC_DIR) -> list[str]:
    """Why the committed bundle does not match its sources (empty when it does)."""
    try:
        manifest = msgspec.json.decode((static / MANIFEST_NAME).read_bytes(), type=Manifest)
    except (OSError, msgspec.DecodeError) as exc:
        return [f"{static / MANIFEST_NAME}: {exc}"]
    found: list[str] = []
    if manifest.sources_sha256 != sources_digest(web):
        found.append("the sources changed since the bundle was built")
    files = built_files(static)
    found += [
        f"static/{name} differs from the build that BUILD.json records"
        for name in sorted(manifest.files.keys() | files.keys())
        if manifest.files.get(name) != files.get(name)
    ]
    return found


def main(argv: list[str]) -> int:
    """``check`` (exit 1 when stale) or ``stamp``."""
    if argv == ["stamp"]:
        stamp()
        return 0
    if argv == ["check"]:
        found = problems()
        for line in found:
            sys.stderr.write(f"UI bundle: {line}\n")
        return 1 if found else 0
    sys.stderr.write("usage: python -m daemon.ui.bundle check|stamp\n")
    return 64


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
