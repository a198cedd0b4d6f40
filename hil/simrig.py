"""Start the sim rig: ``python -m daemon run --sim`` as a child process, as a user would.

The suite learns nothing from the daemon's code: it reads the broker address
from the first stdout line and waits on the wire for the retained status.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

#: ``kioskd 0.1.0: board sim-0001, embedded broker mqtt://127.0.0.1:1883``
_ANNOUNCE = re.compile(r"board (?P<board>\S+), .*mqtt://(?P<host>[^:/\s]+):(?P<port>\d+)")


class SimRigError(RuntimeError):
    """The sim rig did not come up; the message holds the tail of its log."""


@dataclass(frozen=True)
class SimRig:
    """A running ``kioskd run --sim``: its broker and board, and where it logs."""

    host: str
    port: int
    board: str
    log: Path
    pid: int


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port free right now on ``host`` (the daemon picks another if it is taken)."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def tail(path: Path, lines: int = 25) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return "(no log)"
    return "\n".join(text.splitlines()[-lines:]) or "(empty log)"


def _stop(proc: subprocess.Popen[bytes], grace: float = 10.0) -> str | None:
    """SIGTERM, then SIGKILL after ``grace`` seconds; say what was wrong, if anything."""
    if proc.poll() is not None:
        return f"it had already exited with {proc.returncode}"
    proc.send_signal(signal.SIGTERM)
    try:
        rc = proc.wait(grace)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)
        return f"it ignored SIGTERM for {grace:g} s and was killed"
    return None if rc == 0 else f"it exited with {rc} on SIGTERM"


def _announced(
    proc: subprocess.Popen[bytes],
    argv: list[str],
    out_path: Path,
    err_path: Path,
    timeout: float,
) -> SimRig:
    """Wait for the daemon's first stdout line and read the broker and board from it.

    Raises:
        SimRigError: it exited, printed something else, or nothing within ``timeout``.

    """
    deadline = time.monotonic() + timeout
    while True:
        line, newline, _ = out_path.read_text(encoding="utf-8", errors="replace").partition("\n")
        if newline:
            found = _ANNOUNCE.search(line)
            if found is None:
                raise SimRigError(f"unexpected first line {line!r}\n{tail(err_path)}")
            return SimRig(
                host=found["host"],
                port=int(found["port"]),
                board=found["board"],
                log=err_path,
                pid=proc.pid,
            )
        if proc.poll() is not None:
            raise SimRigError(
                f"`{' '.join(argv[1:])}` exited with {proc.returncode}:\n{tail(err_path)}"
            )
        if time.monotonic() > deadline:
            raise SimRigError(
                f"no broker address on stdout within {timeout:g} s:\n{tail(err_path)}"
            )
        time.sleep(0.02)


@contextlib.contextmanager
def sim_rig(
    workdir: Path, start_timeout: float = 20.0, extra_args: Sequence[str] = ()
) -> Iterator[SimRig]:
    """Run ``python -m daemon run --sim`` on a free port with its state in ``workdir``.

    ``extra_args`` are appended to the command line (a later option wins, so
    ``--ws-port N`` gives the embedded broker a websockets listener).

    Yields once the first stdout line has named the broker (readiness is checked on
    the wire by the caller); SIGTERM at exit, then SIGKILL after 10 s.

    Raises:
        SimRigError: it exited, or printed no broker address within ``start_timeout``;
            at exit, it did not stop with status 0 on SIGTERM.

    """
    workdir.mkdir(parents=True, exist_ok=True)
    out_path, err_path = workdir / "kioskd.stdout", workdir / "kioskd.log"
    env = {
        **os.environ,
        "XDG_STATE_HOME": str(workdir / "state"),
        "PYTHONUNBUFFERED": "1",
    }
    argv = [
        sys.executable, "-m", "daemon", "run", "--sim",
        "--mqtt-port", str(free_port()), "--ws-port", "0", *extra_args,
    ]  # fmt: skip
    with out_path.open("wb") as out, err_path.open("wb") as err:
        proc = subprocess.Popen(
            argv, cwd=REPO, env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=err
        )
    try:
        sim = _announced(proc, argv, out_path, err_path, start_timeout)
        yield sim
    except BaseException:
        _stop(proc)
        raise
    # A clean, ordered shutdown on SIGTERM is part of what the sim rig proves.
    problem = _stop(proc)
    if problem is not None:
        raise SimRigError(f"sim rig shutdown: {problem}\n{tail(err_path)}")
