"""Wire simulator of a UVC webcam: a recorded MJPEG stream the real ``v4l2`` driver reads.

The recording holds two dark warm-up frames, as a webcam delivers while its
auto-exposure settles, then the scene in front of the kiosk camera (the test
citizen's face).  It lives in the daemon's runtime directory, only for as long as
the simulator runs; it shows the synthetic test identity, never a real one.

Faults act on the recording, so they reach the driver through its own code:
``disconnect`` removes it (the device is gone), ``hardwareError``/``jam`` replace
it with bytes that hold no frame, ``garbage`` with a frame that does not decode.
``slow`` is not offered: a recording cannot be slowed from outside.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
from pathlib import Path
from typing import ClassVar

import msgspec
from PIL import Image

from devices.base import DeviceEnv, DeviceHost, NoResult
from devices.camera.frames import EOI, SOI
from devices.camera.protocol import Purpose
from devices.camera.v4l2 import V4l2Settings
from devices.errors import Unsupported
from devices.sim.camera.images import synthetic_jpeg
from devices.sim.support.faults import FAULT_ACTION, FaultKind, FaultParams
from devices.sim.support.wire import WireSimulator

#: Size of the recorded frames, in pixels (a 4:3 webcam mode).
SCENE_SIZE = (960, 720)
_WARMUP_FRAMES = 2


def _recording() -> bytes:
    dark = io.BytesIO()
    Image.new("RGB", SCENE_SIZE, (6, 6, 8)).save(dark, "JPEG", quality=70)
    scene = synthetic_jpeg(Purpose.FACE, *SCENE_SIZE, quality=85)
    return dark.getvalue() * _WARMUP_FRAMES + scene


class V4l2CameraSimulator(WireSimulator):
    """A webcam as a recording in ``{runtime_dir}/{device}.mjpeg``."""

    device_class: ClassVar[str] = "camera"

    def __init__(self, device_id: str, host: DeviceHost, env: DeviceEnv) -> None:
        super().__init__(device_id, host, env)
        self.path = env.runtime_dir / f"{device_id}.mjpeg"
        self._recording = b""

    def driver_settings(self, settings: msgspec.Struct) -> msgspec.Struct:
        """Point the driver at the recording, and probe it often so faults show quickly."""
        assert isinstance(settings, V4l2Settings)
        return msgspec.structs.replace(settings, device=str(self.path), probe_ms=200)

    async def start(self) -> None:
        """Record the stream (drawing takes ~50 ms: off the loop) and put it in place."""
        self._recording = await asyncio.to_thread(_recording)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        await asyncio.to_thread(_write, self.path, self._recording)

    async def aclose(self) -> None:
        """Remove the recording."""
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()

    @FAULT_ACTION
    async def sim_fault(self, params: FaultParams) -> NoResult:
        """Apply the ``fault`` action to the recording.

        Raises:
            Unsupported: ``slow`` and ``unresponsive``, which a recording cannot show.

        """
        match params.kind:
            case FaultKind.SLOW | FaultKind.UNRESPONSIVE:
                raise Unsupported(f"a recorded webcam stream cannot show {params.kind}")
            case FaultKind.DISCONNECT:
                with contextlib.suppress(FileNotFoundError):
                    self.path.unlink()
                return NoResult()
            case FaultKind.HARDWARE_ERROR | FaultKind.JAM:
                content = b"\x00\x01 no frame here \xfe" * 64
            case FaultKind.GARBAGE:
                content = SOI + b"\x13\x37 not a JPEG body" * 64 + EOI
            case FaultKind.CLEAR:
                content = self._recording
        await asyncio.to_thread(_write, self.path, content)
        return NoResult()


def _write(path: Path, content: bytes) -> None:
    """Replace ``path`` atomically, so the driver never reads a half-written stream."""
    partial = path.with_suffix(".partial")
    partial.write_bytes(content)
    partial.replace(path)
