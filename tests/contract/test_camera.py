"""camera contract: ``takePicture`` returns a JPEG of the requested size, for every purpose."""

from __future__ import annotations

import io

import pytest
from PIL import Image

from tests.contract.support import (
    check_description,
    device_info,
    events,
    failed,
    ok,
    state,
)
from tests.uiclient import UiClient

CONTRACT_CLASSES = ("camera",)
DEV = "camera"
PURPOSES = ("idFront", "idBack", "face", "document")


def jpeg(picture: dict) -> Image.Image:
    assert picture["mime"] == "image/jpeg"
    assert picture["size"] == len(picture["data"])
    image = Image.open(io.BytesIO(picture["data"]))
    assert image.format == "JPEG"
    image.load()
    return image


async def test_description_lists_the_contract(ui: UiClient, drivers: dict[str, str]) -> None:
    info = await check_description(ui, DEV, "camera", drivers["camera"], {"takePicture"}, set())
    assert set(info["capabilities"]["purposes"]) == set(PURPOSES)
    assert (await state(ui, DEV))["state"] == "online"


@pytest.mark.parametrize("purpose", PURPOSES)
async def test_take_picture_returns_a_jpeg_of_the_requested_size(
    ui: UiClient, purpose: str
) -> None:
    async with events(ui, DEV) as evt:
        picture = ok(
            await ui.device(
                DEV, "takePicture", {"purpose": purpose, "width": 400, "height": 300, "quality": 70}
            )
        )
        assert (picture["width"], picture["height"]) == (400, 300)
        assert jpeg(picture).size == (400, 300)
        assert await evt.none(0.05) == [], "pictures never go to events"


async def test_one_side_keeps_the_default_aspect_ratio(ui: UiClient) -> None:
    defaults = (await device_info(ui, DEV))["capabilities"]["defaultSizes"]
    face = defaults["face"]
    picture = ok(await ui.device(DEV, "takePicture", {"purpose": "face", "width": 300}))
    expected = round(300 * face["height"] / face["width"])
    assert (picture["width"], picture["height"]) == (300, expected)
    assert jpeg(picture).size == (300, expected)


async def test_default_size_per_purpose(ui: UiClient) -> None:
    defaults = (await device_info(ui, DEV))["capabilities"]["defaultSizes"]
    picture = ok(await ui.device(DEV, "takePicture", {"purpose": "idFront"}))
    size = (defaults["idFront"]["width"], defaults["idFront"]["height"])
    assert (picture["width"], picture["height"]) == size
    assert jpeg(picture).size == size


async def test_take_picture_validates(ui: UiClient) -> None:
    failed(await ui.device(DEV, "takePicture", {}), "invalidData")
    failed(await ui.device(DEV, "takePicture", {"purpose": "selfie"}), "invalidData")
    failed(await ui.device(DEV, "takePicture", {"purpose": "face", "width": 100}), "invalidData")
    failed(await ui.device(DEV, "takePicture", {"purpose": "face", "quality": 100}), "invalidData")


async def test_faulted_camera_fails_the_picture(ui: UiClient) -> None:
    await ui.sim(DEV, "fault", {"kind": "hardwareError"})
    await state(ui, DEV, lambda s: s["state"] == "hardwareError")
    failed(await ui.device(DEV, "takePicture", {"purpose": "face", "width": 300}), "hardwareError")
    await ui.sim(DEV, "fault", {"kind": "clear"})
    await state(ui, DEV, lambda s: s["state"] == "online")
    ok(await ui.device(DEV, "takePicture", {"purpose": "face", "width": 300}))
