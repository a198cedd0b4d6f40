"""Paying one fee in coins and banknotes together in the reference UI (headless Chromium).

On ``kioskd run --sim`` the board has a coin acceptor (ccTalk, emulated) and a note
validator (SSP, emulated): "Nộp cả tiền xu và tiền giấy" starts one deposit on the coin
acceptor, which the daemon's one deposit per board opens on the validator too
(docs/payments.md "One payment, several devices").  Coins and a note add up to the fee;
one ``depositEnded`` comes with what each device took, and the receipt says both.
"""

from __future__ import annotations

import asyncio
import io
from datetime import timedelta
from typing import Any

from PIL import Image

from devices.printer import slip
from tests.ui.citizen import NAME, Citizen
from tests.ui.conftest import KioskRig, Screen
from tests.ui.test_kiosk_notes import OFFICE, PROCEDURE, _local_now, _note


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
        assert await _note(citizen, 5000, "stacked") == "Tờ 5.000 đ: đã nhận"
        await citizen.paid_shows("7.000 đ")
        await screen.shot("mixed-paying")
        before = _local_now().replace(microsecond=0)
        await citizen.sim("coinAcceptor", "insertCoin", {"value": 1000})
        await screen.wait_screen("done", timeout=20)
        after = _local_now()
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
    assert not [line for line in screen.console if line.startswith(("error", "pageerror"))]
    code = (await screen.page.inner_text("#dossier-code")).split(":")[-1].strip()
    fields: dict[str, Any] = {
        "office": OFFICE["office"]["vi"],
        "dossierCode": code,
        "procedure": PROCEDURE["name"]["vi"],
        "payerName": NAME,
        "amountDue": fee,
        "amountPaid": fee,
        "transactionId": ended["transactionId"],
        "paymentMethod": "Tiền xu và tiền giấy",
    }
    printed = Image.open(io.BytesIO(receipt["png"])).convert("1").tobytes()
    width = receipt["widthDots"]
    stamps = [
        (before + timedelta(seconds=n)).isoformat()
        for n in range(int((after - before).total_seconds()) + 2)
    ]

    def printed_as(changes: dict[str, Any]) -> bool:
        return any(
            slip.render_slip("receipt", {**fields, "paidAt": at, **changes}, width).tobytes()
            == printed
            for at in stamps
        )

    assert printed_as({}), stamps
    assert not printed_as({"paymentMethod": "Tiền giấy"})
    record = await world.device(
        "cashAcceptor", "depositStatus", {"transactionId": ended["transactionId"]}
    )
    (tx,) = record["result"]["transactions"]
    assert [(c["deviceId"], c["value"]) for c in tx["coins"]] == [
        ("coinAcceptor", 2000),
        ("cashAcceptor", 5000),
        ("coinAcceptor", 1000),
    ]
