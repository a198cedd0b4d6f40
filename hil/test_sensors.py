"""sensors: opening the cabinet door is an event and degrades the status until it is shut."""

from __future__ import annotations

import contextlib

from hil.rig import SIM, Hands, Rig
from hil.wire import expect_event, expect_payload
from tests.uiclient import UiClient


async def test_cabinet_door_open_and_close(rig: Rig, ui: UiClient, hands: Hands) -> None:
    sensors = rig.device("sensors")
    hands.need(sensors.id)
    patience = hands.patience(sensors.id, 10)
    door_open = False
    async with (
        ui.subscription(f"{ui.root}/dev/{sensors.id}/evt/+") as events,
        ui.subscription(f"{ui.root}/status") as status,
    ):
        try:
            await hands.do(
                sensors.id, "door", {"open": True}, prompt="Open the cabinet door (service key)"
            )
            await expect_event(events, "doorOpened", patience)
            door_open = True
            degraded = await expect_payload(
                status, lambda s: s["state"] == "degraded", 5, "status degraded"
            )
            assert "door:open" in degraded["reasons"], degraded

            await hands.do(sensors.id, "door", {"open": False}, prompt="Close the cabinet door")
            await expect_event(events, "doorClosed", patience)
            door_open = False
            ready = await expect_payload(
                status, lambda s: s["state"] == "ready", 5, "status ready again"
            )
            assert ready["reasons"] == []
        finally:
            if door_open and hands.of(sensors.id) == SIM:
                with contextlib.suppress(AssertionError):
                    await ui.sim(sensors.id, "door", {"open": False})
