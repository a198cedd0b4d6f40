"""USB (UVC) webcams through Video4Linux2: driver ``v4l2``, for boards without a Pi camera.

V4L2 is reached with linuxpy (pure Python ioctls, no OpenCV or GStreamer: see
docs/camera.md for the choice).  The camera streams MJPEG only while a picture
is taken: a UVC camera left streaming costs USB bandwidth and CPU for nothing.
The first ``warmup_frames`` are dropped because webcams deliver dark, unfocused
frames while their auto-exposure settles.

``device`` may also name a regular file holding a recorded MJPEG stream
(concatenated JPEG frames, as ``v4l2-ctl --stream-to`` or ``ffmpeg -f mjpeg``
write them).  That stand-in goes through the same grab, warm-up, decode, crop
and encode code; only opening the video device differs.  The wire simulator
(:mod:`devices.sim.camera.v4l2`) and the tests use it, since CI has no camera.

Every ioctl and read happens on one worker thread per camera (the ``camera-io``
seam), bounded on the loop by ``capture_timeout_ms``.
"""

from __future__ import annotations

import asyncio
import errno
import functools
import stat
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Protocol, TypeVar

import msgspec

from devices.base import DeviceEnv, DeviceHost, DeviceState
from devices.errors import HardwareError, Offline
from devices.runtime.worker import Worker

from .frames import decode_jpeg, encode_picture, split_mjpeg
from .protocol import Camera, CameraSettings, Frame, Purpose, Resolution, Side

T = TypeVar("T")

#: errno values that mean the camera is not there (unplugged, not yet enumerated).
_GONE = {errno.ENOENT, errno.ENODEV, errno.ENXIO}


