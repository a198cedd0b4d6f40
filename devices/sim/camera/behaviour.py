"""Behavioural camera simulator: real JPEG pictures drawn in memory.

``idFront``/``idBack`` show the test citizen ID card, ``face`` a portrait and
``document`` a filled-in form (:mod:`devices.sim.camera.images`).  Pictures exist
only in memory and in the command result.
"""

from __future__ import annotations

import asyncio
from typing import Annotated, ClassVar

import msgspec

from devices.camera.protocol import Camera, CameraDetail, CameraSettings, Frame, Purpose, Resolution
from devices.sim.camera.images import synthetic_jpeg
from devices.sim.support.faults import Simulated


class SimCameraSettings(CameraSettings, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """Settings of the simulated camera.

    Attributes:
        capture_ms: simulated exposure and readout time per picture, in ms
            (drawing the picture takes its own real time on top).

    """

    capture_ms: Annotated[int, msgspec.Meta(ge=0, le=10_000)] = 150


class SimCamera(Simulated[SimCameraSettings, CameraDetail], Camera[SimCameraSettings]):
    """A camera that photographs a synthetic card, face or document."""

    Settings = SimCameraSettings
    polled: ClassVar[bool] = False  # a camera is read for a picture only

    settings: SimCameraSettings

    async def capture(self, purpose: Purpose, size: Resolution, quality: int) -> Frame:
        """Take ``capture_ms``, then draw and encode the picture.

        Raises:
            HardwareError: an injected ``hardwareError``/``jam``/``garbage`` fault.
            Offline: an injected ``disconnect``.

        """
        await self.check_faults()
        await asyncio.sleep(self.settings.capture_ms / 1000)
        # Drawing and JPEG encoding take 30 ms to ~1 s of CPU depending on size: off the loop.
        data = await asyncio.to_thread(
            synthetic_jpeg,
            purpose,
            size.width,
            size.height,
            quality,
        )
        return Frame(data=data, width=size.width, height=size.height)
