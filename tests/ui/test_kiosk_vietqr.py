"""Paying the fee by VietQR transfer in the reference UI (headless Chromium on ``kioskd run --sim``).

The QR code on the screen is read back from a screenshot with zxing-cpp and parsed
as a VietQR payload; the demo office's bank (the technician page) reports the
transfer; the receipt the ESC/POS simulator saved is compared pixel for pixel with
the slip rendered from the fields it must carry, the transfer reference among them.
"""

from __future__ import annotations

import asyncio
import io
from typing import Any

import zxingcpp
from PIL import Image

from daemon.config import sim_config
from daemon.payments.vietqr import Service, Transfer, parse
from devices.printer import slip
from tests.ui.citizen import PROCEDURE, Citizen
from tests.ui.conftest import KioskRig, Screen
from tests.ui.test_kiosk_look import contrasts, too_low


def _codes(png: bytes) -> list[str]:
    return [c.text for c in zxingcpp.read_barcodes(Image.open(io.BytesIO(png)).convert("L"))]


async def _coin_state(kiosk: KioskRig) -> dict[str, Any]:
    world = kiosk.world
    async with world.subscription(f"{world.root}/dev/coinAcceptor/state") as queue:
        detail: dict[str, Any] = (await asyncio.wait_for(queue.get(), 5)).payload["detail"]
    return detail


async def _to_vietqr(citizen: Citizen, screen: Screen, query: str = "?done=30") -> str:
    """File up to the payment step, switch to VietQR; the reference shown.

    Both screens' text is measured at WCAG AA contrast on the way (test_kiosk_look).
    """
    await citizen.open(query)
    await citizen.to_payment(PROCEDURE["id"])
    assert not too_low(await contrasts(screen)), "payment screen with the VietQR button"
    await citizen.tap("#pay-vietqr")
    await screen.wait_screen("payment-vietqr")
    return await screen.page.inner_text("#transfer-reference")


async def test_pays_by_vietqr_and_the_receipt_carries_the_reference(
    kiosk: KioskRig, screen: Screen
) -> None:
    citizen = Citizen(kiosk, screen)
    world = kiosk.world
    fee = PROCEDURE["fee"]
    async with world.subscription(f"{world.root}/sim/printer/out/slip") as slips:
        reference = await _to_vietqr(citizen, screen)
        assert reference.isalnum()
        assert await screen.page.inner_text("#pay-due") == "8.000 đ"
        # What a citizen's banking app would read off the screen.
        shot = await screen.shot("payment-vietqr")
        [payload] = _codes(shot.read_bytes())
        vietqr = sim_config().vietqr
        assert vietqr is not None
        assert parse(payload) == Transfer(
            bin=vietqr.bin,
            account=vietqr.account,
            service=Service.ACCOUNT,
            amount=fee,
            bill_number=reference,
            purpose=reference,
        )
        assert vietqr.account_name in await screen.text()
        assert not too_low(await contrasts(screen)), "VietQR screen"
        # Switching ended the coin deposit: no coin is taken while the code is shown.
        coins = await _coin_state(kiosk)
        assert coins["inhibited"] is True
        assert coins["transactionId"] is None

        # The office's bank reports the transfer (the demo bank on the technician page).
        tech = await screen.page.context.new_page()
        await tech.goto(kiosk.url + "tech.html")
        await tech.click(f"#bank-pay-{reference}")
        sent = await tech.eval_on_selector("#sim-result", "e => ({...e.dataset})")
        assert sent["reference"] == reference
        assert int(sent["amount"]) == fee

        await screen.wait_screen("done", timeout=20)
        await screen.shot("done")
        paid = await citizen.receipt_fields(sent["bankTransactionId"], "Chuyển khoản VietQR")
        receipt = (await asyncio.wait_for(slips.get(), 10)).payload
        appointment = (await asyncio.wait_for(slips.get(), 10)).payload
    assert _codes(appointment["png"]) == [paid["dossierCode"]]

    fields = {**paid, "paidAt": sent["paidAt"], "transferReference": reference}
    printed = Image.open(io.BytesIO(receipt["png"])).convert("1")
    expected = slip.render_slip("receipt", fields, receipt["widthDots"])
    assert printed.size == expected.size
    assert printed.tobytes() == expected.tobytes()
    other = slip.render_slip(
        "receipt", {**fields, "transferReference": "HS000000XXXXXXXX"}, receipt["widthDots"]
    )
    assert other.tobytes() != printed.tobytes()  # the comparison sees the reference


async def test_an_unpaid_code_can_be_left_for_coins(kiosk: KioskRig, screen: Screen) -> None:
    citizen = Citizen(kiosk, screen)
    await _to_vietqr(citizen, screen)
    await citizen.tap("#pay-cash")
    await citizen.coins(5000, 2000, 1000)
    await screen.wait_screen("done", timeout=20)


async def test_an_expired_code_gives_way_to_a_new_reference(
    kiosk: KioskRig, screen: Screen
) -> None:
    citizen = Citizen(kiosk, screen)
    first = await _to_vietqr(citizen, screen, "?done=30&vietqr=6")
    await screen.wait_screen("problem", timeout=15)
    assert "hết hạn" in await screen.text()
    await citizen.tap("#retry")
    await screen.wait_screen("payment-vietqr")
    second = await screen.page.inner_text("#transfer-reference")
    assert second != first
    [payload] = _codes((await screen.shot("payment-vietqr-again")).read_bytes())
    assert parse(payload).bill_number == second
