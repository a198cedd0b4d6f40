"""Camera class and the behavioural camera simulator (real in-memory JPEGs)."""

from __future__ import annotations

import io
from pathlib import Path

import msgspec
import pytest
import zxingcpp
from PIL import Image

from devices.base import DeviceState
from devices.camera.protocol import (
    Camera,
    CameraDetail,
    Picture,
    Purpose,
    Resolution,
    TakePictureParams,
    resolve_size,
)
from devices.errors import CompletionCode, HardwareError, Offline, completion_code
from devices.sim.camera import images
from devices.sim.camera.behaviour import SimCamera, SimCameraSettings
from devices.sim.support.faults import FaultKind, FaultParams
from tests.support import RecordingHost, build, ctx, running


def camera(tmp_path: Path, host: RecordingHost, **settings: object) -> SimCamera:
    settings.setdefault("capture_ms", 0)
    device = build("camera", "sim", tmp_path, host, **settings)
    assert isinstance(device, SimCamera)
    return device


def decode(picture: Picture) -> Image.Image:
    image = Image.open(io.BytesIO(picture.data))
    image.load()
    return image


# ---------------------------------------------------------------- wire types and sizes


def test_params_bounds() -> None:
    ok = msgspec.convert({"requestId": "r", "purpose": "face"}, TakePictureParams)
    assert ok.quality == 85
    assert ok.width is None
    assert ok.height is None
    for bad in (
        {"purpose": "face", "width": 159},
        {"purpose": "face", "height": 4057},
        {"purpose": "face", "quality": 9},
        {"purpose": "face", "quality": 96},
        {"purpose": "selfie"},
    ):
        with pytest.raises(msgspec.ValidationError):
            msgspec.convert(bad, TakePictureParams)
    edge = msgspec.convert(
        {"purpose": "idFront", "width": 160, "height": 4056, "quality": 95},
        TakePictureParams,
    )
    assert (edge.width, edge.height, edge.quality) == (160, 4056, 95)


def test_result_and_detail_encode_for_the_wire() -> None:
    picture = Picture(data=b"\xff\xd8", width=2, height=1, size=2)
    assert msgspec.json.decode(msgspec.json.encode(picture)) == {
        "mime": "image/jpeg",
        "data": "/9g=",
        "width": 2,
        "height": 1,
        "size": 2,
    }
    assert msgspec.json.encode(CameraDetail()) == b"{}"
    assert set(Camera.commands) == {"takePicture"}
    assert Camera.events == {}


def test_size_resolution_keeps_the_default_aspect_ratio() -> None:
    default = Resolution(1280, 807)
    assert resolve_size(TakePictureParams(purpose=Purpose.ID_FRONT), default) == default
    assert resolve_size(TakePictureParams(purpose=Purpose.ID_FRONT, width=640), default) == (
        Resolution(640, 404)
    )
    assert resolve_size(TakePictureParams(purpose=Purpose.ID_FRONT, height=404), default) == (
        Resolution(641, 404)
    )
    both = TakePictureParams(purpose=Purpose.ID_FRONT, width=300, height=900)
    assert resolve_size(both, default) == Resolution(300, 900)
    # A derived side is clamped into the bounds.
    narrow = TakePictureParams(purpose=Purpose.DOCUMENT, width=160)
    assert resolve_size(narrow, Resolution(1654, 2339)) == Resolution(160, 226)
    tall = TakePictureParams(purpose=Purpose.FACE, height=160)
    assert resolve_size(tall, Resolution(3000, 160)) == Resolution(3000, 160)
    wide = TakePictureParams(purpose=Purpose.FACE, height=4000)
    assert resolve_size(wide, Resolution(4000, 1000)) == Resolution(4056, 4000)


def test_settings_are_validated() -> None:
    with pytest.raises(msgspec.ValidationError):
        msgspec.convert({"max_image_bytes": 10}, SimCameraSettings)
    with pytest.raises(msgspec.ValidationError):
        msgspec.convert({"face": {"width": 100, "height": 100}}, SimCameraSettings)
    with pytest.raises(msgspec.ValidationError):
        msgspec.convert({"flash": True}, SimCameraSettings)
    custom = msgspec.convert({"face": {"width": 480, "height": 640}}, SimCameraSettings)
    assert custom.default_for(Purpose.FACE) == Resolution(480, 640)


def test_mrz_of_the_test_card_has_valid_check_digits() -> None:
    line1, line2, line3 = images.mrz_lines()
    assert all(len(line) == 30 for line in (line1, line2, line3))
    assert line1.startswith("IDVNM099000123")
    assert images._mrz_check_digit(line1[5:14]) == line1[14]
    assert line1[15:27] == "079099000123"
    assert line2[:6] == "900115"
    assert images._mrz_check_digit(line2[:6]) == line2[6]
    assert line2[7] == "M"
    assert line2[8:14] == "300115"
    assert images._mrz_check_digit(line2[8:14]) == line2[14]
    assert line2[15:18] == "VNM"
    assert line3.startswith("NGUYEN<<VAN<THU<")
    # ICAO 9303 worked example: document number L898902C3 has check digit 6.
    assert images._mrz_check_digit("L898902C3") == "6"


