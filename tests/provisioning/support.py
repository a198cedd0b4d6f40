"""Provision an image root, and run what it installed (mosquitto, kioskd) as installed.

An "image" is a temporary root holding a copy of this machine's users and
groups (as a Raspberry Pi OS image with mosquitto installed would).  The
installed programs run in a private mount namespace where the image's ``/etc``
is laid over the real one (overlayfs) and ``/run`` is a fresh tmpfs: mosquitto
reads exactly the files provisioning wrote, at the paths they were written for.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from daemon.broker import free_port

KIOSKD_BIN = str(Path(sys.executable).parent / "kioskd")


def make_image(root: Path) -> Path:
    """An empty image root with this machine's /etc/passwd and /etc/group."""
    (root / "etc").mkdir(parents=True)
    for name in ("passwd", "group"):
        shutil.copy(f"/etc/{name}", root / "etc" / name)
    return root


def provision(root: Path, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    """Run ``kioskd provision --root ROOT ARGS`` and return the finished process."""
    return subprocess.run(
        [sys.executable, "-m", "daemon", "provision", "--root", str(root), *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        input=stdin,
        env={**os.environ, "COLUMNS": "200"},
    )


def ports() -> tuple[int, int]:
    """Two free loopback ports (TCP and websockets listeners)."""
    return free_port(), free_port()


@dataclass(frozen=True)
class Image:
    """A provisioned image root and the broker ports provisioning chose."""

    root: Path
    port: int
    ws_port: int


def provisioned(directory: Path, board: str, *args: str) -> Image:
    """``kioskd provision --yes --simulate`` of a new image in ``directory`` on free ports.

    ``args`` add options (``--ui``, ``--kioskd-bin``, ...); a failed run fails the test.
    """
    root = make_image(directory)
    port, ws_port = ports()
    done = provision(
        root,
        "--yes",
        "--simulate",
        "--board",
        board,
        "--mqtt-port",
        str(port),
        "--ws-port",
        str(ws_port),
        *args,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return Image(root, port, ws_port)


def secret(root: Path, user: str) -> str:
    return (root / f"etc/kioskd/credentials/{user}.password").read_text().splitlines()[0]


@contextlib.contextmanager
def installed(root: Path, *commands: str, log: Path) -> Iterator[subprocess.Popen[bytes]]:
    """Run shell ``commands`` in a mount namespace seeing ``root``'s /etc; killed on exit."""
    script = "\n".join(
        [
            "set -e",
            f"mount -t overlay overlay -o lowerdir={shlex.quote(str(root / 'etc'))}:/etc /etc",
            "mount -t tmpfs tmpfs /run",
            *commands,
        ]
    )
    with log.open("wb") as out:
        proc = subprocess.Popen(
            ["unshare", "--mount", "--propagation", "private", "sh", "-c", script],
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        yield proc
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
