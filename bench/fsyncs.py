"""fsync and fdatasync calls a process makes while it serves commands, counted by strace.

``strace -f -y -e trace=fsync,fdatasync -p PID`` is attached to every thread of the
daemon, the commands run, strace is detached (SIGINT), and each call is counted
with the file it synced (``-y`` prints the path of the descriptor).  strace stops
the daemon at every system call while attached, so nothing is timed meanwhile.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import shutil
import signal
import subprocess
import tempfile
from collections import Counter
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

#: A sync call as strace prints it with ``-y``: ``fdatasync(9</state/idempotency.sqlite3-wal>``.
CALL = re.compile(r"\b(fsync|fdatasync)\(\d+<([^>]*)>")
ATTACH_TIMEOUT_S = 10.0


def tracer_pids(pid: int) -> set[int]:
    """``TracerPid`` of every thread of ``pid`` (0: not traced)."""
    found: set[int] = set()
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(OSError):  # a thread that ended meanwhile
            for line in (task / "status").read_text(encoding="ascii").splitlines():
                if line.startswith("TracerPid:"):
                    found.add(int(line.split()[1]))
    return found


def parse(text: str) -> Counter[str]:
    """Sync calls per file name (the path's last part) in strace's output."""
    return Counter(Path(match.group(2)).name for match in CALL.finditer(text))


async def count(pid: int, commands: int, once: Callable[[int], Awaitable[None]]) -> dict[str, Any]:
    """Run ``once(i)`` ``commands`` times with strace attached to ``pid``; count its syncs.

    Returns ``commands``, ``calls`` (all fsync + fdatasync), ``perCommand`` and
    ``byFile``; or ``error`` when strace is missing or cannot attach.
    """
    exe = shutil.which("strace")
    if exe is None:
        return {"error": "strace is not installed"}
    with tempfile.TemporaryDirectory(prefix="kioskd-bench-strace-") as tmp:
        out = Path(tmp) / "strace.txt"
        proc = await asyncio.create_subprocess_exec(
            exe,
            "-f",
            "-qq",
            "-y",
            "-e",
            "trace=fsync,fdatasync",
            "-o",
            str(out),
            "-p",
            str(pid),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        try:
            async with asyncio.timeout(ATTACH_TIMEOUT_S):
                while tracer_pids(pid) != {proc.pid}:
                    if proc.returncode is not None:
                        break
                    await asyncio.sleep(0.05)
            if proc.returncode is not None:
                assert proc.stderr is not None
                reason = (await proc.stderr.read()).decode(errors="replace").strip()
                return {"error": f"strace exited {proc.returncode}: {reason}"}
            for i in range(commands):
                await once(i)
        finally:
            if proc.returncode is None:
                proc.send_signal(signal.SIGINT)  # detach; the output file is complete after
                await asyncio.wait_for(proc.wait(), ATTACH_TIMEOUT_S)
        by_file = parse(out.read_text(encoding="utf-8", errors="replace"))
    calls = sum(by_file.values())
    return {
        "commands": commands,
        "calls": calls,
        "perCommand": round(calls / commands, 3),
        "byFile": dict(by_file.most_common()),
    }
