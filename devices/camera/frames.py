"""From what a sensor delivered to the picture a request asked for.

Every camera driver ends in :func:`encode_picture`: the captured image is
cropped to the requested aspect ratio around its centre (never stretched: a
stretched face or ID card is useless to an officer), scaled to the requested
size and encoded as JPEG at the requested quality.  It runs in a worker
thread: decoding and encoding a 5 MP frame takes a few hundred ms on a Pi.
"""

from __future__ import annotations

import io
from typing import TYPE_CHECKING

from devices.errors import HardwareError

from .protocol import Frame, Resolution

if TYPE_CHECKING:
    from PIL import Image

#: JPEG markers: start of image, end of image.
SOI = b"\xff\xd8"
EOI = b"\xff\xd9"


def split_mjpeg(stream: bytes) -> list[bytes]:
    """Split a recorded MJPEG stream (concatenated JPEG files) into its frames.

    A frame runs from an SOI marker to the next EOI marker; bytes outside any
    frame (garbage, a truncated tail) are skipped.
    """
    frames: list[bytes] = []
    start = stream.find(SOI)
    while start != -1:
        end = stream.find(EOI, start + 2)
        if end == -1:
            break
        frames.append(stream[start : end + 2])
        start = stream.find(SOI, end + 2)
    return frames


def crop_to_aspect(image: Image.Image, size: Resolution) -> Image.Image:
    """Crop ``image`` around its centre to the aspect ratio of ``size``."""
    width, height = image.size
    want = size.width / size.height
    if width / height > want:
        new_width = round(height * want)
        left = (width - new_width) // 2
        return image.crop((left, 0, left + new_width, height))
    new_height = round(width / want)
    top = (height - new_height) // 2
    return image.crop((0, top, width, top + new_height))


def encode_picture(image: Image.Image, size: Resolution, quality: int) -> Frame:
    """Crop, scale and JPEG-encode a captured image (blocking: call in a thread).

    ``quality`` is the JPEG quality 10..95.
    """
    from PIL import Image  # noqa: PLC0415 - Pillow loads with the first picture (~3 MiB)

    picture = crop_to_aspect(image.convert("RGB"), size).resize(
        (size.width, size.height), Image.Resampling.LANCZOS
    )
    out = io.BytesIO()
    picture.save(out, "JPEG", quality=quality, optimize=False)
    return Frame(data=out.getvalue(), width=size.width, height=size.height)


def decode_jpeg(data: bytes) -> Image.Image:
    """Decode one MJPEG frame (blocking).

    Raises:
        HardwareError: the camera delivered bytes that are not a complete JPEG.

    """
    from PIL import Image, UnidentifiedImageError  # noqa: PLC0415 - see encode_picture

    try:
        image = Image.open(io.BytesIO(data))
        image.load()
    except (UnidentifiedImageError, OSError, SyntaxError) as exc:
        raise HardwareError(f"camera delivered an undecodable frame: {exc}") from None
    return image
