"""coinAcceptor: a deposit of 3000 VND paid with 1000 + 2000 ends itself at the amount due."""

from __future__ import annotations

import contextlib
from typing import Any

import pytest

from hil.rig import SIM, Hands, Rig
from hil.wire import expect, expect_event, ok, sim_out_topic
from tests.uiclient import UiClient


async def test_deposit_reaches_amount_due(
    rig: Rig, ui: UiClient, hands: Hands, described: dict[str, dict[str, Any]]
) -> None:
    acceptor = rig.device("coinAcceptor")
    hands.need(acceptor.id)
    capabilities = described[acceptor.id]["capabilities"]
    currency = capabilities.get("currency", "VND")
    if not {1000, 2000} <= set(capabilities.get("coins", [])):
        pytest.skip(f"{acceptor.id} does not take 1000 and 2000 coins: {capabilities.get('coins')}")
    patience = hands.patience(acceptor.id, 10)
    ended: dict[str, Any] | None = None

    async with ui.subscription(f"{ui.root}/dev/{acceptor.id}/evt/+") as events:
        start = ok(
            await ui.device(
                acceptor.id,
                "depositStart",
                {"currency": currency, "amountDue": 3000, "timeoutMs": int(3 * patience * 1000)},
            )
        )
        tx = start["transactionId"]
        try:
            await hands.do(
                acceptor.id,
                "insertCoin",
                {"value": 1000},
                prompt="Insert a 1000 VND coin into the coin acceptor",
            )
            first = await expect_event(
                events, "coinAccepted", patience, lambda d: d.get("transactionId") == tx
            )
            assert (first["value"], first["total"]) == (1000, 1000), first

            await hands.do(
                acceptor.id,
                "insertCoin",
                {"value": 2000},
                prompt="Insert a 2000 VND coin into the coin acceptor",
            )
            second = await expect_event(
                events, "coinAccepted", patience, lambda d: d.get("transactionId") == tx
            )
            assert (second["value"], second["total"]) == (2000, 3000), second
            assert second["index"] > first["index"]

            ended = await expect_event(
                events, "depositEnded", 5, lambda d: d.get("transactionId") == tx
            )
        finally:
            if ended is None:  # leave the acceptor inhibited for the next test
                with contextlib.suppress(Exception):
                    await ui.device(acceptor.id, "depositEnd", {"transactionId": tx})

    assert ended["reason"] == "amountReached", ended
    assert ended["total"] == 3000, ended
    # The ledger agrees; depositEnd of an ended transaction returns it unchanged.
    record = ok(await ui.device(acceptor.id, "depositEnd", {"transactionId": tx}))
    assert record["state"] == "ended", record
    assert record["reason"] == "amountReached"
    assert record["total"] == 3000
    assert [c["value"] for c in record["coins"]] == [1000, 2000], record["coins"]

    if hands.of(acceptor.id) == SIM:
        # Ended means inhibited: the hardware hands a further coin back.
        async with ui.subscription(sim_out_topic(ui, acceptor.id, "returned")) as returned:
            await hands.do(acceptor.id, "insertCoin", {"value": 1000})
            await expect(returned, lambda m: m.payload == {"value": 1000}, 5, "coin returned")
