"""Raspberry Pi camera modules through picamera2: driver ``picamera2`` (the ``pi`` extra).

picamera2 only installs on Raspberry Pi OS (it comes from apt there), so it is
imported when the camera opens, not when this module loads: a config naming
this driver still validates on any machine.

One still configuration per purpose is created when the camera opens (ID card
sides and documents want the full field of view at their default size, a face
a portrait crop), and each picture switches to its purpose's configuration,
captures and switches back, which picamera2 does in one call.  Modules with
autofocus (Camera Module 3) run one autofocus cycle before each picture.

picamera2 is blocking: every call runs on the camera's one worker thread (the
``camera-io`` seam, a :class:`~devices.runtime.worker.Worker`), bounded on the
loop by ``capture_timeout_ms``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Annotated, Any, TypeVar

import msgspec

from devices.base import DeviceEnv, DeviceHost, DeviceState
from devices.errors import HardwareError
from devices.runtime.worker import Worker

from .frames import encode_picture
from .protocol import Camera, CameraSettings, Frame, Purpose, Resolution

T = TypeVar("T")

#: libcamera's ``AfModeEnum.Auto``: focus only when a cycle is triggered.
AF_MODE_AUTO = 1


class Picamera2Settings(CameraSettings, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """Settings of a Pi camera module.

    Attributes:
        camera_num: which camera, as libcamera numbers them (0 = the first CSI port).
        autofocus: run an autofocus cycle before each picture, when the module has one.
        capture_timeout_ms: longest a picture may take, focus included, in ms.

    """

    camera_num: Annotated[int, msgspec.Meta(ge=0, le=7)] = 0
    autofocus: bool = True
    capture_timeout_ms: Annotated[int, msgspec.Meta(ge=500, le=30_000)] = 8_000


class Picamera2Camera(Camera[Picamera2Settings]):
    """A CSI camera module."""

    Settings = Picamera2Settings

    settings: Picamera2Settings

    def __init__(
        self, device_id: str, host: DeviceHost, env: DeviceEnv, settings: Picamera2Settings
    ) -> None:
        super().__init__(device_id, host, env, settings)
        self._io = Worker(f"camera-io-{device_id}")
        self._camera: Any = None
        self._configs: dict[Purpose, Any] = {}
        self._has_autofocus = False
        self._failed = asyncio.Event()

    async def _on_io_thread(self, call: Callable[[], T]) -> T:
        return await self._io.call(self.settings.capture_timeout_ms / 1000, call)

    def _open(self) -> None:
        from picamera2 import Picamera2  # noqa: PLC0415 - only on a Pi (the `pi` extra)

        camera = Picamera2(self.settings.camera_num)
        try:
            self._configs = {
                purpose: camera.create_still_configuration(
                    main={"size": _size(self.settings.default_for(purpose)), "format": "RGB888"},
                )
                for purpose in Purpose
            }
            camera.configure(camera.create_preview_configuration())
            self._has_autofocus = "AfMode" in camera.camera_controls
            if self._has_autofocus and self.settings.autofocus:
                camera.set_controls({"AfMode": AF_MODE_AUTO})
            camera.start()
        except Exception:
            camera.close()
            raise
        self._camera = camera

    def _close(self) -> None:
        camera, self._camera = self._camera, None
        if camera is not None:
            camera.close()

    async def run(self) -> None:
        """Open the camera, then serve until a capture reports it broken.

        Raises:
            HardwareError: it cannot be opened or a capture failed (the
                supervisor closes and reopens it after a backoff).

        """
        await self._on_io_thread(self._close)
        try:
            await self._on_io_thread(self._open)
        except ImportError:
            raise HardwareError("picamera2 is not installed (the `pi` extra)") from None
        except TimeoutError:
            raise HardwareError("the camera did not open in time") from None
        except Exception as exc:  # noqa: BLE001 - libcamera raises bare RuntimeErrors
            raise HardwareError(f"cannot open camera {self.settings.camera_num}: {exc}") from None
        self._failed.clear()
        self.set_condition(DeviceState.ONLINE)
        await self._failed.wait()
        raise HardwareError("the camera failed during a capture")

    async def capture(self, purpose: Purpose, size: Resolution, quality: int) -> Frame:
        """Focus when it can, capture in ``purpose``'s configuration, crop, scale, encode.

        Raises:
            HardwareError: the camera is not open, failed, or took longer than
                ``capture_timeout_ms``.

        """
        camera = self._camera
        if camera is None:
            raise HardwareError("the camera is not open")
        config = self._configs[purpose]
        focus = self._has_autofocus and self.settings.autofocus

        def take() -> Frame:
            if focus:
                camera.autofocus_cycle()
            image = camera.switch_mode_and_capture_image(config, "main")
            return encode_picture(image, size, quality)

        try:
            return await self._on_io_thread(take)
        except TimeoutError:
            self._failed.set()
            raise HardwareError(
                f"no picture within {self.settings.capture_timeout_ms} ms"
            ) from None
        except Exception as exc:  # noqa: BLE001 - libcamera raises bare RuntimeErrors
            self._failed.set()
            raise HardwareError(f"capture failed: {exc}") from None

    async def aclose(self) -> None:
        """Close the camera and release the worker thread."""
        await self._io.call(None, self._close)
        await self._io.aclose(0)


def _size(resolution: Resolution) -> tuple[int, int]:
    return (resolution.width, resolution.height)
