"""The ``camera`` device class: one JPEG picture per ``takePicture``.

The class holds what every driver shares: the picture size is resolved from
the request and the per-purpose defaults (one given side keeps the default's
aspect ratio), the driver captures, and the class enforces the size cap.

Pictures are identity data (ID card sides, a face): they go only into the
command result, never to events, state, logs or disk.
"""

from __future__ import annotations

import abc
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Annotated, ClassVar, TypeVar

import msgspec

from devices.base import CommandContext, Device, Message, Params, command
from devices.errors import HardwareError

#: Picture side bounds in pixels (4056 is the widest sensor mode of the Pi HQ camera).
MIN_SIDE = 160
MAX_SIDE = 4056

Side = Annotated[int, msgspec.Meta(ge=MIN_SIDE, le=MAX_SIDE)]
Quality = Annotated[int, msgspec.Meta(ge=10, le=95)]


class Purpose(StrEnum):
    """What the picture is of; drivers pick framing and defaults by it."""

    ID_FRONT = "idFront"
    ID_BACK = "idBack"
    FACE = "face"
    DOCUMENT = "document"


class TakePictureParams(Params):
    """``takePicture`` parameters.

    ``width``/``height`` in pixels (160..4056); when only one is given the
    other follows the purpose's default aspect ratio, when neither is given
    the purpose's default size is used.  ``quality``: JPEG quality 10..95.
    """

    purpose: Purpose
    width: Side | None = None
    height: Side | None = None
    quality: Quality = 85


class Picture(Message, kw_only=True):
    """Result of ``takePicture``.

    ``data``: the JPEG file; ``width``/``height``: its size in pixels;
    ``size``: ``len(data)`` in bytes.
    """

    mime: str = "image/jpeg"
    data: bytes
    width: int
    height: int
    size: int


class CameraDetail(Message):
    """State detail of a camera: none in API v1 (the state alone says it all)."""


class Resolution(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """A picture size in pixels."""

    width: Side
    height: Side


class CameraSettings(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """Settings every camera driver has.

    Attributes:
        max_image_bytes: largest JPEG a picture may be, in bytes; a bigger one
            fails with ``hardwareError`` rather than flood the broker.
        id_card: default size for ``idFront``/``idBack`` (ID-1 card, 85.6 x 54 mm).
        face: default size for ``face`` (portrait, 3:4).
        document: default size for ``document`` (A4 portrait at about 200 dpi).

    """

    max_image_bytes: Annotated[int, msgspec.Meta(ge=4_096, le=16_777_216)] = 3_000_000
    id_card: Resolution = Resolution(1280, 807)
    face: Resolution = Resolution(720, 960)
    document: Resolution = Resolution(1654, 2339)

    def default_for(self, purpose: Purpose) -> Resolution:
        """Return the default picture size for ``purpose``."""
        match purpose:
            case Purpose.ID_FRONT | Purpose.ID_BACK:
                return self.id_card
            case Purpose.FACE:
                return self.face
            case Purpose.DOCUMENT:
                return self.document


@dataclass(frozen=True, slots=True)
class Frame:
    """What a driver captured: JPEG bytes and their size in pixels."""

    data: bytes
    width: int
    height: int


def resolve_size(params: TakePictureParams, default: Resolution) -> Resolution:
    """Return the picture size for a request: as given, or filled in from ``default``.

    One given side scales the default's aspect ratio, clamped to the side bounds.
    """
    width, height = params.width, params.height
    if width is None and height is None:
        return default
    if width is None:
        assert height is not None
        width = round(height * default.width / default.height)
    elif height is None:
        height = round(width * default.height / default.width)
    return Resolution(min(max(width, MIN_SIDE), MAX_SIDE), min(max(height, MIN_SIDE), MAX_SIDE))


#: A camera driver's settings type (every one extends :class:`CameraSettings`).
CameraSettingsT_co = TypeVar("CameraSettingsT_co", bound=CameraSettings, covariant=True)


class Camera(Device[CameraSettingsT_co, CameraDetail]):
    """Base of camera drivers."""

    device_class: ClassVar[str] = "camera"
    events: ClassVar[dict[str, type[Message]]] = {}
    detail_type = CameraDetail

    def capabilities(self) -> Mapping[str, object]:
        """Purposes, default sizes (pixels) and the picture size cap (bytes)."""
        return {
            "purposes": [purpose.value for purpose in Purpose],
            "defaultSizes": {
                purpose.value: {
                    "width": self.settings.default_for(purpose).width,
                    "height": self.settings.default_for(purpose).height,
                }
                for purpose in Purpose
            },
            "maxImageBytes": self.settings.max_image_bytes,
        }

    @command("takePicture", TakePictureParams, Picture, 10_000, 30_000)
    async def take_picture(self, params: TakePictureParams, _ctx: CommandContext) -> Picture:
        """Capture one JPEG picture.

        Raises:
            HardwareError: the camera failed, or the JPEG is larger than
                ``max_image_bytes``.
            Offline: the camera is unreachable.

        """
        size = resolve_size(params, self.settings.default_for(params.purpose))
        frame = await self.capture(params.purpose, size, params.quality)
        if len(frame.data) > self.settings.max_image_bytes:
            raise HardwareError(
                f"picture of {len(frame.data)} bytes exceeds the cap of "
                f"{self.settings.max_image_bytes} bytes; lower the size or quality",
            )
        return Picture(
            data=frame.data,
            width=frame.width,
            height=frame.height,
            size=len(frame.data),
        )

    async def safe_state(self) -> None:
        """Cameras hold nothing that must be made safe."""

    @abc.abstractmethod
    async def capture(self, purpose: Purpose, size: Resolution, quality: int) -> Frame:
        """Capture one picture as JPEG at ``size`` (or the nearest the sensor offers).

        Never writes the picture anywhere.  Raises :class:`HardwareError` or
        :class:`Offline`; the daemon's deadline bounds the wait.
        """
