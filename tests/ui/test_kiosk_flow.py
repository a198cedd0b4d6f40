"""The reference UI end to end: headless Chromium on ``kioskd run --sim``, the citizen played
through the contract's sim actions, assertions on what the screen shows."""

from __future__ import annotations

import asyncio
import io
import json
from typing import Any

import msgspec
import zxingcpp
from PIL import Image

from tests.ui.citizen import ID_NUMBER, NAME, Citizen
from tests.ui.conftest import KioskRig, Screen


async def _slips(kiosk: KioskRig) -> Any:
    return kiosk.world.subscription(f"{kiosk.world.root}/sim/printer/out/slip")


def _qr(png: bytes) -> str:
    image = Image.open(io.BytesIO(png)).convert("L")
    codes = zxingcpp.read_barcodes(image)
    assert codes, "no QR code on the slip"
    return codes[0].text


async def test_happy_path_files_a_dossier_and_leaves_no_identity_behind(
    kiosk: KioskRig, screen: Screen
) -> None:
    citizen = Citizen(kiosk, screen)
    world = kiosk.world
    async with world.subscription(f"{world.root}/sim/printer/out/slip") as slips:
        await citizen.open("?done=30")
        await screen.shot("idle")
        assert "Nộp hồ sơ" in await screen.text()
        await citizen.tap("#start-submit")
        await screen.wait_screen("choose")
        assert "8.000 đ" in await screen.text()
        await screen.shot("choose")
        await citizen.tap("#proc-birth-extract-copy")
        await citizen.identify()
        await citizen.photos()
        await citizen.documents()
        await citizen.coins(5000)
        due = await screen.page.inner_text("#pay-due")
        assert due == "8.000 đ"
        await citizen.paid_shows("5.000 đ")
        await citizen.sim("coinAcceptor", "insertCoin", {"value": 3000})  # not a coin of the table
        await screen.page.wait_for_selector("main[data-screen='payment'] .problem")
        await screen.shot("payment-rejected")
        assert "không được chấp nhận" in await screen.text()
        await citizen.sim("coinAcceptor", "insertCoin", {"value": 2000})
        await citizen.paid_shows("7.000 đ")
        await citizen.sim("coinAcceptor", "insertCoin", {"value": 1000})
        await screen.wait_screen("done", timeout=20)
        await screen.shot("done")
        shown = await screen.page.inner_text("#dossier-code")
        receipt = await asyncio.wait_for(slips.get(), 10)
        appointment = await asyncio.wait_for(slips.get(), 10)
    code = shown.split(":")[-1].strip()
    assert code.startswith("HS-")
    assert _qr(appointment.payload["png"]) == code
    assert receipt.payload["png"] != appointment.payload["png"]
    text = await screen.text()
    assert "Hoàn tất" in text
    assert "Đừng quên lấy lại thẻ CCCD" in text
    await citizen.sim("cardReader", "removeCard")
    await citizen.tap("#home")
    await screen.wait_screen("idle")

    # Privacy: the identity is nowhere but on the screen it was shown on.
    await _assert_no_identity(kiosk, screen)


async def _assert_no_identity(kiosk: KioskRig, screen: Screen) -> None:
    needles = [NAME, ID_NUMBER, "NGUYEN VAN THU", "NGUYEN<VAN<THU", ID_NUMBER[-9:]]
    storage = await screen.page.evaluate(
        """async () => ({
            local: JSON.stringify(Object.entries(localStorage)),
            session: JSON.stringify(Object.entries(sessionStorage)),
            cookies: document.cookie,
            idb: JSON.stringify(await indexedDB.databases()),
            caches: JSON.stringify(await caches.keys()),
        })"""
    )
    console = "\n".join(screen.console)
    assert not [line for line in screen.console if line.startswith(("error", "pageerror"))], console
    log = kiosk.log.read_text(encoding="utf-8", errors="replace")
    retained = await _retained(kiosk)
    for needle in needles:
        for where, text in [
            ("page storage", json.dumps(storage, ensure_ascii=False)),
            ("console", console),
            ("daemon log", log),
            ("retained topics", retained),
        ]:
            assert needle not in text, f"{needle!r} found in the {where}"


async def _retained(kiosk: KioskRig) -> str:
    """Every retained message of the board, decoded, as text."""
    from tests.uiclient import connect

    found: list[str] = []
    async with connect(kiosk.sim.port, kiosk.sim.board, "auditor") as auditor:
        async with auditor.subscription("kiosk/#") as queue:
            try:
                async with asyncio.timeout(1.5):
                    while True:
                        message = await queue.get()
                        if message.retain:
                            found.append(
                                f"{message.topic} {json.dumps(message.payload, ensure_ascii=False, default=str)}"
                            )
            except TimeoutError:
                pass
    assert any("/status" in line for line in found), "no retained status seen"
    return "\n".join(found) + msgspec.json.encode(found).decode()
