#!/usr/bin/python3
"""Print the runtime part of requirements.txt: what the Debian package's venv installs.

The lock (``./dev lock``) holds the dependencies, the ``test`` extra and the
build backend, each with ``# via`` lines naming what requires it.  A package
is kept when pyproject.toml's ``[project] dependencies`` name it, or when a
kept package requires it; pins and hashes are copied unchanged, so the
package installs exactly what the suite passed with (``pip --require-hashes``).

Usage: runtime_lock.py requirements.txt pyproject.toml > runtime.txt
"""

from __future__ import annotations

import re
import sys
import tomllib
from pathlib import Path

_NAME = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)")


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _roots(pyproject: str) -> set[str]:
    deps: list[str] = tomllib.loads(pyproject)["project"]["dependencies"]
    names = set()
    for dep in deps:
        match = _NAME.match(dep.strip())
        if match is None:
            raise ValueError(f"pyproject.toml: cannot read the dependency {dep!r}")
        names.add(_canonical(match.group(1)))
    return names


def _entries(lock: str) -> list[tuple[str, list[str], set[str]]]:
    """(name, lines, names it is required by) of every pinned package, in lock order."""
    entries: list[tuple[str, list[str], set[str]]] = []
    for line in lock.splitlines():
        if line and not line[0].isspace() and not line.startswith("#"):
            match = _NAME.match(line)
            if match is None:
                raise ValueError(f"requirements.txt: cannot read {line!r}")
            entries.append((_canonical(match.group(1)), [line], set()))
        elif entries and line.startswith("    "):
            entries[-1][1].append(line)
            via = line.strip().removeprefix("#").strip().removeprefix("via").strip()
            if line.strip().startswith("#") and via and not via.startswith(("-r", "kioskd")):
                entries[-1][2].add(_canonical(via))
    return entries


def runtime_lock(lock: str, pyproject: str) -> str:
    """The lines of ``lock`` that pin the runtime closure of ``pyproject``'s dependencies.

    Raises:
        ValueError: a dependency pyproject.toml names is not in the lock (stale lock).

    """
    entries = _entries(lock)
    roots = _roots(pyproject)
    missing = roots - {name for name, _, _ in entries}
    if missing:
        raise ValueError(f"not in requirements.txt (run ./dev lock): {', '.join(sorted(missing))}")
    keep = set(roots)
    grew = True
    while grew:
        grew = False
        for name, _, parents in entries:
            if name not in keep and parents & keep:
                keep.add(name)
                grew = True
    out = [line for name, lines, _ in entries if name in keep for line in lines]
    return "\n".join(out) + "\n"


def main() -> None:
    """Read the two files named on the command line, print the runtime lock."""
    lock, pyproject = (Path(arg).read_text(encoding="utf-8") for arg in sys.argv[1:3])
    sys.stdout.write(runtime_lock(lock, pyproject))


if __name__ == "__main__":
    main()
