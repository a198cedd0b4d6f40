"""GPIO devices through ``kioskd``: config pin checks, ``safe-state`` and ``kioskd lockers``."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from typer.testing import CliRunner

from daemon.cli import app
from daemon.config import ConfigError, load
from devices.lockers.audit import audit_path
from devices.transports.gpio import release_mock_factory, share_mock_factory
from tests.contract.support import sim_call
from tests.uiclient import UiClient

BOARD = '[board]\nid = "cli-0001"\n'


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "kiosk.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_a_pin_used_twice_across_devices_names_both_uses(tmp_path):
    path = write(
        tmp_path,
        BOARD
        + """
[devices.slot]
class = "documentSlot"
driver = "gpio"
pin_factory = "mock"

[devices.cabinet]
class = "sensors"
driver = "gpio"
pin_factory = "mock"
tamper = { pin = 16, pull = "up" }
""",
    )
    with pytest.raises(ConfigError) as caught:
        load(path)
    message = str(caught.value)
    assert "kiosk.toml" in message
    assert "`devices.cabinet.tamper`" in message
    assert "GPIO16" in message
    assert "`devices.slot.shutter`" in message


def test_a_pin_used_twice_in_one_device_and_on_an_expander(tmp_path):
    slot = write(
        tmp_path,
        BOARD + '[devices.slot]\nclass = "documentSlot"\ndriver = "gpio"\ninside = { pin = 5 }\n',
    )
    with pytest.raises(ConfigError, match=r"devices\.slot\.inside.*GPIO5.*devices\.slot\.entry"):
        load(slot)
    lockers = write(
        tmp_path,
        BOARD
        + """
[devices.lockers]
class = "lockers"
driver = "gpio"
compartments = [
  { lock = { pin = 0, expander = "main" }, door = { pin = 8, expander = "main" } },
  { lock = { pin = 1, expander = "main" }, door = { pin = 8, expander = "main" } },
]
""",
    )
    with pytest.raises(
        ConfigError,
        match=r"i2c-1/0x20/B0 is already used by `devices\.lockers\.compartments\.0\.door`",
    ):
        load(lockers)
    # The reference wiring of all four GPIO classes together is valid.
    together = write(
        tmp_path,
        BOARD
        + "".join(
            f'[devices.{cls}]\nclass = "{cls}"\ndriver = "gpio"\n'
            for cls in ("documentSlot", "lockers", "lights", "sensors")
        ),
    )
    assert len(load(together).devices) == 4


def test_kioskd_safe_state_switches_off_what_a_killed_daemon_left_on(tmp_path):
    factory = share_mock_factory("cli-safe-state")
    try:
        path = write(
            tmp_path,
            BOARD
            + """
[daemon]
state_dir = "STATE"

[devices.documentSlot]
class = "documentSlot"
driver = "gpio"
pin_factory = "mock:cli-safe-state"

[devices.lockers]
class = "lockers"
driver = "gpio"
pin_factory = "mock:cli-safe-state"
expanders = {}
compartments = [
  { lock = { pin = 23 }, door = { pin = 24 } },
  { lock = { pin = 25, active_high = false }, door = { pin = 12 } },
]
""".replace("STATE", str(tmp_path / "state")),
        )
        # A SIGKILLed daemon left the motor running, the shutter and two coils energised.
        driven = {20: 1, 16: 1, 26: 1, 23: 1, 25: 0}
        for number, level in driven.items():
            factory.pin(number).function = "output"
            factory.pin(number).state = level
            factory.pin(number).clear_states()
        result = CliRunner().invoke(app, ["safe-state", "--config", str(path)])
        assert result.exit_code == 0, result.output
        assert "documentSlot: safe" in result.output
        assert "lockers: safe" in result.output
        # Motor lines, shutter, LED and coil 1 low.
        assert [factory.pin(n).state for n in (20, 21, 16, 26, 23)] == [0, 0, 0, 0, 0]
        # Coil 2 is active-low: driven high (at rest) before its pin was released.
        assert [s.state for s in factory.pin(25).states][:2] == [0, 1]
    finally:
        release_mock_factory("cli-safe-state")


async def test_kioskd_lockers_open_and_audit_through_the_daemon(
    tmp_path, broker, daemon, ui: UiClient
):
    (tmp_path / "cli").mkdir()
    config = write(
        tmp_path / "cli", f'[board]\nid = "{daemon.board}"\n[mqtt]\nport = {broker.port}\n'
    )
    runner = CliRunner()
    opening = asyncio.create_task(
        asyncio.to_thread(
            runner.invoke, app, ["lockers", "open", "2", "-c", str(config), "--timeout-ms", "3000"]
        )
    )
    async with asyncio.timeout(3):
        while (await sim_call(ui, "lockers", "openCompartment", {"compartment": 2}))[
            "completionCode"
        ] != "success":
            await asyncio.sleep(0.02)
    result = await asyncio.wait_for(opening, 5)
    assert result.exit_code == 0, result.output
    assert "compartment 2 is open" in result.output

    never = await asyncio.to_thread(
        runner.invoke, app, ["lockers", "assign", "3", "-c", str(config), "--timeout-ms", "300"]
    )
    assert never.exit_code == 1
    assert "timeOut" in never.output

    state_dir = Path(daemon.app.config.daemon.state_dir)
    assert audit_path(state_dir, "lockers").exists()
    audit = runner.invoke(
        app, ["lockers", "audit", "-c", str(config), "--state-dir", str(state_dir)]
    )
    assert audit.exit_code == 0, audit.output
    lines = [line.split("\t") for line in audit.output.splitlines()]
    assert [(f[2], f[3], f[4]) for f in lines] == [
        ("open", "2", "opened"),
        ("assign", "3", "timeOut"),
    ]
    # The technician asks (a staff user, on req/technician/...): the audit names it.
    assert all(f[5] == "technician" for f in lines)


def test_kioskd_lockers_without_a_daemon_says_so(tmp_path):
    from daemon.broker import free_port

    path = write(tmp_path, BOARD + f"[mqtt]\nport = {free_port()}\nconnect_timeout = 1.0\n")
    result = CliRunner().invoke(app, ["lockers", "open", "1", "-c", str(path)])
    assert result.exit_code == 69
    assert "cannot reach" in result.output
