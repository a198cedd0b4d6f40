"""Paying one fee in coins and banknotes together in the reference UI (headless Chromium).

On ``kioskd run --sim`` the board has a coin acceptor (ccTalk, emulated) and a note
validator (SSP, emulated): "Nộp cả tiền xu và tiền giấy" starts one deposit on the coin
acceptor, which the daemon's one deposit per board opens on the validator too
(docs/payments.md "One payment, several devices").  Coins and a note add up to the fee;
one ``depositEnded`` comes with what each device took, and the receipt says both.
"""

from __future__ import annotations

import asyncio
from typing import Any

from tests.ui.citizen import PROCEDURE, Citizen, local_now, paid_stamps, printed_as
from tests.ui.conftest import KioskRig, Screen


async def test_pays_one_fee_with_coins_and_a_note_and_the_receipt_says_both(
    kiosk: KioskRig, screen: Screen
) -> None:
    citizen = Citizen(kiosk, screen)
    world = kiosk.world
    fee = PROCEDURE["fee"]
    await citizen.open("?done=30")
    await citizen.to_payment(PROCEDURE["id"])
    await citizen.tap("#pay-mixed")
    await screen.page.wait_for_selector("main[data-screen='payment'] >> text=cộng chung một khoản")
    async with (
        world.subscription(f"{world.root}/sim/printer/out/slip") as slips,
        world.subscription(f"{world.root}/dev/coinAcceptor/evt/#") as coin_events,
    ):
        await citizen.sim("coinAcceptor", "insertCoin", {"value": 2000})
        await citizen.paid_shows("2.000 đ", timeout=10)
        assert await citizen.note(5000, "stacked") == "Tờ 5.000 đ: đã nhận"
        await citizen.paid_shows("7.000 đ")
        await screen.shot("mixed-paying")
        before = local_now().replace(microsecond=0)
        await citizen.sim("coinAcceptor", "insertCoin", {"value": 1000})
        await screen.wait_screen("done", timeout=20)
        after = local_now()
        receipt = (await asyncio.wait_for(slips.get(), 10)).payload
        await asyncio.wait_for(slips.get(), 10)  # the appointment slip
        ended: dict[str, Any] = {}
        while not ended:
            message = await asyncio.wait_for(coin_events.get(), 10)
            if message.topic.endswith("/evt/depositEnded"):
                ended = message.payload["data"]
    assert (ended["total"], ended["reason"]) == (fee, "amountReached")
    assert ended["devices"] == [
        {"deviceId": "coinAcceptor", "items": 2, "total": 3000},
        {"deviceId": "cashAcceptor", "items": 1, "total": 5000},
    ]
    fields = await citizen.receipt_fields(ended["transactionId"], "Tiền xu và tiền giấy")
    stamps = paid_stamps(before, after)
    assert printed_as(receipt, fields, stamps), stamps
    assert not printed_as(receipt, {**fields, "paymentMethod": "Tiền giấy"}, stamps)
    record = await world.device(
        "cashAcceptor", "depositStatus", {"transactionId": ended["transactionId"]}
    )
    (tx,) = record["result"]["transactions"]
    assert [(c["deviceId"], c["value"]) for c in tx["coins"]] == [
        ("coinAcceptor", 2000),
        ("cashAcceptor", 5000),
        ("coinAcceptor", 1000),
    ]
