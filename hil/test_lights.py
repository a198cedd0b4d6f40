"""lights: ``set`` changes one guide light, seen in the state (and by the rig)."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from hil.rig import SIM, Hands, Rig
from hil.wire import expect, expect_state, ok, sim_out_topic, state_topic
from tests.uiclient import UiClient


async def test_set_a_light(
    rig: Rig, ui: UiClient, hands: Hands, described: dict[str, dict[str, Any]]
) -> None:
    lights = rig.device("lights")
    capabilities = described[lights.id]["capabilities"]
    position = capabilities["positions"][0]
    # Only a position with colours takes `color` (a single-colour light refuses it).
    colors = capabilities["positionColors"][position]
    color = "green" if "green" in colors else (colors[0] if colors else None)
    want: dict[str, Any] = {"position": position, "mode": "slowFlash"}
    if color is not None:
        want["color"] = color
    async with (
        ui.subscription(state_topic(ui, lights.id)) as states,
        ui.subscription(sim_out_topic(ui, lights.id, "light")) as seen,
    ):
        try:
            result = ok(await ui.device(lights.id, "set", want))
            assert {k: result.get(k) for k in want} == want, result
            await expect_state(
                states,
                lambda s: (
                    {k: v for k, v in s["detail"]["positions"][position].items() if v}
                    == {k: v for k, v in want.items() if k != "position"}
                ),
                5,
                f"{position} light {want}",
            )
            if hands.of(lights.id) == SIM:
                await expect(
                    seen,
                    lambda m: all(m.payload.get(k) == v for k, v in want.items()),
                    5,
                    f"sim/{lights.id}/out/light {want}",
                )
            else:
                hands.say(f">>> CHECK ({lights.id}): the {position} light flashes slowly {color}")
                await asyncio.sleep(5)  # time to look before it is switched off
        finally:
            with contextlib.suppress(Exception):
                await ui.device(lights.id, "set", {"position": position, "mode": "off"})
