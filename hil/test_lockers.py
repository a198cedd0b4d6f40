"""lockers: ``open`` releases a compartment and completes when its door is pulled open.

The open is a staff open (no collection code, docs/api.md "Locker collection
codes"): the ``staff`` client asks on ``req/technician/``.
"""

from __future__ import annotations

import contextlib
from typing import Any

from hil.rig import SIM, Hands, Rig
from hil.wire import expect, expect_event, expect_state, in_state, ok, sim_out_topic, state_topic
from tests.uiclient import UiClient

COMPARTMENT = 1


def _door(state: dict[str, Any]) -> Any:
    return state["detail"]["compartments"][str(COMPARTMENT)]["door"]


async def test_open_compartment(
    rig: Rig, ui: UiClient, staff: UiClient, hands: Hands, described: dict[str, dict[str, Any]]
) -> None:
    lockers = rig.device("lockers")
    hands.need(lockers.id)
    assert described[lockers.id]["capabilities"]["compartments"] >= COMPARTMENT
    patience = hands.patience(lockers.id, 10)
    sim = hands.of(lockers.id) == SIM
    opened = False
    async with (
        ui.subscription(state_topic(ui, lockers.id)) as states,
        ui.subscription(f"{ui.root}/dev/{lockers.id}/evt/+") as events,
        ui.subscription(sim_out_topic(ui, lockers.id, "lock")) as coils,
    ):
        opening = await staff.start(
            staff.request_topic("open", lockers.id),
            {"compartment": COMPARTMENT, "timeoutMs": int(patience * 1000)},
        )
        try:
            assert (await opening.next())["type"] == "ack"
            await expect_state(states, in_state("busy"), 5, f"{lockers.id} busy opening")
            if sim:  # the lock is released once its coil has been pulsed
                await expect(
                    coils,
                    lambda m: m.payload == {"compartment": COMPARTMENT, "energized": True},
                    5,
                    "lock coil energised",
                )
            await hands.do(
                lockers.id,
                "openCompartment",
                {"compartment": COMPARTMENT},
                prompt=f"Pull open the door of locker compartment {COMPARTMENT}",
            )
            ok(await opening.completion(patience + 5))
            opened = True
            data = await expect_event(events, "compartmentOpened", 5)
            assert data == {"compartment": COMPARTMENT}
            await expect_state(
                states, lambda s: _door(s) == "open", 5, f"compartment {COMPARTMENT} open"
            )

            await hands.do(
                lockers.id,
                "closeCompartment",
                {"compartment": COMPARTMENT},
                prompt=f"Shut the door of locker compartment {COMPARTMENT}",
            )
            data = await expect_event(events, "compartmentClosed", patience)
            assert data == {"compartment": COMPARTMENT}
            state = await expect_state(
                states, lambda s: _door(s) == "closed", 5, f"compartment {COMPARTMENT} closed"
            )
            assert state["state"] == "online", state
        finally:
            if sim and opened:
                with contextlib.suppress(AssertionError):
                    await ui.sim(lockers.id, "closeCompartment", {"compartment": COMPARTMENT})
