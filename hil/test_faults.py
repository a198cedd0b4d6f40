"""Fault injection (sim hands only): one device drops off the bus and comes back; the
others keep serving meanwhile, and the status says which device is missing."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import pytest

from hil.rig import SIM, Hands, Rig, RigDevice
from hil.wire import expect_payload, expect_state, in_state, ok, state_topic
from tests.uiclient import UiClient

#: A command of each class that needs no person and changes nothing a test relies on.
HARMLESS: dict[str, tuple[str, dict[str, Any]]] = {
    "printer": ("cut", {}),
    "camera": ("takePicture", {"purpose": "face"}),
    "lights": ("set", {"position": "", "mode": "off"}),
}


def _command(device: RigDevice, described: dict[str, dict[str, Any]]) -> tuple[str, dict[str, Any]]:
    name, params = HARMLESS[device.device_class]
    if device.device_class == "lights":
        params = {**params, "position": described[device.id]["capabilities"]["positions"][0]}
    return name, params


async def test_device_goes_offline_and_back_while_others_serve(
    rig: Rig, ui: UiClient, hands: Hands, described: dict[str, dict[str, Any]]
) -> None:
    candidates = [d for d in rig.devices if d.device_class in HARMLESS and d.hands == SIM]
    if len(candidates) < 2:
        pytest.skip("needs two simulated devices among printer, camera, lights")
    victim, others = candidates[0], candidates[1:]
    hands.need_sim(victim.id)
    name, params = _command(victim, described)

    async with (
        ui.subscription(state_topic(ui, victim.id)) as states,
        ui.subscription(f"{ui.root}/status") as status,
    ):
        try:
            await hands.do(victim.id, "fault", {"kind": "disconnect"})
            await expect_state(states, in_state("offline"), 5, f"{victim.id} offline")
            degraded = await expect_payload(
                status, lambda s: s["state"] == "degraded", 5, "status degraded"
            )
            assert f"{victim.id}:offline" in degraded["reasons"], degraded

            # The missing device refuses at once; the others serve, concurrently.
            refused, *served = await asyncio.gather(
                ui.device(victim.id, name, params),
                *(ui.device(d.id, *_command(d, described), timeout=15) for d in others),
            )
            assert refused["completionCode"] == "deviceNotReady", refused
            for completion in served:
                ok(completion)

            await hands.do(victim.id, "fault", {"kind": "clear"})
            await expect_state(states, in_state("online"), 10, f"{victim.id} back online")
            await expect_payload(status, lambda s: s["state"] == "ready", 5, "status ready again")
        finally:
            with contextlib.suppress(AssertionError):
                await ui.sim(victim.id, "fault", {"kind": "clear"})
        ok(await ui.device(victim.id, name, params, timeout=15))
