"""documentSlot contract: accept a document, hand it back or keep it, jams."""

from __future__ import annotations

import asyncio

from tests.contract.support import (
    acked,
    check_description,
    drain,
    events,
    failed,
    ok,
    outputs,
    sim_call,
    start,
    state,
    wait_status,
)
from tests.uiclient import Request, UiClient

CONTRACT_CLASSES = ("documentSlot",)
DEV = "documentSlot"


def shutter_open(s: dict) -> bool:
    return s["detail"]["shutter"] == "open"


async def accept_one(ui: UiClient) -> None:
    """Run ``accept`` and push a document in: it ends inside, shutter closed."""
    accept = await acked(await start(ui, DEV, "accept", {"timeoutMs": 3000}))
    await state(ui, DEV, shutter_open)
    await ui.sim(DEV, "insertDocument")
    ok(await accept.completion(3))
    await state(ui, DEV, lambda s: s["detail"] == {"media": "inside", "shutter": "closed"})


async def test_description_lists_the_contract(ui: UiClient, drivers: dict[str, str]) -> None:
    await check_description(
        ui,
        DEV,
        "documentSlot",
        drivers["documentSlot"],
        {"accept", "eject", "retract", "close"},
        {"documentInserted", "documentTaken", "jam"},
    )
    idle = await state(ui, DEV)
    assert idle["state"] == "online"
    assert idle["detail"] == {"media": "absent", "shutter": "closed"}


async def test_accept_takes_a_document_in(ui: UiClient) -> None:
    async with (
        events(ui, DEV) as evt,
        outputs(ui, DEV, "shutter") as shutter,
        outputs(ui, DEV, "motor") as motor,
    ):
        accept = await acked(await start(ui, DEV, "accept", {"timeoutMs": 3000}))
        waiting = await state(ui, DEV, shutter_open)
        assert waiting["detail"]["media"] == "absent"
        await state(ui, DEV, lambda s: s["state"] == "busy" and shutter_open(s))
        assert (await asyncio.wait_for(shutter.get(), 1)).payload == {"open": True}
        await asyncio.sleep(0.1)
        assert accept.replies.empty(), "accept waits for a document"

        await ui.sim(DEV, "insertDocument")
        assert (await evt.next("documentInserted"))["data"] == {}
        assert ok(await accept.completion(3)) in ({}, None)
        inside = await state(ui, DEV, lambda s: s["detail"]["media"] == "inside")
        assert inside["detail"]["shutter"] == "closed"
        assert [m.payload for m in drain(shutter)] == [{"open": False}]
        directions = [m.payload["direction"] for m in drain(motor)]
        assert directions[0] == "forward"
        assert directions[-1] == "stopped"


async def test_eject_hands_the_document_back(ui: UiClient) -> None:
    await accept_one(ui)
    async with events(ui, DEV) as evt:
        eject = await acked(await start(ui, DEV, "eject"))
        mouth = await state(ui, DEV, lambda s: s["detail"]["media"] == "entering")
        assert mouth["detail"]["shutter"] == "open"
        await ui.sim(DEV, "takeDocument")
        assert (await evt.next("documentTaken"))["data"] == {}
        assert ok(await eject.completion(3)) == {"taken": True}
    await state(ui, DEV, lambda s: s["detail"] == {"media": "absent", "shutter": "closed"})


async def test_eject_not_taken_pulls_the_document_back(ui: UiClient) -> None:
    await accept_one(ui)
    async with events(ui, DEV) as evt:
        assert ok(await ui.device(DEV, "eject", timeout=5)) == {"taken": False}
        assert "documentTaken" not in evt.names()
    await state(ui, DEV, lambda s: s["detail"] == {"media": "inside", "shutter": "closed"})


async def test_retract_keeps_the_document(ui: UiClient) -> None:
    await accept_one(ui)
    async with events(ui, DEV) as evt:
        ok(await ui.device(DEV, "retract", timeout=5))
        assert "documentTaken" not in await evt.none(0.1)
    await state(ui, DEV, lambda s: s["detail"] == {"media": "absent", "shutter": "closed"})


async def test_accept_ends_at_its_deadline_with_the_shutter_closed(ui: UiClient) -> None:
    failed(await ui.device(DEV, "accept", {"timeoutMs": 300}), "timeOut")
    await state(ui, DEV, lambda s: s["detail"] == {"media": "absent", "shutter": "closed"})
    assert (await sim_call(ui, DEV, "insertDocument"))["completionCode"] != "success"


async def test_accept_is_canceled_by_its_requester(ui: UiClient) -> None:
    accept: Request = await acked(await start(ui, DEV, "accept", {"timeoutMs": 5000}))
    await state(ui, DEV, shutter_open)
    assert ok(await ui.daemon("cancel", {"requestIds": [accept.request_id]}))["canceled"] == [
        accept.request_id
    ]
    failed(await accept.completion(2), "canceled")
    await state(ui, DEV, lambda s: s["detail"]["shutter"] == "closed")


async def test_commands_need_the_right_media(ui: UiClient) -> None:
    failed(await ui.device(DEV, "eject"), "sequenceError")
    failed(await ui.device(DEV, "retract"), "sequenceError")
    await accept_one(ui)
    failed(await ui.device(DEV, "accept", {"timeoutMs": 1000}), "sequenceError")
    ok(await ui.device(DEV, "close"))
    await state(ui, DEV, lambda s: s["detail"] == {"media": "inside", "shutter": "closed"})


async def test_jam_is_a_hardware_error_until_cleared(ui: UiClient) -> None:
    async with events(ui, DEV) as evt:
        await ui.sim(DEV, "fault", {"kind": "jam"})
        assert (await evt.next("jam"))["data"] == {}
        jammed = await state(ui, DEV, lambda s: s["state"] == "hardwareError")
        assert jammed["detail"]["media"] == "jammed"
        status = await wait_status(ui, lambda s: s["state"] == "degraded")
        assert "documentSlot:hardwareError" in status["reasons"]
        failed(await ui.device(DEV, "accept", {"timeoutMs": 1000}), "hardwareError")
        await ui.sim(DEV, "fault", {"kind": "clear"})
        await state(ui, DEV, lambda s: s["state"] == "online" and s["detail"]["media"] == "absent")
        await wait_status(ui, lambda s: s["state"] == "ready")
