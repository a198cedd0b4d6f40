"""Operational events, fleet commands and the privacy rule, through both real brokers."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest

from tests.conftest import Broker, run_daemon
from tests.contract.test_privacy import identity_session
from tests.uiclient import connect
from tests.uplink.conftest import BOARD, FLEET_ROOT, Pki, fleet_spy, uplink_config


def events(spy_messages: list, kind: str) -> list[dict]:  # type: ignore[type-arg]
    return [m.data for m in spy_messages if m.topic == f"{FLEET_ROOT}/event/{kind}"]


async def test_operational_events_from_device_states_and_events(
    broker: Broker, fleet_broker: Broker, pki: Pki, tmp_path: Path
) -> None:
    config = uplink_config(broker.port, fleet_broker.port, tmp_path, pki)
    async with (
        fleet_spy(fleet_broker.port, pki) as spy,
        run_daemon(config) as daemon,
        connect(broker.port, BOARD, "tech") as ui,
    ):
        assert daemon.app.uplink is not None
        await daemon.app.uplink.connected.wait()
        # Each step waits for its event: a real driver polls the printer's status.
        await ui.sim("printer", "paper", {"level": "low"})
        await spy.wait_for(lambda: events(spy.messages, "paperLow"))
        await ui.sim("printer", "paper", {"level": "out"})
        await spy.wait_for(lambda: events(spy.messages, "paperOut"))
        await ui.sim("sensors", "door", {"open": True})
        await ui.sim("sensors", "tamper")
        await ui.sim("documentSlot", "fault", {"kind": "jam"})
        await ui.sim("coinAcceptor", "fault", {"kind": "disconnect"})
        # A real driver (cctalk) needs its reply timeouts and retries to call it offline.
        await spy.wait_for(
            lambda: any(e["device"] == "coinAcceptor" for e in events(spy.messages, "deviceError"))
        )
        await ui.sim("coinAcceptor", "fault", {"kind": "clear"})
        await spy.wait_for(lambda: events(spy.messages, "deviceRecovered"))
        await spy.wait_for(lambda: events(spy.messages, "jam"))
        await daemon.app.uplink.publish_health()
        await spy.wait_for(
            lambda: any(m.data["devices"]["coinAcceptor"]["errors"] == 1 for m in spy.of("health"))
        )
    assert events(spy.messages, "paperLow")[0]["facts"]["paper"] == "low"
    assert events(spy.messages, "paperOut")[0]["device"] == "printer"
    assert events(spy.messages, "doorOpened")[0]["deviceClass"] == "sensors"
    assert events(spy.messages, "tamper")[0]["facts"]["tamper"] is True
    jam = events(spy.messages, "jam")[0]
    assert jam["device"] == "documentSlot"
    errors = {e["device"]: e for e in events(spy.messages, "deviceError")}
    assert errors["coinAcceptor"]["state"] == "offline"
    assert errors["coinAcceptor"]["previous"] == "online"
    assert events(spy.messages, "deviceRecovered")[0]["device"] == "coinAcceptor"


async def test_fleet_commands_are_config_gated(
    broker: Broker, fleet_broker: Broker, pki: Pki, tmp_path: Path
) -> None:
    config = uplink_config(broker.port, fleet_broker.port, tmp_path, pki, health_interval_s=60)
    async with fleet_spy(fleet_broker.port, pki) as spy, run_daemon(config) as daemon:
        uplink = daemon.app.uplink
        assert uplink is not None
        await spy.wait_for(lambda: spy.of("health") and spy.of("birth"))

        def reply(request_id: str) -> dict | None:  # type: ignore[type-arg]
            found = [m.data for m in spy.of("reply") if m.data["requestId"] == request_id]
            return found[0] if found else None

        await spy.command("getHealth", {"requestId": "h1"})
        await spy.wait_for(lambda: reply("h1") is not None)
        assert reply("h1")["result"] == "ok"  # type: ignore[index]
        assert len(spy.of("health")) == 2

        await spy.command("restartDevice", {"requestId": "r1", "device": "printer"})
        await spy.wait_for(lambda: reply("r1") is not None)
        assert reply("r1")["result"] == "refused"  # type: ignore[index]
        assert "not enabled" in reply("r1")["error"]  # type: ignore[index]

        births = len(spy.of("birth"))
        await spy.command("rebirth", {"requestId": "b1"})
        await spy.wait_for(lambda: len(spy.of("birth")) > births and reply("b1") is not None)
        rebirth = spy.of("birth")[-1].data
        assert rebirth["seq"] == 0
        assert rebirth["bdSeq"] == spy.of("birth")[0].data["bdSeq"]
        after = [m for m in spy.messages if m.kind == "reply" and m.data["requestId"] == "b1"]
        assert after[0].data["seq"] >= 1


async def test_restart_device_when_enabled(
    broker: Broker, fleet_broker: Broker, pki: Pki, tmp_path: Path
) -> None:
    config = uplink_config(
        broker.port, fleet_broker.port, tmp_path, pki, commands=["restartDevice"]
    )
    async with (
        fleet_spy(fleet_broker.port, pki) as spy,
        run_daemon(config) as daemon,
        connect(broker.port, BOARD, "tech") as ui,
    ):
        assert daemon.app.uplink is not None
        await daemon.app.uplink.connected.wait()
        async with ui.subscription(f"kiosk/v1/{BOARD}/dev/printer/state") as states:
            await spy.command("restartDevice", {"requestId": "r1", "device": "printer"})
            await spy.wait_for(lambda: spy.of("reply"))
            seen = []
            async with asyncio.timeout(5):
                while "online" not in seen[1:]:
                    seen.append((await states.get()).payload["state"])
        assert "starting" in seen
        assert spy.of("reply")[0].data["result"] == "ok"
        await spy.command("restartDevice", {"requestId": "r2", "device": "nope"})
        await spy.wait_for(lambda: len(spy.of("reply")) == 2)
        assert spy.of("reply")[1].data["result"] == "failed"
        await spy.command("getHealth", {"requestId": "r3"})
        await spy.wait_for(lambda: len(spy.of("reply")) == 3)
        assert spy.of("reply")[2].data["result"] == "refused"


async def test_no_identity_data_upstream(
    broker: Broker, fleet_broker: Broker, pki: Pki, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    config = uplink_config(broker.port, fleet_broker.port, tmp_path, pki, health_interval_s=0.1)
    state_dir = Path(config.daemon.state_dir)
    async with fleet_spy(fleet_broker.port, pki) as spy, run_daemon(config) as daemon:
        assert daemon.app.uplink is not None
        await daemon.app.uplink.connected.wait()
        searches = await identity_session(broker.port)
        await daemon.app.uplink.publish_health()
        count = len(spy.raw)
        await spy.wait_for(lambda: len(spy.raw) > count + 2)
        scanned = searches.scan_files(state_dir)
        assert any(p.name.startswith("uplink-outbox") for p in scanned)
    for search in searches.searches:
        search.prove(tmp_path)
    assert {m.kind for m in spy.messages} >= {"birth", "health"}
    for search in searches.searches:
        search.scan_messages(
            "fleet", ((m.topic, raw) for m, raw in zip(spy.messages, spy.raw, strict=True))
        )
    searches.scan_files(state_dir)
    uplink_logs = [r for r in caplog.records if r.name.startswith("daemon.uplink")]
    assert uplink_logs, "the uplink's log is captured"
    for record in uplink_logs:
        searches.scan(f"log {record.name}", record.getMessage().encode())
    searches.assert_clean()


async def test_note_validator_events_reach_the_fleet(
    broker: Broker, fleet_broker: Broker, pki: Pki, tmp_path: Path
) -> None:
    config = uplink_config(broker.port, fleet_broker.port, tmp_path, pki)
    async with (
        fleet_spy(fleet_broker.port, pki) as spy,
        run_daemon(config) as daemon,
        connect(broker.port, BOARD, "tech") as ui,
    ):
        assert daemon.app.uplink is not None
        await daemon.app.uplink.connected.wait()
        started = await ui.device("cashAcceptor", "depositStart", {"currency": "VND"})
        assert started["completionCode"] == "success", started
        await ui.sim("cashAcceptor", "insertNote", {"value": 20_000, "pullBack": True})
        await spy.wait_for(
            lambda: any(e["device"] == "cashAcceptor" for e in events(spy.messages, "fraudAttempt"))
        )
        await ui.sim("cashAcceptor", "stacker", {"state": "full"})
        await spy.wait_for(
            lambda: any(e["device"] == "cashAcceptor" for e in events(spy.messages, "cashBoxFull"))
        )
