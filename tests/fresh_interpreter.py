"""Run a probe in a fresh interpreter, so what other tests imported does not count."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]

#: Probe prelude: imports the daemon's production modules and every real driver.
PRODUCTION_IMPORTS = """
import importlib, json, sys
from devices.registry import DRIVERS, resolve
for module in ("daemon.app", "daemon.cli", "daemon.config", "daemon.api.router"):
    importlib.import_module(module)
for device_class, driver in DRIVERS:
    if driver != "sim":
        try:
            resolve(device_class, driver)
        except ImportError:  # its library is not on this machine (picamera2 off a Pi)
            pass
"""


def probe(source: str, *args: str) -> Any:
    """Run ``source`` with ``args`` in a new Python from the repository root; its last line's JSON.

    Timeout 60 s (``subprocess.TimeoutExpired``); a probe that fails raises
    ``subprocess.CalledProcessError``.
    """
    out = subprocess.run(
        [sys.executable, "-c", source, *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout
    return json.loads(out.splitlines()[-1])
