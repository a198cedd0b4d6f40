"""lockers contract: ``open`` with the right code completes when the door is seen open; door events.

The codes staff would ``assign`` are given the bank's code store directly (the
code checks themselves: tests/api/test_locker_codes.py).
"""

from __future__ import annotations

import asyncio

from devices.lockers.protocol import Lockers
from tests.conftest import RunningDaemon
from tests.contract.support import (
    acked,
    check_description,
    device_info,
    events,
    failed,
    ok,
    sim_call,
    start,
    state,
    wait_status,
)
from tests.uiclient import UiClient

CONTRACT_CLASSES = ("lockers",)
DEV = "lockers"


async def code(daemon: RunningDaemon, n: int) -> str:
    """Give compartment ``n`` a code, as staff's ``assign`` would; returns it."""
    bank = daemon.app.devices[DEV]
    assert isinstance(bank, Lockers)
    await bank.codes.assign(n, f"HS-TEST-{n:04}")
    return f"HS-TEST-{n:04}"


def door(n: int, position: str):
    return lambda s: s["detail"]["compartments"][str(n)]["door"] == position


async def pull(ui: UiClient, n: int) -> None:
    """The citizen pulls door ``n`` as soon as its lock is released."""
    async with asyncio.timeout(2):
        while (await sim_call(ui, DEV, "openCompartment", {"compartment": n}))[
            "completionCode"
        ] != "success":
            await asyncio.sleep(0.02)


async def test_description_lists_the_contract(ui: UiClient, drivers: dict[str, str]) -> None:
    info = await check_description(
        ui,
        DEV,
        "lockers",
        drivers["lockers"],
        {"open"},
        {"compartmentOpened", "compartmentClosed", "compartmentLeftOpen"},
    )
    count = info["capabilities"]["compartments"]
    assert count >= 1
    idle = await state(ui, DEV)
    assert idle["state"] == "online"
    assert set(idle["detail"]["compartments"]) == {str(n) for n in range(1, count + 1)}
    assert all(c["door"] == "closed" for c in idle["detail"]["compartments"].values())


async def test_open_completes_when_the_door_is_pulled(ui: UiClient, daemon: RunningDaemon) -> None:
    params = {"compartment": 2, "code": await code(daemon, 2), "timeoutMs": 3000}
    async with events(ui, DEV) as evt:
        opening = await acked(await start(ui, DEV, "open", params))
        await asyncio.sleep(0.1)
        assert opening.replies.empty(), "open waits for the door to be seen open"
        await pull(ui, 2)
        assert ok(await opening.completion(2)) in ({}, None)
        assert (await evt.next("compartmentOpened"))["data"] == {"compartment": 2}
        opened = await state(ui, DEV, door(2, "open"))
        assert opened["detail"]["compartments"]["1"]["door"] == "closed"

        await ui.sim(DEV, "closeCompartment", {"compartment": 2})
        assert (await evt.next("compartmentClosed"))["data"] == {"compartment": 2}
        closed = await state(ui, DEV, door(2, "closed"))
        assert closed["state"] == "online"


async def test_door_never_opened_times_out_and_stays_locked(
    ui: UiClient, daemon: RunningDaemon
) -> None:
    params = {"compartment": 1, "code": await code(daemon, 1), "timeoutMs": 300}
    async with events(ui, DEV) as evt:
        failed(await ui.device(DEV, "open", params), "timeOut")
        # The lock holds again: pulling the door now does not open it.
        pulled = await sim_call(ui, DEV, "openCompartment", {"compartment": 1})
        assert pulled["completionCode"] != "success"
        assert "compartmentOpened" not in await evt.none(0.1)
    current = await state(ui, DEV)
    assert current["detail"]["compartments"]["1"]["door"] == "closed"
    assert current["state"] == "online"


async def test_locked_doors_do_not_open(ui: UiClient) -> None:
    assert (await sim_call(ui, DEV, "openCompartment", {"compartment": 3}))[
        "completionCode"
    ] != "success"
    await state(ui, DEV, door(3, "closed"))


async def test_open_validates_the_compartment(ui: UiClient) -> None:
    count = (await device_info(ui, DEV))["capabilities"]["compartments"]
    failed(await ui.device(DEV, "open", {"compartment": 0}), "invalidData")
    failed(await ui.device(DEV, "open", {"compartment": count + 1}), "invalidData")
    failed(await ui.device(DEV, "open", {}), "invalidData")


async def test_open_an_open_door_is_a_sequence_error(ui: UiClient, daemon: RunningDaemon) -> None:
    params = {"compartment": 4, "code": await code(daemon, 4), "timeoutMs": 3000}
    opening = await acked(await start(ui, DEV, "open", params))
    await pull(ui, 4)
    ok(await opening.completion(2))
    await code(daemon, 4)  # given again: the open door, not the code, refuses
    failed(await ui.device(DEV, "open", {**params, "timeoutMs": 1000}), "sequenceError")


async def test_door_left_open_is_a_user_error_until_shut(
    ui: UiClient, daemon: RunningDaemon
) -> None:
    params = {"compartment": 5, "code": await code(daemon, 5), "timeoutMs": 3000}
    async with events(ui, DEV) as evt:
        opening = await acked(await start(ui, DEV, "open", params))
        await pull(ui, 5)
        ok(await opening.completion(2))
        left = await evt.next("compartmentLeftOpen", timeout=3)
        assert left["data"] == {"compartment": 5}
        current = await state(ui, DEV, lambda s: s["state"] == "userError")
        assert current["detail"]["compartments"]["5"]["door"] == "open"
        assert current["detail"]["compartments"]["5"]["leftOpen"] is True
        status = await wait_status(ui, lambda s: s["state"] == "degraded")
        assert "lockers:userError" in status["reasons"]
        await ui.sim(DEV, "closeCompartment", {"compartment": 5})
        assert (await evt.next("compartmentClosed"))["data"] == {"compartment": 5}
    await state(ui, DEV, lambda s: s["state"] == "online")
    await wait_status(ui, lambda s: s["state"] == "ready")
