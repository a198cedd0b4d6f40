"""Paying the fee in banknotes in the reference UI (headless Chromium on ``kioskd run --sim``).

The notes go through the sim's ``cashAcceptor`` (the real SSP driver and its emulated
validator, ``daemon/sim.toml``): each is escrowed, then stacked or returned, and the
screen shows which.  The receipt the ESC/POS simulator saved is compared pixel for pixel
with the slip rendered from what was paid.
"""

from __future__ import annotations

import asyncio

from tests.ui.citizen import PROCEDURE, Citizen, local_now, paid_stamps, printed_as
from tests.ui.conftest import KioskRig, Screen
from tests.ui.test_kiosk_look import contrasts, too_low


async def test_pays_by_notes_a_returned_note_shown_and_the_receipt_says_what_was_paid(
    kiosk: KioskRig, screen: Screen
) -> None:
    citizen = Citizen(kiosk, screen)
    world = kiosk.world
    fee = PROCEDURE["fee"]
    assert fee == 8000
    await citizen.open("?done=30")
    await citizen.to_payment(PROCEDURE["id"])
    await citizen.tap("#pay-notes")
    await screen.page.wait_for_selector("main[data-screen='payment'] >> text=Đưa từng tờ tiền")
    assert not too_low(await contrasts(screen)), "payment screen in notes"
    async with (
        world.subscription(f"{world.root}/sim/printer/out/slip") as slips,
        world.subscription(f"{world.root}/sim/cashAcceptor/out/returned") as returned,
        world.subscription(f"{world.root}/dev/cashAcceptor/evt/noteStacked") as stacked,
    ):
        # 100 000 would pay 92 000 too much, over the 50 000 policy: back to the citizen.
        shown = await citizen.note(100_000, "returned")
        assert shown == (
            "Tờ 100.000 đ: đã trả lại, vì vượt quá số tiền phải nộp "
            "(máy không trả tiền thừa). Vui lòng nhận lại tờ tiền."
        )
        assert (await asyncio.wait_for(returned.get(), 10)).payload["value"] == 100_000
        assert await screen.page.inner_text("#pay-paid") == "0 đ"
        await screen.shot("note-returned")
        assert not too_low(await contrasts(screen)), "payment screen with a returned note"
        assert await citizen.note(5000, "stacked") == "Tờ 5.000 đ: đã nhận"
        await citizen.paid_shows("5.000 đ")
        assert await citizen.note(2000, "stacked") == "Tờ 2.000 đ: đã nhận"
        await citizen.paid_shows("7.000 đ")
        assert not await screen.page.locator("#pay-vietqr, #pay-cash").count()  # money is in
        before = local_now().replace(microsecond=0)
        await citizen.sim("cashAcceptor", "insertNote", {"value": 1000})
        await screen.wait_screen("done", timeout=20)
        after = local_now()
        events = [(await asyncio.wait_for(stacked.get(), 10)).payload["data"] for _ in range(3)]
        receipt = (await asyncio.wait_for(slips.get(), 10)).payload
        await asyncio.wait_for(slips.get(), 10)  # the appointment slip
    assert [e["value"] for e in events] == [5000, 2000, 1000]
    assert events[-1]["total"] == fee
    assert len({e["transactionId"] for e in events}) == 1
    fields = await citizen.receipt_fields(events[0]["transactionId"], "Tiền giấy")
    # Paid when the deposit ended, between the last note and the done screen.
    stamps = paid_stamps(before, after)
    assert printed_as(receipt, fields, stamps), stamps
    # The comparison sees what was paid and how.
    assert not printed_as(receipt, {**fields, "paymentMethod": "Tiền xu"}, stamps)
    assert not printed_as(receipt, {**fields, "amountPaid": 7000}, stamps)
    done = await world.device("cashAcceptor", "depositStatus", {})
    assert done["result"]["transactions"] == []  # nothing left open or unsettled


async def test_idle_timeout_ends_the_note_deposit_and_prints_what_was_paid(
    kiosk: KioskRig, screen: Screen
) -> None:
    citizen = Citizen(kiosk, screen)
    world = kiosk.world
    await citizen.open("?idle=8&warn=4&pay=120&done=30")
    await citizen.to_payment(PROCEDURE["id"])
    await citizen.tap("#pay-notes")
    await screen.page.wait_for_selector("main[data-screen='payment'] >> text=Đưa từng tờ tiền")
    async with world.subscription(f"{world.root}/sim/printer/out/slip") as slips:
        assert await citizen.note(5000, "stacked") == "Tờ 5.000 đ: đã nhận"
        await citizen.paid_shows("5.000 đ")
        await screen.wait_screen("money", timeout=20)
        await asyncio.wait_for(slips.get(), 10)
    text = await screen.text()
    assert "Bạn đã nộp 5.000 đ" in text
    assert "Biên nhận đã được in" in text
    state = await world.device("cashAcceptor", "depositStatus", {})
    assert state["result"]["transactions"] == []
    # The note acceptor's deposit was ended, not left running: a further note comes back.
    async with world.subscription(f"{world.root}/sim/cashAcceptor/out/returned") as returned:
        await citizen.sim("cashAcceptor", "insertNote", {"value": 1000})
        assert (await asyncio.wait_for(returned.get(), 10)).payload == {"value": 1000}
