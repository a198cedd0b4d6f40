"""A citizen at the kiosk: taps on the page, and acts on the simulated devices through the contract.

Also the demo office's fee and the receipt a paid filing prints, as the payment tests check it.
"""

from __future__ import annotations

import asyncio
import io
import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from PIL import Image
from playwright.async_api import TimeoutError as PlaywrightTimeout

from devices.printer import slip
from tests.ui.conftest import KioskRig, Screen

#: What the default test card's front QR code says (wire-api-v1.md's test identity).
CARD_QR = (
    "079099000123|025123456|Nguyễn Văn Thử|15011990|Nam|"
    "123 Hậu Giang, Phường 6, Quận 6, Thành phố Hồ Chí Minh|20042021"
)
NAME = "Nguyễn Văn Thử"
ID_NUMBER = "079099000123"
#: The pictures the UI takes, as decoded in the page (px): ID sides readable (1280 across the
#: card's 85.6 mm, ~380 dpi; issue 19: they were 800 px to dodge the websockets crawl), a face
#: at the camera's 720 x 960 portrait.
PICTURE_SIZES = {"face": (720, 960), "idFront": (1280, 807), "idBack": (1280, 807)}
#: The size of the check screen's picture once decoded (falsy until then).
SHOWN_SIZE = """(screen) => {
  const img = document.querySelector(`main[data-screen='${screen}'] img.photo`);
  return img && img.complete && img.naturalWidth > 0 && [img.naturalWidth, img.naturalHeight];
}"""
OFFICE = json.loads(
    (Path(__file__).parents[2] / "daemon/ui/web/data/office-demo.json").read_text("utf-8")
)
#: The demo procedure the payment tests file (fee 8 000 đ).
PROCEDURE = next(p for p in OFFICE["procedures"] if p["id"] == "birth-extract-copy")


def local_now() -> datetime:
    """The kiosk's wall clock as the page stamps a receipt (local time, no zone)."""
    return datetime.now(UTC).astimezone().replace(tzinfo=None)


def paid_stamps(before: datetime, after: datetime) -> list[str]:
    """Every whole second from ``before`` to just past ``after``, as a receipt's ``paidAt``."""
    seconds = range(int((after - before).total_seconds()) + 2)
    return [(before + timedelta(seconds=n)).isoformat() for n in seconds]


def printed_as(receipt: dict[str, Any], fields: dict[str, Any], stamps: list[str]) -> bool:
    """Whether the saved ``receipt`` is, pixel for pixel, the slip of ``fields`` at one of ``stamps``."""
    printed = Image.open(io.BytesIO(receipt["png"])).convert("1").tobytes()
    width = receipt["widthDots"]
    return any(
        slip.render_slip("receipt", {**fields, "paidAt": at}, width).tobytes() == printed
        for at in stamps
    )


