"""Contract suites: each device class through its public MQTT API, once per implementation.

A module declares the classes it exercises (``CONTRACT_CLASSES``); every test
in it runs once per combination of their implementations listed in
:data:`IMPLEMENTATIONS`.  The device of that class in the built-in sim config
(its id equals the class name) is switched to the driver under test; every
other device stays simulated.  A real driver joins the suites by adding its
name to its class's list (and, if it needs any, its settings to
:data:`DRIVER_SETTINGS`); its ``sim/`` actions are then served by the wire
simulator at its far end, as wire API v1 promises.
"""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any

import msgspec
import pytest

from daemon.config import Config
from devices.registry import DEVICE_CLASSES, SIMULATORS, resolve
from tests.conftest import Broker, RunningDaemon, make_config, run_daemon

#: Implementations each class's contract suite runs against, by driver name.
IMPLEMENTATIONS: dict[str, list[str]] = {
    # Not "hid": a keyboard wedge cannot carry the Vietnamese card QR of the privacy suite
    # (docs/scanner.md); tests/devices/test_scanner_hid.py covers it.
    "scanner": ["sim", "serial", "hidpos"],
    "cardReader": ["sim", "pcsc"],
    "printer": ["sim", "escpos"],
    "coinAcceptor": ["sim", "cctalk", "pulse"],
    "cashAcceptor": ["sim", "ssp", "cctalk"],
    "documentSlot": ["sim", "gpio"],
    "lockers": ["sim", "gpio"],
    "camera": ["sim", "v4l2"],
    "lights": ["sim", "gpio"],
    "sensors": ["sim", "gpio"],
}

#: Driver settings for the suites, by ``(class, driver)``: a real driver's port or
#: wire simulator, or shorter mechanical times that keep every test well under a second.
DRIVER_SETTINGS: dict[tuple[str, str], dict[str, Any]] = {
    ("scanner", "serial"): {"aim": True},
    ("scanner", "hidpos"): {"vid_pid": "0c2e:0b62"},
    ("cardReader", "sim"): {"read_ms": 400},
    ("printer", "sim"): {"print_ms": 50},
    ("printer", "escpos"): {"host": "127.0.0.1", "poll_ms": 100},
    ("documentSlot", "sim"): {"feed_ms": 50, "feed_timeout_ms": 1000, "retract_after_ms": 500},
    ("documentSlot", "gpio"): {
        "shutter_ms": 20,
        "jam_ms": 800,
        "feed_timeout_ms": 1500,
        "retract_after_ms": 500,
    },
    ("lockers", "sim"): {"lock_pulse_ms": 50, "left_open_ms": 800},
    ("lockers", "gpio"): {
        "lock_pulse_ms": 50,
        "lock_cooldown_ms": 100,
        "left_open_ms": 800,
        "poll_ms": 10,
    },
    ("camera", "sim"): {"capture_ms": 20},
    # The first position an RGB light, so the suite's colours can be shown; the others one colour.
    ("lights", "sim"): {
        "positions": ["scanner", "cardReader", "printer", "coinAcceptor", "documentSlot"],
        "single_color": ["cardReader", "printer", "coinAcceptor", "documentSlot"],
    },
    ("lights", "gpio"): {
        "positions": {
            "scanner": {"red": {"pin": 9}, "green": {"pin": 10}, "blue": {"pin": 11}},
            "cardReader": {"pin": {"pin": 18}},
            "printer": {"pin": {"pin": 23}},
            "coinAcceptor": {"pin": {"pin": 24}},
            "documentSlot": {"pin": {"pin": 25}},
        },
    },
    ("coinAcceptor", "sim"): {"cash_box_capacity": 6},
    ("cashAcceptor", "sim"): {"stacker_capacity": 4, "max_overpayment": 50_000},
    ("cashAcceptor", "cctalk"): {"stacker_capacity": 4, "max_overpayment": 50_000, "poll_ms": 50},
    ("cashAcceptor", "ssp"): {
        "stacker_capacity": 4,
        "max_overpayment": 50_000,
        "poll_ms": 50,
        "reply_timeout_ms": 300,
    },
    ("coinAcceptor", "cctalk"): {"cash_box_capacity": 6, "poll_ms": 50},
    ("coinAcceptor", "pulse"): {
        "cash_box_capacity": 6,
        "pulse_min_ms": 10,
        "pulse_max_ms": 100,
        "train_gap_ms": 100,
    },
}


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Parametrize ``drivers`` over every combination of the module's class implementations."""
    if "drivers" not in metafunc.fixturenames:
        return
    classes: tuple[str, ...] = getattr(metafunc.module, "CONTRACT_CLASSES", ())
    assert classes, f"{metafunc.module.__name__} must set CONTRACT_CLASSES"
    unknown = set(classes) - set(DEVICE_CLASSES)
    assert not unknown, f"unknown device classes {unknown}"
    combos = [
        dict(zip(classes, names, strict=True))
        for names in itertools.product(*(IMPLEMENTATIONS[c] for c in classes))
    ]
    ids = ["-".join(f"{c}={d}" for c, d in combo.items()) for combo in combos]
    metafunc.parametrize("drivers", combos, ids=ids, indirect=True)


@pytest.fixture
def drivers(request: pytest.FixtureRequest) -> dict[str, str]:
    """The driver under test per device class of the module (``{class: driver}``)."""
    return dict(request.param)


def contract_config(broker_port: int, tmp_path: Path, drivers: Mapping[str, str]) -> Config:
    """The built-in sim config on the test broker, with ``drivers`` for their classes."""
    config = make_config(broker_port, tmp_path)
    devices = []
    for entry in config.devices:
        driver = drivers.get(entry.device_class)
        if driver is None:
            devices.append(entry)
            continue
        spec = resolve(entry.device_class, driver)
        settings = msgspec.convert(
            DRIVER_SETTINGS.get((entry.device_class, driver), {}), spec.settings_type
        )
        simulator = driver if (entry.device_class, driver) in SIMULATORS else None
        devices.append(
            msgspec.structs.replace(entry, driver=driver, settings=settings, simulator=simulator)
        )
    return config.replace(devices=tuple(devices))


@pytest.fixture
def config(broker: Broker, tmp_path: Path, drivers: dict[str, str]) -> Config:
    """The daemon config for this test's implementations."""
    return contract_config(broker.port, tmp_path, drivers)


@pytest.fixture
async def daemon(config: Config) -> AsyncIterator[RunningDaemon]:
    """The daemon with the implementations under test (overrides the suite-wide fixture)."""
    async with run_daemon(config) as running:
        yield running
