"""documentSlot: ``accept`` opens the shutter and takes a document in; ``retract`` keeps it."""

from __future__ import annotations

import contextlib

from hil.rig import Hands, Rig
from hil.wire import detail_has, expect_event, expect_state, ok, retained, state_topic
from tests.uiclient import UiClient


async def test_accept_a_document(rig: Rig, ui: UiClient, hands: Hands) -> None:
    slot = rig.device("documentSlot")
    hands.need(slot.id)
    before = await retained(ui, state_topic(ui, slot.id))
    assert before["detail"]["media"] == "absent", f"the slot is not empty: {before['detail']}"
    patience = hands.patience(slot.id, 10)
    accepted = False
    async with (
        ui.subscription(state_topic(ui, slot.id)) as states,
        ui.subscription(f"{ui.root}/dev/{slot.id}/evt/+") as events,
    ):
        accepting = await ui.start(
            f"{ui.root}/dev/{slot.id}/cmd/accept", {"timeoutMs": int(patience * 1000)}
        )
        try:
            assert (await accepting.next())["type"] == "ack"
            await expect_state(states, detail_has(shutter="open"), 5, f"{slot.id} shutter open")
            await hands.do(
                slot.id,
                "insertDocument",
                prompt="Push a sheet of paper into the document slot (the test keeps it)",
            )
            ok(await accepting.completion(patience + 5))
            accepted = True
            await expect_event(events, "documentInserted", 5)
            await expect_state(
                states,
                detail_has(media="inside", shutter="closed"),
                5,
                f"{slot.id} document inside, shutter closed",
            )
            ok(await ui.device(slot.id, "retract", timeout=30))
            await expect_state(states, detail_has(media="absent"), 5, f"{slot.id} empty again")
        finally:
            if not accepted:
                with contextlib.suppress(Exception):
                    await ui.call(f"{ui.root}/cmd/cancel", {"requestIds": [accepting.request_id]})
                    await ui.device(slot.id, "close")
