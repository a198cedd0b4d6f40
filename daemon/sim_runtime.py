"""The runtime folder of ``kioskd run --sim``: made per run, and left-overs of killed runs removed.

A run without a config file keeps its sockets, ptys and the embedded broker's files in
a fresh ``$TMPDIR/kioskd-sim-*`` folder that it removes when it stops.  A run killed with
SIGKILL cannot remove it, so every start removes the folders whose owning process is
gone (its pid is written in the folder first thing).
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

log = logging.getLogger(__name__)

PREFIX = "kioskd-sim-"
_OWNER = "owner.pid"
#: A folder without an owner file younger than this (seconds) may be a run starting now.
_GRACE_S = 60.0


def _owner_alive(folder: Path) -> bool:
    """Whether the process that made ``folder`` still runs.

    A folder with no readable owner counts as alive while younger than the grace period.
    """
    try:
        pid = int((folder / _OWNER).read_text(encoding="ascii"))
    except (OSError, ValueError):
        try:
            return time.time() - folder.stat().st_mtime < _GRACE_S
        except OSError:
            return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's live process
        return True
    return True


def remove_stale(base: Path | None = None) -> list[Path]:
    """Remove the ``kioskd-sim-*`` folders of runs that no longer exist; return them."""
    base = base or Path(tempfile.gettempdir())
    removed = []
    for folder in base.glob(PREFIX + "*"):
        if folder.is_dir() and not folder.is_symlink() and not _owner_alive(folder):
            shutil.rmtree(folder, ignore_errors=True)
            removed.append(folder)
    if removed:
        log.info("removed %d runtime folder(s) left by killed --sim runs", len(removed))
    return removed


@contextlib.contextmanager
def runtime_dir() -> Iterator[Path]:
    """A fresh runtime folder owned by this process, removed on exit."""
    remove_stale()
    folder = Path(tempfile.mkdtemp(prefix=PREFIX))
    try:
        (folder / _OWNER).write_text(str(os.getpid()), encoding="ascii")
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)
