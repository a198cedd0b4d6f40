"""sensors contract: cabinet door events, latched tamper, and the daemon status they degrade."""

from __future__ import annotations

from tests.contract.support import (
    check_description,
    events,
    failed,
    ok,
    state,
    status,
    wait_status,
)
from tests.uiclient import UiClient

CONTRACT_CLASSES = ("sensors",)
DEV = "sensors"


async def test_description_lists_the_contract(ui: UiClient, drivers: dict[str, str]) -> None:
    await check_description(
        ui,
        DEV,
        "sensors",
        drivers["sensors"],
        {"resetTamper"},
        {"doorOpened", "doorClosed", "tamper"},
    )
    idle = await state(ui, DEV)
    assert idle["state"] == "online"
    assert idle["detail"] == {"door": "closed", "tamper": False}
    assert (await status(ui))["state"] == "ready"


async def test_door_open_degrades_the_daemon(ui: UiClient) -> None:
    async with events(ui, DEV) as evt:
        await ui.sim(DEV, "door", {"open": True})
        assert (await evt.next("doorOpened"))["data"] == {}
        opened = await state(ui, DEV, lambda s: s["detail"]["door"] == "open")
        assert opened["state"] == "online", "an open door is a condition, not a device fault"
        degraded = await wait_status(ui, lambda s: s["state"] == "degraded")
        assert "door:open" in degraded["reasons"]

        await ui.sim(DEV, "door", {"open": False})
        assert (await evt.next("doorClosed"))["data"] == {}
        await state(ui, DEV, lambda s: s["detail"]["door"] == "closed")
        ready = await wait_status(ui, lambda s: s["state"] == "ready")
        assert ready["reasons"] == []


async def test_the_same_door_position_raises_no_event(ui: UiClient) -> None:
    async with events(ui, DEV) as evt:
        await ui.sim(DEV, "door", {"open": False})
        assert await evt.none(0.1) == []


async def test_tamper_is_latched_until_reset(ui: UiClient, technician: UiClient) -> None:
    async with events(ui, DEV) as evt:
        await ui.sim(DEV, "tamper")
        assert (await evt.next("tamper"))["data"] == {}
        await state(ui, DEV, lambda s: s["detail"]["tamper"] is True)
        degraded = await wait_status(ui, lambda s: "tamper" in s["reasons"])
        assert degraded["state"] == "degraded"

        # Opening and closing the door does not clear it.
        await ui.sim(DEV, "door", {"open": True})
        await ui.sim(DEV, "door", {"open": False})
        await evt.next("doorClosed")
        assert (await state(ui, DEV))["detail"]["tamper"] is True
        assert "tamper" in (await status(ui))["reasons"]

        # Every trip is announced, latched or not.
        await ui.sim(DEV, "tamper")
        await evt.next("tamper")

        # A staff operation: refused to a UI, done by the technician.
        assert "technician role" in failed(await ui.device(DEV, "resetTamper"), "userError")
        ok(await technician.device(DEV, "resetTamper"))
        await state(ui, DEV, lambda s: s["detail"]["tamper"] is False)
        await wait_status(ui, lambda s: s["state"] == "ready")
