"""What the citizen sees of a chip read the daemon could not fully vouch for (docs/api.md)."""

from __future__ import annotations

from tests.ui.citizen import Citizen
from tests.ui.conftest import KioskRig, Screen

#: The front QR code of the ``jp2Portrait`` specimen card (devices/sim/card_reader/specimen_cards.py):
#: its portrait is JPEG 2000 and EF.SOD does not vouch for its DG13.
JP2_CARD_QR = (
    "044187006543||Hoàng Thị Mai Anh|12091987|Nữ|"
    "9 Nguyễn Trãi, Phường 2, Thành phố Đồng Hới, Tỉnh Quảng Bình|18032024"
)


async def test_jpeg_2000_portrait_shown_and_unverified_dg13_marked(
    kiosk: KioskRig, screen: Screen
) -> None:
    citizen = Citizen(kiosk, screen)
    await citizen.open()
    await citizen.start_filing("birth-extract-copy")
    await screen.wait_screen("identify-key")
    await citizen.scan(JP2_CARD_QR, "identify-key")
    await screen.wait_screen("identify-expiry")
    assert "12/09/2027" in await citizen.page.inner_text("#expiry")
    await citizen.tap("#expiry-yes")
    await screen.wait_screen("identify-card")
    await citizen.sim("cardReader", "presentCard", {"card": "jp2Portrait"})
    await screen.wait_screen("identify-ok")
    portrait = citizen.page.locator("img.portrait")
    await portrait.wait_for()
    size = await portrait.evaluate(
        "img => img.decode().then(() => [img.naturalWidth, img.naturalHeight])"
    )
    assert size == [180, 240], size  # the chip's JPEG 2000 drawing, shown from displayJpeg
    await screen.shot("identify-jp2-unverified")
    item = citizen.page.locator("#read-issues li[data-subject='DG13'][data-status='unverified']")
    assert await item.inner_text() == "Thông tin cá nhân (DG13): chưa được xác thực"
    text = await screen.text()
    assert "Một phần thông tin trên chip chưa được xác thực:" in text
    assert "đã được xác thực." not in text
    # The unverified DG13 does not name the citizen: the MRZ (DG1, vouched for) does.
    assert await citizen.page.inner_text("h1") == "Xin chào, HOANG THI MAI ANH"
    await citizen.tap("#hello-ok")
    await screen.wait_screen("capture-face")
