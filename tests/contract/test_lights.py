"""lights contract: ``set`` drives one position, shown on ``sim/lights/out/light`` and in state."""

from __future__ import annotations

import asyncio

from tests.contract.support import (
    check_description,
    device_info,
    drain,
    failed,
    ok,
    outputs,
    state,
)
from tests.uiclient import UiClient

CONTRACT_CLASSES = ("lights",)
DEV = "lights"
MODES = ("off", "on", "slowFlash", "mediumFlash", "quickFlash")


async def positions(ui: UiClient) -> list[str]:
    return (await device_info(ui, DEV))["capabilities"]["positions"]


async def test_description_lists_the_contract(ui: UiClient, drivers: dict[str, str]) -> None:
    info = await check_description(ui, DEV, "lights", drivers["lights"], {"set"}, set())
    assert "printer" in info["capabilities"]["positions"]
    idle = await state(ui, DEV)
    assert idle["state"] == "online"
    assert set(idle["detail"]["positions"]) == set(info["capabilities"]["positions"])
    assert all(p["mode"] == "off" for p in idle["detail"]["positions"].values())


async def test_set_shows_the_light(ui: UiClient) -> None:
    position = (await positions(ui))[0]
    async with outputs(ui, DEV, "light") as lights:
        wanted = {"position": position, "mode": "quickFlash", "color": "green"}
        assert ok(await ui.device(DEV, "set", wanted)) == wanted
        shown = await asyncio.wait_for(lights.get(), 1)
        assert shown.payload == wanted
        current = await state(
            ui, DEV, lambda s: s["detail"]["positions"][position]["mode"] != "off"
        )
        assert current["detail"]["positions"][position] == {"mode": "quickFlash", "color": "green"}

        assert (
            ok(await ui.device(DEV, "set", {"position": position, "mode": "off"}))["mode"] == "off"
        )
        shown = await asyncio.wait_for(lights.get(), 1)
        assert shown.payload["position"] == position
        assert shown.payload["mode"] == "off"
        assert shown.payload.get("color") is None
        await state(ui, DEV, lambda s: s["detail"]["positions"][position]["mode"] == "off")


async def test_every_mode_on_every_position(ui: UiClient) -> None:
    names = await positions(ui)
    async with outputs(ui, DEV, "light") as lights:
        for position, mode in zip(names, MODES * len(names), strict=False):
            ok(await ui.device(DEV, "set", {"position": position, "mode": mode}))
        await asyncio.sleep(0.1)
        shown = [(m.payload["position"], m.payload["mode"]) for m in drain(lights)]
    expected = list(zip(names, MODES * len(names), strict=False))
    assert shown == expected
    current = await state(ui, DEV)
    assert {p: v["mode"] for p, v in current["detail"]["positions"].items()} == dict(expected)


async def test_set_validates(ui: UiClient) -> None:
    position = (await positions(ui))[0]
    async with outputs(ui, DEV, "light") as lights:
        failed(await ui.device(DEV, "set", {"position": "nowhere", "mode": "on"}), "invalidData")
        failed(await ui.device(DEV, "set", {"position": position, "mode": "blink"}), "invalidData")
        failed(
            await ui.device(DEV, "set", {"position": position, "mode": "on", "color": "pink"}),
            "invalidData",
        )
        failed(await ui.device(DEV, "set", {"position": position}), "invalidData")
        await asyncio.sleep(0.05)
        assert drain(lights) == []
