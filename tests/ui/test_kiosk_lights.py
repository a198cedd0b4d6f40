"""The reference UI switches the guide lights on, as the simulated world sees them.

``kioskd run --sim`` wires the scanner's light as an RGB light and the others as
single-colour lights (daemon/sim.toml); the GPIO wire simulator reads each light
back from its PWM lines and shows it on ``sim/lights/out/light``.  A colour sent to
a single-colour light is refused (unsupportedCommand), so the page must send one
only where ``capabilities.positionColors`` lists it.
"""

from __future__ import annotations

import asyncio
from typing import Any

from tests.contract.support import device_info, state
from tests.ui.citizen import CARD_QR, Citizen
from tests.ui.conftest import KioskRig, Screen


async def _seen(lights: asyncio.Queue[Any], position: str, timeout: float = 5.0) -> dict[str, Any]:
    """The next light ``position`` shows that is not ``off``."""
    async with asyncio.timeout(timeout):
        while True:
            shown: dict[str, Any] = (await lights.get()).payload
            if shown["position"] == position and shown["mode"] != "off":
                return shown


async def test_guide_lights_come_on_at_the_scanner_and_the_card_reader(
    kiosk: KioskRig, screen: Screen
) -> None:
    citizen = Citizen(kiosk, screen)
    world = kiosk.world
    caps = (await device_info(world, "lights"))["capabilities"]
    assert caps["positionColors"]["scanner"], "sim.toml wires the scanner's light as RGB"
    assert caps["positionColors"]["cardReader"] == [], "and the card reader's as one colour"

    async with world.subscription(f"{world.root}/sim/lights/out/light") as lights:
        await citizen.open()
        await citizen.start_filing("birth-extract-copy")
        await screen.wait_screen("identify-key")
        # RGB: flashes green.
        assert await _seen(lights, "scanner") == {
            "position": "scanner",
            "mode": "slowFlash",
            "color": "green",
        }
        await citizen.scan(CARD_QR, "identify-key")
        await screen.wait_screen("identify-expiry")
        await citizen.tap("#expiry-yes")
        await screen.wait_screen("identify-card")
        # Single colour: flashes in its own colour (before the fix: never on, unsupportedCommand).
        assert await _seen(lights, "cardReader") == {
            "position": "cardReader",
            "mode": "slowFlash",
            "color": None,
        }
        await screen.shot("identify-card-light-on")
    lit = await state(
        world, "lights", lambda s: s["detail"]["positions"]["cardReader"]["mode"] != "off"
    )
    assert lit["detail"]["positions"]["cardReader"] == {"mode": "slowFlash", "color": None}
    assert not [line for line in screen.console if "light" in line and "unsupported" in line]
