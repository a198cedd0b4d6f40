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
COLORS = ("white", "red", "green", "yellow", "blue", "cyan", "magenta")


async def positions(ui: UiClient) -> list[str]:
    return (await device_info(ui, DEV))["capabilities"]["positions"]


async def test_description_lists_the_contract(ui: UiClient, drivers: dict[str, str]) -> None:
    info = await check_description(ui, DEV, "lights", drivers["lights"], {"set"}, set())
    assert "printer" in info["capabilities"]["positions"]
    idle = await state(ui, DEV)
    assert idle["state"] == "online"
    assert set(idle["detail"]["positions"]) == set(info["capabilities"]["positions"])
    assert all(p["mode"] == "off" for p in idle["detail"]["positions"].values())


async def test_capabilities_say_which_positions_have_colour(ui: UiClient) -> None:
    """``positionColors`` (added to v1): per position, the colours ``set`` accepts, and it does."""
    caps = (await device_info(ui, DEV))["capabilities"]
    assert set(caps["positionColors"]) == set(caps["positions"])
    assert set(caps["colors"]) == set(COLORS)
    # The suites' wiring: the first position an RGB light, the others single-colour.
    first, *others = caps["positions"]
    assert set(caps["positionColors"][first]) == set(COLORS)
    assert others
    assert all(caps["positionColors"][p] == [] for p in others)
    async with outputs(ui, DEV, "light") as lights:
        for position, colors in caps["positionColors"].items():
            for color in colors:
                wanted = {"position": position, "mode": "on", "color": color}
                assert ok(await ui.device(DEV, "set", wanted)) == wanted
            if not colors:
                refused = {"position": position, "mode": "on", "color": "green"}
                failed(await ui.device(DEV, "set", refused), "unsupportedCommand")
                wanted = {"position": position, "mode": "on"}
                assert ok(await ui.device(DEV, "set", wanted))["mode"] == "on"
        await asyncio.sleep(0.1)
        shown = [
            (m.payload["position"], m.payload["mode"], m.payload.get("color"))
            for m in drain(lights)
        ]
    expected = [
        (position, "on", color)
        for position, colors in caps["positionColors"].items()
        for color in colors or [None]
    ]
    assert shown == expected
    current = await state(ui, DEV)
    assert all(v["mode"] == "on" for v in current["detail"]["positions"].values())
    assert all(current["detail"]["positions"][p]["color"] is None for p in others)


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
