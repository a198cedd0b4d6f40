"""cashAcceptor: 30 000 VND paid with a 10 000 and a 20 000 note, each escrowed then stacked."""

from __future__ import annotations

import contextlib
from typing import Any

import pytest

from hil.rig import SIM, Hands, Rig
from hil.wire import expect, expect_event, ok, sim_out_topic
from tests.uiclient import UiClient


async def test_notes_are_escrowed_stacked_and_end_the_deposit(
    rig: Rig, ui: UiClient, hands: Hands, described: dict[str, dict[str, Any]]
) -> None:
    validator = rig.device("cashAcceptor")
    hands.need(validator.id)
    capabilities = described[validator.id]["capabilities"]
    if not {10_000, 20_000} <= set(capabilities.get("notes", [])):
        pytest.skip(f"{validator.id} does not take 10 000 and 20 000 notes")
    patience = hands.patience(validator.id, 15)
    ended: dict[str, Any] | None = None

    async with ui.subscription(f"{ui.root}/dev/{validator.id}/evt/+") as events:
        start = ok(
            await ui.device(
                validator.id,
                "depositStart",
                {"currency": "VND", "amountDue": 30_000, "timeoutMs": int(3 * patience * 1000)},
            )
        )
        tx = start["transactionId"]
        try:
            total = 0
            for value in (10_000, 20_000):
                await hands.do(
                    validator.id,
                    "insertNote",
                    {"value": value},
                    prompt=f"Feed a {value} VND note into the note validator",
                )
                escrowed = await expect_event(
                    events, "noteEscrowed", patience, lambda d: d.get("transactionId") == tx
                )
                assert escrowed["value"] == value, escrowed
                stacked = await expect_event(
                    events, "noteStacked", patience, lambda d: d.get("transactionId") == tx
                )
                total += value
                assert (stacked["value"], stacked["total"]) == (value, total), stacked
            ended = await expect_event(
                events, "depositEnded", 5, lambda d: d.get("transactionId") == tx
            )
        finally:
            if ended is None:  # leave the validator inhibited for the next test
                with contextlib.suppress(Exception):
                    await ui.device(validator.id, "depositEnd", {"transactionId": tx})

    assert (ended["reason"], ended["total"]) == ("amountReached", 30_000), ended
    record = ok(await ui.device(validator.id, "depositEnd", {"transactionId": tx}))
    assert [c["value"] for c in record["coins"]] == [10_000, 20_000], record

    if hands.of(validator.id) == SIM:
        # Ended means inhibited: the validator does not take a further note in.
        async with ui.subscription(sim_out_topic(ui, validator.id, "returned")) as returned:
            await hands.do(validator.id, "insertNote", {"value": 10_000})
            await expect(returned, lambda m: m.payload == {"value": 10_000}, 5, "note returned")
