"""Stopping a child process the tests or the benchmarks started (mosquitto, a root's script)."""

from __future__ import annotations

import subprocess


def stop(proc: subprocess.Popen[bytes], grace_s: float) -> None:
    """SIGTERM ``proc``, wait up to ``grace_s`` seconds, then SIGKILL it; reap it either way."""
    proc.terminate()
    try:
        proc.wait(grace_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