@dataclass
class Citizen:
    kiosk: KioskRig
    screen: Screen

    @property
    def page(self) -> Any:
        return self.screen.page

    async def open(self, query: str = "") -> None:
        await self.page.goto(self.kiosk.url + query)
        await self.screen.wait_screen("idle")

    async def tap(self, selector: str) -> None:
        await self.page.click(selector)

    async def sim(
        self, device: str, action: str, params: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        return await self.kiosk.world.sim(device, action, params or {})

    async def sim_until(
        self, device: str, action: str, params: dict[str, Any] | None = None, timeout: float = 10.0
    ) -> None:
        """Repeat a sim action until the device takes it (a shutter not yet open, a door still locked)."""
        world = self.kiosk.world
        async with asyncio.timeout(timeout):
            while True:
                done = await world.call(f"{world.root}/sim/{device}/{action}", params or {})
                if done["completionCode"] == "success":
                    return
                await asyncio.sleep(0.1)

    async def scan(self, text: str, leaves: str, timeout: float = 10.0) -> None:
        """Hold a code to the scanner once the page reads, until the screen ``leaves`` changes.

        A code nobody reads is dropped (the scanner's contract), so it is shown again
        if the page's read was not running yet.
        """
        await self.page.wait_for_selector("main[data-scanner='reading']", timeout=timeout * 1000)
        async with asyncio.timeout(timeout):
            while True:
                await self.sim("scanner", "scan", {"text": text})
                try:
                    await self.page.wait_for_selector(
                        f"main:not([data-screen='{leaves}'])", timeout=1500
                    )
                except PlaywrightTimeout:
                    continue
                return

    async def identify(self) -> None:
        """From the identify screen to a verified card (QR scanned, expiry confirmed, card read)."""
        await self.screen.wait_screen("identify-key")
        await self.screen.shot("identify-key")
        await self.scan(CARD_QR, "identify-key")
        await self.screen.wait_screen("identify-expiry")
        assert "15/01/2030" in await self.page.inner_text("#expiry")
        await self.tap("#expiry-yes")
        await self.screen.wait_screen("identify-card")
        await self.sim("cardReader", "presentCard")
        await self.screen.wait_screen("identify-ok")
        assert NAME in await self.page.inner_text("h1")
        await self.screen.shot("identify-ok")
        await self.tap("#hello-ok")

    async def photos(self) -> None:
        for purpose, size in PICTURE_SIZES.items():
            await self.screen.wait_screen(f"capture-{purpose}")
            await self.tap("#take")
            await self.screen.wait_screen(f"capture-{purpose}-check")
            shown = await self.page.wait_for_function(SHOWN_SIZE, arg=f"capture-{purpose}-check")
            assert tuple(await shown.json_value()) == size, purpose
            await self.tap("#use-picture")

    async def documents(self) -> None:
        await self.screen.wait_screen("documents")
        await self.sim_until("documentSlot", "insertDocument")
        await self.screen.wait_screen("documents-more")
        await self.tap("#docs-done")

    async def coins(self, *values: int) -> None:
        await self.screen.wait_screen("payment")
        for value in values:
            await self.sim("coinAcceptor", "insertCoin", {"value": value})

    async def note(self, value: int, state: str) -> str:
        """Feed a note and wait (10 s) until the screen lists it as ``state``; the line shown."""
        await self.sim("cashAcceptor", "insertNote", {"value": value})
        item = self.page.locator(f"#pay-notes li[data-value='{value}'][data-state='{state}']")
        await item.last.wait_for(timeout=10_000)
        return str(await item.last.inner_text())

    async def receipt_fields(self, transaction_id: str, method: str) -> dict[str, Any]:
        """On the done screen of a fee paid in full: what its receipt must say but ``paidAt``.

        Asserts first that the page logged no error.
        """
        assert not [line for line in self.screen.console if line.startswith(("error", "pageerror"))]
        code = (await self.page.inner_text("#dossier-code")).split(":")[-1].strip()
        return {
            "office": OFFICE["office"]["vi"],
            "dossierCode": code,
            "procedure": PROCEDURE["name"]["vi"],
            "payerName": NAME,
            "amountDue": PROCEDURE["fee"],
            "amountPaid": PROCEDURE["fee"],
            "transactionId": transaction_id,
            "paymentMethod": method,
        }

    async def paid_shows(self, text: str, timeout: float = 5.0) -> None:
        await self.page.wait_for_selector(f"#pay-paid:text-is('{text}')", timeout=timeout * 1000)

    async def start_filing(self, procedure: str) -> None:
        await self.tap("#start-submit")
        await self.screen.wait_screen("choose")
        await self.tap(f"#proc-{procedure}")

    async def to_payment(self, procedure: str) -> None:
        """Tap through a filing up to the payment screen."""
        await self.start_filing(procedure)
        await self.identify()
        await self.photos()
        await self.documents()
        await self.screen.wait_screen("payment")

    async def wait_state(self, device: str, want: str, timeout: float = 15.0) -> None:
        """Wait until the device's retained state is ``want`` (a driver reconnects at its own pace)."""
        world = self.kiosk.world
        async with world.subscription(f"{world.root}/dev/{device}/state") as queue:
            async with asyncio.timeout(timeout):
                while (await queue.get()).payload["state"] != want:
                    pass
