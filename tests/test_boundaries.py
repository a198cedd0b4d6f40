"""Production modules load no simulator: simulators come in only when config names one.

Checked in a fresh interpreter, so what other tests imported does not count.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

_PROBE = """
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
loaded = sorted(m for m in sys.modules if m.startswith("devices.sim"))
resolve("lights", "sim")
after_sim = sorted(m for m in sys.modules if m.startswith("devices.sim"))
print(json.dumps([loaded, after_sim]))
"""


def test_production_modules_and_real_drivers_load_no_simulator() -> None:
    out = subprocess.run(
        [sys.executable, "-c", _PROBE], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout
    loaded, after_sim = json.loads(out)
    assert loaded == []
    # The probe sees a simulator once config names one (the check is not vacuous).
    assert "devices.sim.lights.behaviour" in after_sim
