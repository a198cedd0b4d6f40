"""Retained status, description and device state; seq/session; resync; reconnect; idempotency."""

from __future__ import annotations

import asyncio
from pathlib import Path

import msgspec

from devices.registry import DEVICE_CLASSES
from tests.conftest import Broker, RunningDaemon, make_config, run_daemon
from tests.support import SLIP_FIELDS
from tests.uiclient import UiClient, connect


async def _retained(ui: UiClient, topic_filter: str, settle: float = 0.3) -> dict[str, object]:
    found: dict[str, object] = {}
    async with ui.subscription(topic_filter) as queue:
        await asyncio.sleep(settle)
        while not queue.empty():
            message = queue.get_nowait()
            if message.retain:
                found[message.topic] = message.payload
    return found


async def test_retained_status_description_and_every_device_state(
    ui: UiClient, daemon: RunningDaemon
) -> None:
    retained = await _retained(ui, f"{ui.root}/#")
    status = retained[f"{ui.root}/status"]
    assert isinstance(status, dict)
    assert status["state"] == "ready"
    assert status["session"] == daemon.app.session
    description = retained[f"{ui.root}/description"]
    assert isinstance(description, dict)
    classes = {d["class"] for d in description["devices"]}
    assert classes == set(DEVICE_CLASSES)
    for device in description["devices"]:
        assert device["simulated"] is True
        assert "fault" in device["simActions"]
        for info in device["commands"].values():
            assert 0 < info["defaultTimeoutMs"] <= info["maxTimeoutMs"]
        state = retained[f"{ui.root}/dev/{device['id']}/state"]
        assert isinstance(state, dict)
        assert state["state"] == "online"
        assert state["session"] == daemon.app.session


async def test_seq_strictly_increases_across_state_and_events(
    ui: UiClient, daemon: RunningDaemon
) -> None:
    async with ui.subscription(f"{ui.root}/dev/+/#") as live:
        await asyncio.sleep(0.2)
        while not live.empty():
            live.get_nowait()
        for n in range(6):
            await ui.sim("sensors", "door", {"open": n % 2 == 0})
        await ui.sim("scanner", "fault", {"kind": "hardwareError"})
        await ui.sim("scanner", "fault", {"kind": "clear"})
        await asyncio.sleep(0.3)
        messages = [m for m in _drain(live) if not m.retain and "/cmd/" not in m.topic]
    seqs = [m.payload["seq"] for m in messages]
    assert len(seqs) >= 8
    assert seqs == sorted(seqs)
    assert len(set(seqs)) == len(seqs)
    assert {m.payload["session"] for m in messages} == {daemon.app.session}
    door = [m.topic.rsplit("/", 1)[-1] for m in messages if "/dev/sensors/evt/door" in m.topic]
    assert door == ["doorOpened", "doorClosed"] * 3


async def test_resync_snapshot_goes_to_the_requester_only(
    ui: UiClient, ui_factory, daemon: RunningDaemon
) -> None:
    async with ui_factory("ui2") as other, other.subscription(f"{ui.root}/reply/#") as spy:
        reply = await ui.daemon("resync")
        await asyncio.sleep(0.2)
        assert _drain(spy) == [] or all("/reply/ui2/" in m.topic for m in _drain(spy))
    snapshot = reply["result"]
    assert snapshot["session"] == daemon.app.session
    assert snapshot["seq"] == daemon.app.seq
    assert set(snapshot["states"]) == set(daemon.app.devices)
    assert snapshot["status"]["state"] == "ready"


async def test_device_fault_degrades_status_and_recovers(ui: UiClient) -> None:
    await ui.sim("printer", "fault", {"kind": "disconnect"})
    await _wait_status(ui, "degraded")
    status = (await ui.daemon("getStatus"))["result"]
    assert "printer:offline" in status["reasons"]
    other = await ui.device("scanner", "setMode", {"continuous": False})
    assert other["completionCode"] == "success", "one device's failure leaves the others serving"
    await ui.sim("printer", "fault", {"kind": "clear"})
    await _wait_status(ui, "ready", timeout=5)