class V4l2Settings(CameraSettings, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """Settings of a V4L2 camera.

    Attributes:
        device: the video device; prefer the stable ``/dev/v4l/by-id/...`` link
            (or the udev name ``/dev/kiosk/camera``) over ``/dev/videoN``.
        capture_width: sensor mode width requested from the camera, in pixels.
        capture_height: sensor mode height requested, in pixels.
        warmup_frames: frames dropped before the one kept (auto-exposure settling).
        capture_timeout_ms: longest a capture may take, open to last byte, in ms.
        probe_ms: how often the camera's presence is checked, in ms.

    """

    device: str = "/dev/video0"
    capture_width: Side = 1920
    capture_height: Side = 1080
    warmup_frames: Annotated[int, msgspec.Meta(ge=0, le=60)] = 5
    capture_timeout_ms: Annotated[int, msgspec.Meta(ge=200, le=30_000)] = 5_000
    probe_ms: Annotated[int, msgspec.Meta(ge=100, le=60_000)] = 1_000


class FrameSource(Protocol):
    """Where MJPEG frames come from (blocking calls, run on the camera's thread)."""

    def probe(self) -> None:
        """Check the source is present and usable.

        Raises:
            OSError: not present (errno ENOENT/ENODEV) or failing.
            HardwareError: present but unusable.

        """

    def grab(self, size: Resolution, skip: int) -> bytes:
        """Return one MJPEG frame of about ``size``, after dropping ``skip`` frames."""


class VideoDevice:
    """A V4L2 capture device streaming MJPEG."""

    def __init__(self, path: str) -> None:
        self.path = path

    def probe(self) -> None:
        """Open the device and check it captures video (VIDIOC_QUERYCAP)."""
        from linuxpy.video.device import Capability, Device  # noqa: PLC0415 - Linux only

        with Device(self.path) as device:
            if device.info is None or Capability.VIDEO_CAPTURE not in device.info.capabilities:
                raise HardwareError(f"{self.path} is not a video capture device")

    def grab(self, size: Resolution, skip: int) -> bytes:
        """Stream MJPEG at ``size``, keep frame ``skip`` (0-based), stop streaming."""
        from linuxpy.video.device import Device, VideoCapture  # noqa: PLC0415 - Linux only

        with Device(self.path) as device:
            capture = VideoCapture(device)
            capture.set_format(size.width, size.height, "MJPG")
            with capture:
                for index, frame in enumerate(capture):
                    if index >= skip:
                        return bytes(frame.data)
        raise HardwareError(f"{self.path} stopped streaming before a frame arrived")


@functools.lru_cache(maxsize=4)
def _split_recording(path: str, mtime_ns: int, size: int) -> tuple[bytes, ...]:
    """The frames of a recording, read again only when it changed (its mtime or size).

    The camera probes every second; reading and splitting the whole file each time
    was 0.3 % of a core (docs/performance.md).
    """
    del mtime_ns, size  # part of the cache key only
    return tuple(split_mjpeg(Path(path).read_bytes()))


class RecordedStream:
    """A recorded MJPEG stream standing in for a camera (a regular file)."""

    def __init__(self, path: str) -> None:
        self.path = Path(path)

    def _frames(self) -> tuple[bytes, ...]:
        st = self.path.stat()
        frames = _split_recording(str(self.path), st.st_mtime_ns, st.st_size)
        if not frames:
            raise HardwareError(f"{self.path} holds no JPEG frame")
        return frames

    def probe(self) -> None:
        """Read the stream and check it holds at least one frame."""
        self._frames()

    def grab(self, size: Resolution, skip: int) -> bytes:  # noqa: ARG002 - a recording has one size
        """Return frame ``skip`` of the recording (its last frame if it is shorter)."""
        frames = self._frames()
        return frames[min(skip, len(frames) - 1)]


def open_source(path: str) -> FrameSource:
    """The source behind ``path``: a video device, or a recording in a regular file.

    Raises:
        OSError: ``path`` does not exist.

    """
    if stat.S_ISREG(Path(path).stat().st_mode):
        return RecordedStream(path)
    return VideoDevice(path)


class V4l2Camera(Camera[V4l2Settings]):
    """A UVC webcam (or a recorded stream standing in for one)."""

    Settings = V4l2Settings

    settings: V4l2Settings

    def __init__(
        self, device_id: str, host: DeviceHost, env: DeviceEnv, settings: V4l2Settings
    ) -> None:
        super().__init__(device_id, host, env, settings)
        self._io = Worker(f"camera-io-{device_id}")

    async def _on_io_thread(self, call: Callable[[], T]) -> T:
        return await self._io.call(self.settings.capture_timeout_ms / 1000, call)

    async def _probe(self) -> None:
        def probe() -> None:
            open_source(self.settings.device).probe()

        try:
            await self._on_io_thread(probe)
        except OSError as exc:
            if exc.errno in _GONE:
                raise Offline(f"camera {self.settings.device} is not present") from None
            raise HardwareError(f"camera {self.settings.device}: {exc.strerror}") from None
        except TimeoutError:
            raise HardwareError(f"camera {self.settings.device} does not answer") from None

    async def run(self) -> None:
        """Check the camera every ``probe_ms``; return to ``online`` when it works.

        Raises:
            Offline: the device is gone (the supervisor retries).
            HardwareError: it is present but does not work.

        """
        while True:
            await self._probe()
            if self.condition is not DeviceState.ONLINE:
                self.set_condition(DeviceState.ONLINE)
            await asyncio.sleep(self.settings.probe_ms / 1000)

    async def capture(self, purpose: Purpose, size: Resolution, quality: int) -> Frame:  # noqa: ARG002 - one camera frames every purpose
        """Stream, keep one frame after the warm-up, crop, scale and encode it.

        Raises:
            Offline: the device vanished.
            HardwareError: the capture failed, timed out after
                ``capture_timeout_ms``, or delivered an undecodable frame.

        """
        mode = Resolution(self.settings.capture_width, self.settings.capture_height)

        def grab_and_encode() -> Frame:
            data = open_source(self.settings.device).grab(mode, self.settings.warmup_frames)
            return encode_picture(decode_jpeg(data), size, quality)

        try:
            return await self._on_io_thread(grab_and_encode)
        except OSError as exc:
            if exc.errno in _GONE:
                self.set_condition(DeviceState.OFFLINE)
                raise Offline(f"camera {self.settings.device} is not present") from None
            raise HardwareError(f"camera {self.settings.device}: {exc.strerror}") from None
        except TimeoutError:
            raise HardwareError(
                f"camera {self.settings.device} delivered no frame within "
                f"{self.settings.capture_timeout_ms} ms",
            ) from None

    async def aclose(self) -> None:
        """Release the worker thread (a capture stuck in the kernel is abandoned)."""
        await self._io.aclose(0)
