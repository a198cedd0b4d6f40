"""Paying the fee in banknotes in the reference UI (headless Chromium on ``kioskd run --sim``).

The notes go through the sim's ``cashAcceptor`` (the real SSP driver and its emulated
validator, ``daemon/sim.toml``): each is escrowed, then stacked or returned, and the
screen shows which.  The receipt the ESC/POS simulator saved is compared pixel for pixel
with the slip rendered from what was paid.
"""

from __future__ import annotations

import asyncio
import io
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from PIL import Image

from devices.printer import slip
from tests.ui.citizen import NAME, Citizen
from tests.ui.conftest import KioskRig, Screen
from tests.ui.test_kiosk_look import contrasts, too_low

OFFICE = json.loads(
    (Path(__file__).parents[2] / "daemon/ui/web/data/office-demo.json").read_text("utf-8")
)
PROCEDURE = next(p for p in OFFICE["procedures"] if p["id"] == "birth-extract-copy")


def _local_now() -> datetime:
    """The kiosk's wall clock as the page stamps a receipt (local time, no zone)."""
    return datetime.now(UTC).astimezone().replace(tzinfo=None)


async def _note(citizen: Citizen, value: int, state: str) -> str:
    """Feed a note and wait until the screen lists it as ``state``; the line shown."""
    await citizen.sim("cashAcceptor", "insertNote", {"value": value})
    item = citizen.page.locator(f"#pay-notes li[data-value='{value}'][data-state='{state}']")
    await item.last.wait_for(timeout=10_000)
    return await item.last.inner_text()


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
        shown = await _note(citizen, 100_000, "returned")
        assert shown == (
            "Tờ 100.000 đ: đã trả lại, vì vượt quá số tiền phải nộp "
            "(máy không trả tiền thừa). Vui lòng nhận lại tờ tiền."
        )
        assert (await asyncio.wait_for(returned.get(), 10)).payload["value"] == 100_000
        assert await screen.page.inner_text("#pay-paid") == "0 đ"
        await screen.shot("note-returned")
        assert not too_low(await contrasts(screen)), "payment screen with a returned note"
        assert await _note(citizen, 5000, "stacked") == "Tờ 5.000 đ: đã nhận"
        await citizen.paid_shows("5.000 đ")
        assert await _note(citizen, 2000, "stacked") == "Tờ 2.000 đ: đã nhận"
        await citizen.paid_shows("7.000 đ")
        assert not await screen.page.locator("#pay-vietqr, #pay-cash").count()  # money is in
        before = _local_now().replace(microsecond=0)
        await citizen.sim("cashAcceptor", "insertNote", {"value": 1000})
        await screen.wait_screen("done", timeout=20)
        after = _local_now()
        events = [(await asyncio.wait_for(stacked.get(), 10)).payload["data"] for _ in range(3)]
        receipt = (await asyncio.wait_for(slips.get(), 10)).payload
        await asyncio.wait_for(slips.get(), 10)  # the appointment slip
    assert [e["value"] for e in events] == [5000, 2000, 1000]
    assert events[-1]["total"] == fee
    assert len({e["transactionId"] for e in events}) == 1
    assert not [line for line in screen.console if line.startswith(("error", "pageerror"))]
    code = (await screen.page.inner_text("#dossier-code")).split(":")[-1].strip()
    fields: dict[str, Any] = {
        "office": OFFICE["office"]["vi"],
        "dossierCode": code,
        "procedure": PROCEDURE["name"]["vi"],
        "payerName": NAME,
        "amountDue": fee,
        "amountPaid": fee,
        "transactionId": events[0]["transactionId"],
        "paymentMethod": "Tiền giấy",
    }
    printed = Image.open(io.BytesIO(receipt["png"])).convert("1").tobytes()
    width = receipt["widthDots"]
    # Paid when the deposit ended, between the last note and the done screen.
    seconds = range(int((after - before).total_seconds()) + 2)
    stamps = [(before + timedelta(seconds=n)).isoformat() for n in seconds]

    def printed_as(changes: dict[str, Any]) -> bool:
        return any(
            slip.render_slip("receipt", {**fields, "paidAt": at, **changes}, width).tobytes()
            == printed
            for at in stamps
        )

    assert printed_as({}), stamps
    # The comparison sees what was paid and how.
    assert not printed_as({"paymentMethod": "Tiền xu"})
    assert not printed_as({"amountPaid": 7000})
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
        assert await _note(citizen, 5000, "stacked") == "Tờ 5.000 đ: đã nhận"
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