async def test_broker_restart_reconnects_and_republishes_retained(
    broker: Broker, daemon: RunningDaemon
) -> None:
    broker.stop()
    await asyncio.sleep(0.3)
    broker.start()
    await asyncio.wait_for(daemon.app.link.connected.wait(), 10)
    async with connect(broker.port, daemon.board, "after") as ui:
        retained = await _retained(ui, f"{ui.root}/#", settle=0.5)
        assert retained[f"{ui.root}/status"]["state"] == "ready"  # type: ignore[index]
        assert f"{ui.root}/description" in retained
        assert all(f"{ui.root}/dev/{d}/state" in retained for d in daemon.app.devices)
        assert (await ui.daemon("getStatus"))["completionCode"] == "success"


async def test_stale_retained_state_of_unconfigured_device_is_cleared(
    broker: Broker, tmp_path: Path
) -> None:
    async with connect(broker.port, "sim-0001", "planter") as planter:
        await planter.client.publish(
            "kiosk/v1/sim-0001/dev/oldPrinter/state",
            msgspec.msgpack.encode({"state": "online"}),
            qos=1,
            retain=True,
        )
    async with (
        run_daemon(make_config(broker.port, tmp_path)),
        connect(broker.port, "sim-0001", "ui9") as ui,
    ):
        await asyncio.sleep(0.5)
        retained = await _retained(ui, "kiosk/v1/sim-0001/dev/oldPrinter/state")
        assert retained == {}


async def test_side_effect_request_is_not_run_twice_even_after_restart(
    broker: Broker, tmp_path: Path
) -> None:
    config = make_config(broker.port, tmp_path)
    params = {"template": "appointment", "fields": dict(SLIP_FIELDS), "copies": 1}
    async with run_daemon(config), connect(broker.port, "sim-0001", "kiosk-ui") as ui:
        async with ui.subscription(f"{ui.root}/sim/printer/out/slip") as slips:
            first = await ui.device("printer", "printSlip", params, request_id="print-42")
            again = await ui.device("printer", "printSlip", params, request_id="print-42")
            await asyncio.sleep(0.3)
            assert first["completionCode"] == "success", first
            assert again == first
            assert len(_drain(slips)) == 1
        other_client = None
        async with connect(broker.port, "sim-0001", "other-ui") as other:
            other_client = await other.device("printer", "printSlip", params, request_id="print-42")
        assert other_client["completionCode"] == "success", "the key is clientId + requestId"
    async with run_daemon(config), connect(broker.port, "sim-0001", "kiosk-ui") as ui:
        async with ui.subscription(f"{ui.root}/sim/printer/out/slip") as slips:
            retry = await ui.device("printer", "printSlip", params, request_id="print-42")
            await asyncio.sleep(0.3)
            assert retry["completionCode"] == first["completionCode"]
            assert retry["result"] == first["result"]
            assert _drain(slips) == []


async def test_duplicate_while_running_gets_the_ack(ui: UiClient) -> None:
    params = {"template": "appointment", "fields": dict(SLIP_FIELDS), "copies": 2}
    first = await ui.start(f"{ui.root}/dev/printer/cmd/printSlip", params, request_id="dup")
    assert (await first.next())["type"] == "ack"
    second = await ui.start(f"{ui.root}/dev/printer/cmd/printSlip", params, request_id="dup")
    assert (await second.next()) == {"type": "ack", "requestId": "dup"}
    assert (await first.completion())["completionCode"] == "success"


async def _wait_status(ui: UiClient, state: str, timeout: float = 3.0) -> None:
    async with asyncio.timeout(timeout):
        while (await ui.daemon("getStatus"))["result"]["state"] != state:
            await asyncio.sleep(0.05)


def _drain(queue: asyncio.Queue) -> list:
    out = []
    while not queue.empty():
        out.append(queue.get_nowait())
    return out


async def test_request_id_reused_for_another_command_is_refused(ui: UiClient) -> None:
    started = await ui.device(
        "coinAcceptor", "depositStart", {"currency": "VND", "amountDue": 5000}, request_id="same"
    )
    assert started["completionCode"] == "success"
    reused = await ui.device(
        "coinAcceptor",
        "depositEnd",
        {"transactionId": started["result"]["transactionId"]},
        request_id="same",
    )
    assert reused["completionCode"] == "invalidData"
    assert "already used for depositStart" in reused["errorDescription"]
    ended = await ui.device(
        "coinAcceptor", "depositEnd", {"transactionId": started["result"]["transactionId"]}
    )
    assert ended["completionCode"] == "success"
