"""camera: ``takePicture`` of a face returns a JPEG of the described size."""

from __future__ import annotations

import io
from typing import Any

import pytest
from PIL import Image

from hil.rig import Rig
from hil.wire import ok
from tests.uiclient import UiClient


async def test_take_face_picture(
    rig: Rig, ui: UiClient, described: dict[str, dict[str, Any]]
) -> None:
    camera = rig.device("camera")
    capabilities = described[camera.id]["capabilities"]
    if "face" not in capabilities.get("purposes", []):
        pytest.skip(f"{camera.id} does not take face pictures")
    picture = ok(await ui.device(camera.id, "takePicture", {"purpose": "face"}, timeout=15))
    data = picture["data"]
    assert picture["mime"] == "image/jpeg"
    assert data.startswith(b"\xff\xd8"), "a JPEG"
    assert picture["size"] == len(data)
    assert len(data) <= capabilities["maxImageBytes"]
    want = capabilities["defaultSizes"]["face"]
    assert (picture["width"], picture["height"]) == (want["width"], want["height"]), picture
    with Image.open(io.BytesIO(data)) as image:
        assert image.format == "JPEG"
        assert image.size == (picture["width"], picture["height"])
