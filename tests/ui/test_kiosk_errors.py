"""What the citizen sees when the devices report trouble, when they give up and when they leave."""

from __future__ import annotations

import asyncio

from devices.lockers.codes import CodeStore, codes_path
from tests.ui.citizen import CARD_QR, Citizen
from tests.ui.conftest import KioskRig, Screen


async def test_paper_out_before_printing_then_refilled(kiosk: KioskRig, screen: Screen) -> None:
    citizen = Citizen(kiosk, screen)
    await citizen.open()
    await citizen.sim("printer", "paper", {"level": "out"})
    await citizen.to_payment("certified-copy")
    await citizen.sim("coinAcceptor", "insertCoin", {"value": 2000})
    await screen.wait_screen("print-problem", timeout=20)
    await screen.shot("paper-out")
    text = await screen.text()
    assert "Máy in đã hết giấy" in text
    assert "Hãy ghi lại mã hồ sơ: HS-" in text  # the dossier is filed; its code is not lost
    world = kiosk.world
    async with world.subscription(f"{world.root}/sim/printer/out/slip") as slips:
        await citizen.sim("printer", "paper", {"level": "full"})
        await citizen.tap("#retry")
        await screen.wait_screen("done", timeout=20)
        await asyncio.wait_for(slips.get(), 10)  # the receipt
        await asyncio.wait_for(slips.get(), 10)  # the appointment slip
    assert "Vui lòng nhận phiếu hẹn" in await screen.text()


async def test_card_removed_mid_read_then_read_again(kiosk: KioskRig, screen: Screen) -> None:
    citizen = Citizen(kiosk, screen)
    await citizen.open()
    await citizen.start_filing("birth-extract-copy")
    await screen.wait_screen("identify-key")
    await citizen.scan(CARD_QR, "identify-key")
    await citizen.tap("#expiry-yes")
    await screen.wait_screen("identify-card")
    # A slow chip: the read is still going when the citizen takes the card away.
    await citizen.sim("cardReader", "fault", {"kind": "slow", "delayMs": 1500})
    await citizen.sim("cardReader", "presentCard")
    await screen.wait_screen("identify-read", timeout=10)
    await screen.shot("reading")
    await citizen.sim("cardReader", "removeCard")
    await screen.wait_screen("problem", timeout=10)
    await screen.shot("card-removed")
    assert "Thẻ đã bị lấy ra trong khi đọc" in await screen.text()
    await citizen.sim("cardReader", "fault", {"kind": "clear"})
    await citizen.tap("#retry")
    await screen.wait_screen("identify-card")
    await citizen.sim("cardReader", "presentCard")
    await screen.wait_screen("identify-ok")


async def test_coin_timeout_with_partial_payment_prints_a_receipt(
    kiosk: KioskRig, screen: Screen
) -> None:
    citizen = Citizen(kiosk, screen)
    world = kiosk.world
    await citizen.open("?pay=4&done=30")
    await citizen.to_payment("birth-extract-copy")
    async with world.subscription(f"{world.root}/sim/printer/out/slip") as slips:
        await citizen.sim("coinAcceptor", "insertCoin", {"value": 1000})
        await citizen.paid_shows("1.000 đ")
        await screen.shot("partial")
        assert "Thời gian còn lại" in await screen.text()
        await screen.wait_screen("money", timeout=20)
        slip = await asyncio.wait_for(slips.get(), 10)
    await screen.shot("money")
    text = await screen.text()
    assert "Hết thời gian nộp lệ phí" in text
    assert "Bạn đã nộp 1.000 đ trên 8.000 đ" in text
    assert "Biên nhận đã được in" in text
    assert slip.payload["png"]
    done = await world.device("coinAcceptor", "depositStatus", {})
    assert done["result"]["transactions"] == []  # nothing left open or unsettled
    await citizen.tap("#home")
    await screen.wait_screen("idle")


async def test_idle_timeout_ends_an_open_deposit_and_prints_what_was_paid(
    kiosk: KioskRig, screen: Screen
) -> None:
    citizen = Citizen(kiosk, screen)
    world = kiosk.world
    await citizen.open("?idle=8&warn=4&pay=120&done=30")
    await citizen.to_payment("birth-extract-copy")
    async with world.subscription(f"{world.root}/sim/printer/out/slip") as slips:
        await citizen.sim("coinAcceptor", "insertCoin", {"value": 5000})
        await citizen.paid_shows("5.000 đ")
        await screen.page.wait_for_selector("#idle-warning:not([hidden])", timeout=10000)
        await screen.shot("idle-warning")
        await screen.wait_screen("money", timeout=20)
        await asyncio.wait_for(slips.get(), 10)
    text = await screen.text()
    assert "Bạn đã nộp 5.000 đ" in text
    assert "Biên nhận đã được in" in text
    state = await world.device("coinAcceptor", "depositStatus", {})
    assert state["result"]["transactions"] == []
    # The acceptor takes no more coins: the deposit was ended, not left running.
    async with world.subscription(f"{world.root}/sim/coinAcceptor/out/returned") as returned:
        await citizen.sim("coinAcceptor", "insertCoin", {"value": 1000})
        assert (await asyncio.wait_for(returned.get(), 5)).payload == {"value": 1000}