# ---------------------------------------------------------------- the simulator


@pytest.mark.parametrize(
    ("purpose", "size"),
    [
        (Purpose.ID_FRONT, (1280, 807)),
        (Purpose.ID_BACK, (1280, 807)),
        (Purpose.FACE, (720, 960)),
        (Purpose.DOCUMENT, (1654, 2339)),
    ],
)
async def test_every_purpose_gives_a_real_jpeg_of_the_default_size(
    tmp_path: Path,
    purpose: Purpose,
    size: tuple[int, int],
) -> None:
    host = RecordingHost()
    device = camera(tmp_path, host)
    async with running(device, host):
        picture = await device.take_picture(TakePictureParams(purpose=purpose), ctx())
        image = decode(picture)
        assert image.format == "JPEG"
        assert image.mode == "RGB"
        assert image.size == size == (picture.width, picture.height)
        assert picture.mime == "image/jpeg"
        assert picture.size == len(picture.data)
        # A drawing, not a flat fill: plenty of distinct tones.
        assert len(image.convert("L").getcolors(256) or []) > 100
        assert device.state is DeviceState.ONLINE
    # Identity pictures never leave the result: no event, output or file.
    assert host.events == []
    assert host.outputs == []
    assert not any((tmp_path / "state").iterdir())
    assert not any((tmp_path / "run").iterdir())


async def test_id_front_shows_the_test_identity(tmp_path: Path) -> None:
    host = RecordingHost()
    device = camera(tmp_path, host)
    async with running(device, host):
        picture = await device.take_picture(TakePictureParams(purpose=Purpose.ID_FRONT), ctx())
    codes = [r.text for r in zxingcpp.read_barcodes(decode(picture).convert("L"))]
    assert len(codes) == 1
    assert codes[0].startswith("079099000123||Nguyễn Văn Thử|15011990|Nam|")


async def test_requested_size_and_quality_are_honoured(tmp_path: Path) -> None:
    host = RecordingHost()
    device = camera(tmp_path, host)
    async with running(device, host):
        params = TakePictureParams(purpose=Purpose.DOCUMENT, width=400, height=566, quality=95)
        fine = await device.take_picture(params, ctx())
        coarse = await device.take_picture(msgspec.structs.replace(params, quality=20), ctx())
        assert decode(fine).size == decode(coarse).size == (400, 566)
        assert coarse.size < fine.size * 0.6
        only_width = await device.take_picture(
            TakePictureParams(purpose=Purpose.FACE, width=360),
            ctx(),
        )
        assert decode(only_width).size == (360, 480)
        smallest = await device.take_picture(
            TakePictureParams(purpose=Purpose.ID_BACK, width=160, height=160),
            ctx(),
        )
        assert decode(smallest).size == (160, 160)


async def test_picture_over_the_size_cap_is_a_hardware_error(tmp_path: Path) -> None:
    host = RecordingHost()
    device = camera(tmp_path, host, max_image_bytes=20_000)
    async with running(device, host):
        small = TakePictureParams(purpose=Purpose.FACE, width=200, height=266, quality=50)
        assert (await device.take_picture(small, ctx())).size <= 20_000
        with pytest.raises(HardwareError, match="exceeds the cap of 20000 bytes") as raised:
            await device.take_picture(TakePictureParams(purpose=Purpose.DOCUMENT), ctx())
        assert completion_code(raised.value) is CompletionCode.HARDWARE_ERROR
        assert device.capabilities()["maxImageBytes"] == 20_000


async def test_faults(tmp_path: Path) -> None:
    host = RecordingHost()
    device = camera(tmp_path, host)
    params = TakePictureParams(purpose=Purpose.FACE, width=160, height=213)
    async with running(device, host):
        await device.sim_fault(FaultParams(kind=FaultKind.HARDWARE_ERROR))
        assert device.state is DeviceState.HARDWARE_ERROR
        with pytest.raises(HardwareError):
            await device.take_picture(params, ctx())
        await device.sim_fault(FaultParams(kind=FaultKind.GARBAGE))
        with pytest.raises(HardwareError):
            await device.take_picture(params, ctx())
        await device.sim_fault(FaultParams(kind=FaultKind.CLEAR))  # garbage lasts until clear
        await device.take_picture(params, ctx())
        await device.sim_fault(FaultParams(kind=FaultKind.DISCONNECT))
        await host.wait_for(lambda: device.state is DeviceState.OFFLINE)
        with pytest.raises(Offline):
            await device.take_picture(params, ctx())
        await device.sim_fault(FaultParams(kind=FaultKind.CLEAR))
        await host.wait_for(lambda: device.state is DeviceState.ONLINE)
        assert (await device.take_picture(params, ctx())).width == 160
        await device.safe_state()
