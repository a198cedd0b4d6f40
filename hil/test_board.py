"""The board as a whole: the daemon is up, describes the rig's devices, and they are online."""

from __future__ import annotations

import asyncio
from typing import Any

from hil.rig import Rig
from hil.wire import retained, state_topic
from tests.uiclient import JSON, UiClient


async def test_status_is_ready_and_description_lists_the_rigs_devices(
    rig: Rig, ui: UiClient, description: dict[str, Any]
) -> None:
    status = await retained(ui, f"{ui.root}/status")
    assert status["state"] == "ready", f"status {status['state']}: {status.get('reasons')}"
    assert status["reasons"] == []
    assert status["api"] == 1
    assert status["session"] == description["session"], "status and description of one run"

    assert description["board"] == rig.board
    listed = {d["id"]: d for d in description["devices"]}
    for device in rig.devices:
        assert device.id in listed, f"{device.id} is not in the description ({sorted(listed)})"
        entry = listed[device.id]
        assert entry["class"] == device.device_class, entry
        # Every command publishes its deadlines; a UI sizes its waits from them.
        assert entry["commands"], f"{device.id} describes no command"
        for name, command in entry["commands"].items():
            assert 0 < command["defaultTimeoutMs"] <= command["maxTimeoutMs"], (name, command)
        if device.hands == "sim":
            assert entry.get("simulated") is True, f"{device.id}: hands = sim, not simulated"
            assert "fault" in entry.get("simActions", []), entry


async def test_every_device_is_online(rig: Rig, ui: UiClient, description: dict[str, Any]) -> None:
    session = description["session"]
    states = {d.id: await retained(ui, state_topic(ui, d.id)) for d in rig.devices}
    offline = {d: s["state"] for d, s in states.items() if s["state"] != "online"}
    assert not offline, f"not online: {offline}"
    for device_id, state in states.items():
        assert state["session"] == session, f"{device_id}: retained state of an older run"
        assert isinstance(state["seq"], int), state


async def test_get_status_answers_the_requester(ui: UiClient) -> None:
    completion = await ui.daemon("getStatus")
    assert completion["completionCode"] == "success", completion
    assert completion["result"]["state"] in ("ready", "degraded")


async def test_json_request_is_answered_in_json(ui: UiClient) -> None:
    # What mosquitto_rr and MQTT Explorer rely on.
    request = await ui.start(f"{ui.root}/cmd/getStatus", content_type=JSON)
    reply = await asyncio.wait_for(request.replies.get(), 10)
    assert reply.content_type == JSON, reply
    assert reply.payload["type"] == "completion"
    assert reply.payload["requestId"] == request.request_id
    assert reply.payload["completionCode"] == "success", reply.payload