async def test_cancel_goes_back_to_start_and_stops_the_running_read(
    kiosk: KioskRig, screen: Screen
) -> None:
    citizen = Citizen(kiosk, screen)
    await citizen.open()
    await citizen.start_filing("certified-copy")
    await screen.wait_screen("identify-key")
    await screen.page.wait_for_selector("main[data-scanner='reading']")
    await citizen.tap("#cancel")
    await screen.wait_screen("idle")
    # The idle screen reads again (for a dossier QR), nothing of the visit is queued.
    await citizen.scan("HS-DEMO-0003", "idle")
    await screen.wait_screen("collect-not-ready")
    assert "31/12/2099" in await screen.text()


async def test_wrong_access_key_then_corrected(kiosk: KioskRig, screen: Screen) -> None:
    citizen = Citizen(kiosk, screen)
    await citizen.open()
    await citizen.start_filing("certified-copy")
    await screen.wait_screen("identify-key")
    await citizen.tap("#key-type")
    await screen.wait_screen("identify-typed")
    await screen.page.fill("#in-idNumber", "079099000123")
    await screen.page.fill("#in-dateOfBirth", "15/01/1990")
    await screen.page.fill("#in-dateOfExpiry", "15/01/2031")
    await citizen.tap("#typed-ok")
    await screen.wait_screen("identify-card")
    await citizen.sim("cardReader", "presentCard")
    await screen.wait_screen("problem")
    assert "không khớp với chip" in await screen.text()
    await citizen.tap("#retry")
    await screen.wait_screen("identify-typed")
    assert await screen.page.input_value("#in-dateOfExpiry") == "15/01/2031"
    await screen.page.fill("#in-dateOfExpiry", "15/01/2030")
    await citizen.tap("#typed-ok")
    await screen.wait_screen("identify-ok")


async def test_device_not_ready_then_back(kiosk: KioskRig, screen: Screen) -> None:
    citizen = Citizen(kiosk, screen)
    await citizen.open("?lang=en")
    await citizen.sim("camera", "fault", {"kind": "disconnect"})
    await citizen.start_filing("certified-copy")
    await citizen.identify()
    await screen.wait_screen("capture-face")
    await citizen.tap("#take")
    await screen.wait_screen("problem")
    await screen.shot("camera-not-ready")
    assert "The camera is not ready." in await screen.text()
    await citizen.sim("camera", "fault", {"kind": "clear"})
    await citizen.wait_state("camera", "online")  # the supervisor brings the camera back
    await citizen.tap("#retry")
    await screen.wait_screen("capture-face-check", timeout=10)


async def staff_assigned(kiosk: KioskRig, compartment: int, code: str) -> None:
    """What staff's ``assign`` with a code leaves in the running daemon's state."""
    state_dir = kiosk.workdir / "state" / "kioskd-sim"  # sim_state_dir() of the rig
    await CodeStore(codes_path(state_dir, "lockers")).assign(compartment, code)


async def test_collect_results_from_the_locker(kiosk: KioskRig, screen: Screen) -> None:
    await staff_assigned(kiosk, 3, "HS-DEMO-0002")
    citizen = Citizen(kiosk, screen)
    await citizen.open()
    await citizen.tap("#start-collect")
    await screen.wait_screen("collect-scan")
    await citizen.scan("HS-DEMO-0002", "collect-scan")
    await citizen.identify()
    await screen.wait_screen("collect-open")
    assert "Ngăn số 3 đã mở khoá" in await screen.text()
    await citizen.sim_until("lockers", "openCompartment", {"compartment": 3})
    await screen.wait_screen("collect-take")
    await screen.shot("collect-take")
    assert "Lấy kết quả trong ngăn số 3" in await screen.text()
    await citizen.sim("lockers", "closeCompartment", {"compartment": 3})
    await screen.wait_screen("collect-done")
    assert "Bạn đã nhận kết quả" in await screen.text()


async def test_a_compartment_opens_only_with_its_code(kiosk: KioskRig, screen: Screen) -> None:
    await staff_assigned(kiosk, 3, "HS-DEMO-0009")  # staff loaded another dossier there
    citizen = Citizen(kiosk, screen)
    await citizen.open("?lang=en")
    await citizen.tap("#start-collect")
    await screen.wait_screen("collect-scan")
    await citizen.scan("HS-DEMO-0002", "collect-scan")
    await citizen.identify()
    await screen.wait_screen("problem")
    await screen.shot("locker-wrong-code")
    assert "The code on your slip does not open this compartment" in await screen.text()
    pulled = await kiosk.world.call(
        f"{kiosk.world.root}/sim/lockers/openCompartment", {"compartment": 3}
    )
    assert pulled["completionCode"] != "success", "the lock never moved"


async def test_language_toggle(kiosk: KioskRig, screen: Screen) -> None:
    citizen = Citizen(kiosk, screen)
    await citizen.open()
    assert await screen.page.get_attribute("html", "lang") == "vi"
    await citizen.tap("#lang")
    assert "What would you like to do?" in await screen.text()
    assert await screen.page.get_attribute("html", "lang") == "en"
    await citizen.start_filing("marital-status")
    await screen.wait_screen("identify-key")
    assert "Identify with your ID card" in await screen.text()
    await citizen.tap("#lang")
    assert "Xác thực bằng thẻ căn cước" in await screen.text()
