"""The daemon's code and real drivers leave out what only one option or a simulation needs.

``urllib.request`` (paho-mqtt imports it for a proxy lookup the daemon never
makes) and ``importlib_resources`` (gpiozero's, for display fonts) are deferred
by ``daemon.deferred_import`` and still work when used;
gpiozero's mock pins, the embedded broker, VietQR without ``[vietqr]`` and the
UI server are imported only by the code that uses them (docs/performance.md,
"Memory").  Checked in a fresh interpreter, so what other tests imported does
not count.
"""

from __future__ import annotations

import sys

import pytest

from daemon import deferred_import
from tests.fresh_interpreter import PRODUCTION_IMPORTS, probe

#: Run after PRODUCTION_IMPORTS.
_PROBE = """
import types
loaded = sorted(sys.modules)
from daemon.deferred_import import UNUSED_BY_THE_DAEMON
stand_ins = {name: type(sys.modules[name]).__name__ for name in UNUSED_BY_THE_DAEMON}
from urllib.request import getproxies
import urllib.request
import importlib_resources
print(json.dumps({
    "loaded": loaded,
    "stand_ins": stand_ins,
    "used": callable(getproxies) and callable(urllib.request.proxy_bypass)
    and importlib_resources.files("daemon").joinpath("sim.toml").is_file(),
    "replaced": sys.modules["urllib.request"] is urllib.request
    and type(urllib.request) is types.ModuleType,
    "after_use": "http.client" in sys.modules,
}))
"""

#: Imported only by what needs them: a simulation, an option, a command.
ONLY_WHEN_NEEDED = (
    "http.client",  # with urllib.request
    "importlib_resources._common",  # with importlib_resources
    "gpiozero.pins.mock",
    "daemon.broker",
    "daemon.payments",
    "daemon.ui.server",
)


def test_production_imports_leave_out_what_they_do_not_use() -> None:
    found = probe(PRODUCTION_IMPORTS + _PROBE)
    assert "paho.mqtt.client" in found["loaded"]
    assert [m for m in ONLY_WHEN_NEEDED if m in found["loaded"]] == []
    assert found["stand_ins"] == {
        "urllib.request": "DeferredModule",
        "importlib_resources": "DeferredModule",
    }
    # Used, the deferred module is the real one (the check is not vacuous).
    assert found["used"]
    assert found["replaced"]
    assert found["after_use"]


def test_defer_leaves_an_imported_module_alone() -> None:
    before = sys.modules["json"]
    deferred_import.defer(("json",))
    assert sys.modules["json"] is before


def test_defer_refuses_a_module_that_does_not_exist() -> None:
    with pytest.raises(ModuleNotFoundError):
        deferred_import.defer(("daemon.no_such_module",))
    assert "daemon.no_such_module" not in sys.modules
