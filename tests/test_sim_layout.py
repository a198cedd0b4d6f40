"""Simulators sit by device class under one naming scheme (docs/architecture.md).

``devices/sim/<class>/behaviour.py`` is a class's behavioural simulator, a wire
simulator is ``devices/sim/<class>/<driver>.py`` for the real driver it serves,
and ``devices/sim/`` holds nothing but class folders and ``support/``.
"""

from __future__ import annotations

import re
from pathlib import Path

from devices.registry import DEVICE_CLASSES, DRIVERS, SIMULATORS

SIM = Path(__file__).resolve().parents[1] / "devices" / "sim"


def _folder(device_class: str) -> str:
    return re.sub(r"(?<!^)([A-Z])", r"_\1", device_class).lower()


def test_behavioural_simulators_are_class_behaviour_modules() -> None:
    sims = {cls: target for (cls, driver), target in DRIVERS.items() if driver == "sim"}
    assert set(sims) == set(DEVICE_CLASSES)
    for cls, target in sims.items():
        assert target.partition(":")[0] == f"devices.sim.{_folder(cls)}.behaviour", cls


def test_wire_simulators_are_named_after_their_driver() -> None:
    assert SIMULATORS
    for (cls, driver), target in SIMULATORS.items():
        assert (cls, driver) in DRIVERS, f"no {cls} driver {driver} for its simulator"
        assert target.partition(":")[0] == f"devices.sim.{_folder(cls)}.{driver}", target


def test_sim_folder_holds_class_folders_and_support_only() -> None:
    folders = {_folder(cls) for cls in DEVICE_CLASSES} | {"support"}
    flat = sorted(p.name for p in SIM.glob("*.py") if p.name != "__init__.py")
    assert flat == []
    dirs = {p.name for p in SIM.iterdir() if p.is_dir() and p.name != "__pycache__"}
    assert dirs == folders
