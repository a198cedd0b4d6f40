"""Real camera drivers: V4L2 through a recorded MJPEG stream, picamera2 through a stand-in.

CI has no /dev/video* and no Pi camera.  The V4L2 driver reads a recording with
the same grab, warm-up, decode, crop and encode code as a device (only the
device open differs); the picamera2 driver runs against a stand-in module that
implements the part of the Picamera2 API it uses.
"""

from __future__ import annotations

import io
import sys
import types
from pathlib import Path
from typing import Any, ClassVar

import pytest
from PIL import Image

from devices.base import DeviceState
from devices.camera.frames import crop_to_aspect, encode_picture, split_mjpeg
from devices.camera.picamera2 import AF_MODE_AUTO, Picamera2Camera
from devices.camera.protocol import Purpose, Resolution, TakePictureParams
from devices.camera.v4l2 import V4l2Camera
from devices.errors import HardwareError
from tests.support import RecordingHost, build, ctx, running

RED, GREEN, BLUE = (220, 20, 20), (20, 200, 20), (20, 20, 220)


def jpeg(color: tuple[int, int, int], size: tuple[int, int] = (320, 240)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, color).save(out, "JPEG", quality=90)
    return out.getvalue()


def centre(data: bytes) -> tuple[int, ...]:
    image = Image.open(io.BytesIO(data)).convert("RGB")
    pixel = image.getpixel((image.width // 2, image.height // 2))
    assert isinstance(pixel, tuple)
    return pixel


def close_to(pixel: tuple[int, ...], color: tuple[int, int, int]) -> bool:
    return all(abs(a - b) < 30 for a, b in zip(pixel, color, strict=True))


def test_split_mjpeg_skips_bytes_between_and_after_frames() -> None:
    frames = [jpeg(RED), jpeg(GREEN)]
    stream = b"junk" + frames[0] + b"\x00\x00" + frames[1] + b"\xff\xd8truncated"
    assert split_mjpeg(stream) == frames


def test_crop_keeps_the_centre_and_never_stretches() -> None:
    image = Image.new("RGB", (400, 100), RED)
    image.paste(BLUE, (150, 0, 250, 100))
    square = crop_to_aspect(image, Resolution(200, 200))
    assert square.size == (100, 100)
    assert close_to(square.getpixel((50, 50)), BLUE)  # type: ignore[arg-type]
    frame = encode_picture(image, Resolution(300, 200), 80)
    assert Image.open(io.BytesIO(frame.data)).size == (300, 200)


def v4l2(tmp_path: Path, host: RecordingHost, **settings: Any) -> V4l2Camera:
    device = build("camera", "v4l2", tmp_path, host, **{"probe_ms": 100, **settings})
    assert isinstance(device, V4l2Camera)
    return device


async def test_v4l2_drops_warmup_frames_then_crops_and_scales(tmp_path: Path) -> None:
    stream = tmp_path / "cam.mjpeg"
    stream.write_bytes(jpeg(RED) + jpeg(GREEN) + jpeg(BLUE))
    host = RecordingHost()
    device = v4l2(tmp_path, host, device=str(stream), warmup_frames=1)
    async with running(device, host):
        picture = await device.take_picture(
            TakePictureParams(purpose=Purpose.FACE, width=300, height=400), ctx()
        )
    assert (picture.width, picture.height) == (300, 400)
    assert Image.open(io.BytesIO(picture.data)).size == (300, 400)
    assert close_to(centre(picture.data), GREEN), "frame 1 is kept after one warm-up frame"


async def test_v4l2_unplug_goes_offline_and_replug_comes_back(tmp_path: Path) -> None:
    stream = tmp_path / "cam.mjpeg"
    stream.write_bytes(jpeg(RED))
    host = RecordingHost()
    device = v4l2(tmp_path, host, device=str(stream))
    async with running(device, host):
        stream.rename(tmp_path / "unplugged")
        await host.wait_for(lambda: device.state is DeviceState.OFFLINE, 3)
        (tmp_path / "unplugged").rename(stream)
        await host.wait_for(lambda: device.state is DeviceState.ONLINE, 3)


async def test_v4l2_undecodable_frame_is_a_hardware_error(tmp_path: Path) -> None:
    stream = tmp_path / "cam.mjpeg"
    stream.write_bytes(jpeg(RED))
    host = RecordingHost()
    device = v4l2(tmp_path, host, device=str(stream), warmup_frames=0)
    async with running(device, host):
        stream.write_bytes(b"\xff\xd8 broken \xff\xd9")
        with pytest.raises(HardwareError, match="undecodable"):
            await device.take_picture(TakePictureParams(purpose=Purpose.ID_FRONT), ctx())


class StandInPicamera2:
    """The part of picamera2.Picamera2 the driver uses, recording every call."""

    instances: ClassVar[list[StandInPicamera2]] = []
    fail_capture: ClassVar[bool] = False

    def __init__(self, camera_num: int, *, autofocus: bool = True) -> None:
        self.camera_num = camera_num
        self.camera_controls: dict[str, Any] = {"AfMode": (0, 2, 0)} if autofocus else {}
        self.calls: list[str] = []
        self.controls: dict[str, Any] = {}
        self.started = False
        self.closed = False
        StandInPicamera2.instances.append(self)

    def create_still_configuration(self, main: dict[str, Any]) -> dict[str, Any]:
        return {"kind": "still", "main": main}

    def create_preview_configuration(self) -> dict[str, Any]:
        return {"kind": "preview"}

    def configure(self, config: dict[str, Any]) -> None:
        self.calls.append(f"configure {config['kind']}")

    def set_controls(self, controls: dict[str, Any]) -> None:
        self.controls.update(controls)

    def start(self) -> None:
        self.started = True

    def close(self) -> None:
        self.closed = True

    def autofocus_cycle(self) -> bool:
        self.calls.append("autofocus")
        return True

    def switch_mode_and_capture_image(self, config: dict[str, Any], name: str) -> Image.Image:
        assert name == "main"
        if self.fail_capture:
            msg = "Camera frontend has timed out!"
            raise RuntimeError(msg)
        self.calls.append(f"capture {config['main']['size']}")
        return Image.new("RGB", config["main"]["size"], GREEN)


@pytest.fixture
def picamera2_module(monkeypatch: pytest.MonkeyPatch) -> type[StandInPicamera2]:
    StandInPicamera2.instances = []
    StandInPicamera2.fail_capture = False
    module = types.ModuleType("picamera2")
    module.Picamera2 = StandInPicamera2  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "picamera2", module)
    return StandInPicamera2


async def test_picamera2_configures_each_purpose_and_focuses(
    tmp_path: Path, picamera2_module: type[StandInPicamera2]
) -> None:
    host = RecordingHost()
    device = build("camera", "picamera2", tmp_path, host, camera_num=1)
    assert isinstance(device, Picamera2Camera)
    async with running(device, host):
        [camera] = picamera2_module.instances
        assert camera.camera_num == 1
        assert camera.started
        assert camera.controls == {"AfMode": AF_MODE_AUTO}
        picture = await device.take_picture(
            TakePictureParams(purpose=Purpose.ID_FRONT, width=640), ctx()
        )
        face = await device.take_picture(TakePictureParams(purpose=Purpose.FACE), ctx())
    assert camera.calls == [
        "configure preview",
        "autofocus",
        "capture (1280, 807)",
        "autofocus",
        "capture (720, 960)",
    ]
    assert (picture.width, picture.height) == (640, round(640 * 807 / 1280))
    assert (face.width, face.height) == (720, 960)
    assert close_to(centre(face.data), GREEN)
    assert camera.closed, "aclose closes the camera"


async def test_picamera2_capture_failure_reopens_the_camera(
    tmp_path: Path, picamera2_module: type[StandInPicamera2]
) -> None:
    host = RecordingHost()
    device = build("camera", "picamera2", tmp_path, host, autofocus=False)
    async with running(device, host):
        picamera2_module.fail_capture = True
        with pytest.raises(HardwareError, match="timed out"):
            await device.take_picture(TakePictureParams(purpose=Purpose.FACE), ctx())
        await host.wait_for(lambda: device.state is DeviceState.HARDWARE_ERROR, 3)
        picamera2_module.fail_capture = False
        await host.wait_for(lambda: len(picamera2_module.instances) == 2, 5)
        await host.wait_for(lambda: device.state is DeviceState.ONLINE, 5)
        assert picamera2_module.instances[0].closed
        assert "autofocus" not in picamera2_module.instances[1].calls
        await device.take_picture(TakePictureParams(purpose=Purpose.FACE), ctx())


async def test_picamera2_missing_library_is_a_clear_hardware_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "picamera2", None)
    host = RecordingHost()
    device = build("camera", "picamera2", tmp_path, host)
    with pytest.raises(HardwareError, match="pi` extra"):
        await device.run()
    await device.aclose()
