"""Production modules load no simulator: simulators come in only when config names one.

Checked in a fresh interpreter, so what other tests imported does not count.
"""

from __future__ import annotations

from tests.fresh_interpreter import PRODUCTION_IMPORTS, probe

#: Run after PRODUCTION_IMPORTS.
_PROBE = """
loaded = sorted(m for m in sys.modules if m.startswith("devices.sim"))
resolve("lights", "sim")
after_sim = sorted(m for m in sys.modules if m.startswith("devices.sim"))
print(json.dumps([loaded, after_sim]))
"""


def test_production_modules_and_real_drivers_load_no_simulator() -> None:
    loaded, after_sim = probe(PRODUCTION_IMPORTS + _PROBE)
    assert loaded == []
    # The probe sees a simulator once config names one (the check is not vacuous).
    assert "devices.sim.lights.behaviour" in after_sim
