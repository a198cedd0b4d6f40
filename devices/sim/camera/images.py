"""Synthetic camera pictures: a Vietnamese citizen ID card, a face, a document page.

Everything is drawn in memory with Pillow at the requested size and encoded as
JPEG with a little sensor noise, so picture sizes in bytes resemble a real
camera's.  Nothing is written to disk.  Drawing and encoding take tens of ms
(more at full sensor size): callers on the event loop run :func:`synthetic_jpeg`
in a thread.

The card shows the default simulated test identity of wire API v1
(Nguyễn Văn Thử, ID number 079099000123, born 1990-01-15, expiring 2030-01-15);
its back carries a TD1 machine-readable zone with correct ICAO 9303 check digits.
"""

from __future__ import annotations

import functools
import io
import math
from collections.abc import Callable
from dataclasses import dataclass

import qrcode
import qrcode.constants
from PIL import Image, ImageChops, ImageDraw, ImageFont

from devices.camera.protocol import Purpose
from devices.printer.slip import FONT_DIR

ID_NUMBER = "079099000123"
FULL_NAME = "Nguyễn Văn Thử"
DATE_OF_BIRTH = "1990-01-15"
DATE_OF_EXPIRY = "2030-01-15"
DATE_OF_ISSUE = "2021-01-15"
RESIDENCE = "Phường Bến Nghé, Quận 1, TP. Hồ Chí Minh"
ORIGIN = "Phường Bến Thành, Quận 1, TP. Hồ Chí Minh"

#: ID-1 card aspect ratio (85.60 x 53.98 mm).
_CARD_RATIO = 85.60 / 53.98
#: A4 portrait aspect ratio.
_PAGE_RATIO = 210 / 297
#: Standard deviation of the added sensor noise, in 8-bit levels.
_NOISE_SIGMA = 6.0

Color = tuple[int, int, int]
_INK: Color = (25, 25, 35)
_RED: Color = (200, 30, 35)
_SKIN: Color = (226, 186, 152)


def _mrz_check_digit(text: str) -> str:
    """ICAO 9303 check digit (weights 7, 3, 1; ``<`` = 0, ``A`` = 10)."""
    total = 0
    for index, char in enumerate(text):
        if char.isdigit():
            value = int(char)
        elif char.isalpha():
            value = ord(char) - ord("A") + 10
        else:
            value = 0
        total += value * (7, 3, 1)[index % 3]
    return str(total % 10)


def mrz_lines() -> tuple[str, str, str]:
    """Return the TD1 machine-readable zone of the test card's back (3 x 30 characters).

    The document number is the last 9 digits of the ID number; the full ID
    number is in the optional data, as on the Vietnamese citizen card.
    """
    number = ID_NUMBER[-9:]
    line1 = f"IDVNM{number}{_mrz_check_digit(number)}{ID_NUMBER}".ljust(30, "<")
    birth = DATE_OF_BIRTH[2:].replace("-", "")
    expiry = DATE_OF_EXPIRY[2:].replace("-", "")
    line2 = f"{birth}{_mrz_check_digit(birth)}M{expiry}{_mrz_check_digit(expiry)}VNM".ljust(29, "<")
    composite = line1[5:30] + line2[0:7] + line2[8:15] + line2[18:29]
    line2 += _mrz_check_digit(composite)
    line3 = "NGUYEN<<VAN<THU".ljust(30, "<")
    return line1, line2, line3


def card_qr_text() -> str:
    """Return the card front's QR text: ID|old ID|name|birth|sex|residence|issue date."""
    birth = "".join(reversed(DATE_OF_BIRTH.split("-")))
    issued = "".join(reversed(DATE_OF_ISSUE.split("-")))
    return f"{ID_NUMBER}||{FULL_NAME}|{birth}|Nam|{RESIDENCE}|{issued}"


def _vn_date(iso: str) -> str:
    year, month, day = iso.split("-")
    return f"{day}/{month}/{year}"


@functools.cache
def _font(bold: bool, mono: bool, size: int) -> ImageFont.FreeTypeFont:
    name = "DejaVuSansMono" if mono else "DejaVuSans"
    return ImageFont.truetype(str(FONT_DIR / f"{name}{'-Bold' if bold else ''}.ttf"), size)


@dataclass(frozen=True, slots=True)
class _Canvas:
    """Drawing in a subject's own units: ``unit`` pixels each, from ``origin``."""

    draw: ImageDraw.ImageDraw
    origin: tuple[float, float]
    unit: float

    def pt(self, x: float, y: float) -> tuple[float, float]:
        return self.origin[0] + x * self.unit, self.origin[1] + y * self.unit

    def box(self, x0: float, y0: float, x1: float, y1: float) -> tuple[float, float, float, float]:
        (a, b), (c, d) = self.pt(x0, y0), self.pt(x1, y1)
        return a, b, c, d

    def px(self, length: float) -> int:
        return max(1, round(length * self.unit))

    def text(
        self,
        x: float,
        y: float,
        text: str,
        size: float,
        *,
        bold: bool = False,
        mono: bool = False,
        fill: Color = _INK,
        anchor: str = "la",
    ) -> None:
        font = _font(bold, mono, max(6, round(size * self.unit)))
        self.draw.text(self.pt(x, y), text, font=font, fill=fill, anchor=anchor)


def _fit(frame: tuple[int, int], ratio: float, share: float) -> tuple[tuple[float, float], float]:
    """Centre a subject of aspect ``ratio`` (width 1000 units) covering ``share`` of the frame."""
    width, height = frame
    subject_w = min(width * share, height * share * ratio)
    unit = subject_w / 1000
    subject_h = subject_w / ratio
    return ((width - subject_w) / 2, (height - subject_h) / 2), unit


def _gradient(size: tuple[int, int], top: Color, bottom: Color) -> Image.Image:
    column = Image.new("RGB", (1, 256))
    column.putdata(
        [
            tuple(round(a + (b - a) * i / 255) for a, b in zip(top, bottom, strict=True))
            for i in range(256)
        ],
    )
    return column.resize(size, Image.Resampling.BILINEAR)


def _qr(text: str, side: int) -> Image.Image:
    code = qrcode.QRCode(error_correction=qrcode.constants.ERROR_CORRECT_M, border=2)
    code.add_data(text.encode())
    code.make(fit=True)
    matrix: list[list[bool]] = code.get_matrix()
    modules = len(matrix)
    pixels = bytes(0 if dark else 255 for row in matrix for dark in row)
    symbol = Image.frombytes("L", (modules, modules), pixels)
    module = max(1, side // modules)
    return symbol.resize((modules * module, modules * module), Image.Resampling.NEAREST)


def _head(c: _Canvas) -> None:
    """Draw a stylised head and shoulders filling a 1000 x 1333 unit portrait."""
    d = c.draw
    hair = (30, 25, 25)
    d.ellipse(c.box(20, 1040, 980, 1800), fill=(30, 50, 95))
    d.rectangle(c.box(410, 770, 590, 1090), fill=_SKIN)
    d.ellipse(c.box(220, 100, 780, 640), fill=hair)
    for left in (190, 720):
        d.ellipse(c.box(left, 440, left + 90, 670), fill=_SKIN)
    d.ellipse(c.box(240, 190, 760, 930), fill=_SKIN)
    d.chord(c.box(250, 130, 750, 470), 180, 360, fill=hair)
    for eye in (370, 630):
        d.ellipse(c.box(eye - 60, 505, eye + 60, 575), fill="white")
        d.ellipse(c.box(eye - 25, 513, eye + 25, 567), fill=(55, 35, 25))
        brow = [c.pt(eye - 80, 465), c.pt(eye + 70, 452)]
        d.line(brow, fill=(40, 30, 30), width=c.px(20))
    nose = [c.pt(500, 560), c.pt(470, 690), c.pt(520, 705)]
    d.line(nose, fill=(170, 120, 95), width=c.px(12))
    d.arc(c.box(400, 705, 600, 825), 20, 160, fill=(150, 60, 60), width=c.px(15))


def _portrait(frame: tuple[int, int]) -> Image.Image:
    """Head and shoulders against a plain wall, filling ``frame`` (pixels)."""
    image = _gradient(frame, (214, 222, 232), (180, 190, 204))
    origin, unit = _fit(frame, 3 / 4, 1.0)
    _head(_Canvas(ImageDraw.Draw(image), origin, unit))
    return image


def _card_base(frame: tuple[int, int], tint: Color) -> tuple[Image.Image, _Canvas]:
    image = _gradient(frame, (70, 72, 78), (45, 46, 50))  # the dark capture tray
    draw = ImageDraw.Draw(image)
    origin, unit = _fit(frame, _CARD_RATIO, 0.88)
    c = _Canvas(draw, origin, unit)
    height = 1000 / _CARD_RATIO
    draw.rounded_rectangle(c.box(0, 0, 1000, height), radius=c.px(35), fill=tint)
    # Guilloche-like waves: fine security print that makes the JPEG realistic to compress.
    for row in range(24, round(height) - 24, 18):
        points = [c.pt(x, row + 8 * math.sin(x / 37 + row)) for x in range(30, 971, 10)]
        draw.line(points, fill=tuple(max(0, v - 18) for v in tint), width=1)
    return image, c


def _star(c: _Canvas, x: float, y: float, radius: float) -> list[tuple[float, float]]:
    points = []
    for index in range(10):
        angle = math.radians(-90 + 36 * index)
        r = radius if index % 2 == 0 else radius * 0.4
        points.append(c.pt(x + r * math.cos(angle), y + r * math.sin(angle)))
    return points


def id_front(frame: tuple[int, int]) -> Image.Image:
    """Draw the front of the test citizen ID card, centred on a dark tray."""
    image, c = _card_base(frame, (222, 236, 246))
    d = c.draw
    d.ellipse(c.box(40, 35, 160, 155), fill=_RED)
    d.polygon(_star(c, 100, 97, 45), fill=(250, 215, 40))
    c.text(480, 40, "CỘNG HÒA XÃ HỘI CHỦ NGHĨA VIỆT NAM", 25, bold=True, anchor="ma")
    c.text(480, 75, "Độc lập - Tự do - Hạnh phúc", 23, bold=True, anchor="ma")
    c.text(480, 120, "CĂN CƯỚC CÔNG DÂN", 42, bold=True, fill=_RED, anchor="ma")
    c.text(480, 168, "Citizen Identity Card", 20, anchor="ma")
    qr_x, qr_y = c.pt(810, 25)
    image.paste(_qr(card_qr_text(), c.px(170)), (round(qr_x), round(qr_y)))
    left, top, right, bottom = (round(v) for v in c.box(45, 215, 255, 495))
    image.paste(_portrait((right - left, bottom - top)), (left, top))
    c.text(45, 520, "Có giá trị đến:", 17)
    c.text(45, 545, _vn_date(DATE_OF_EXPIRY), 20, bold=True)
    c.text(285, 220, "Số / No.:", 20)
    c.text(420, 208, ID_NUMBER, 44, bold=True, fill=_RED)
    c.text(285, 275, "Họ và tên / Full name:", 20)
    c.text(285, 302, FULL_NAME.upper(), 34, bold=True)
    c.text(285, 355, f"Ngày sinh / Date of birth:  {_vn_date(DATE_OF_BIRTH)}", 20)
    c.text(285, 388, "Giới tính / Sex:  Nam        Quốc tịch / Nationality:  Việt Nam", 20)
    c.text(285, 421, "Quê quán / Place of origin:", 20)
    c.text(285, 447, ORIGIN, 22, bold=True)
    c.text(285, 485, "Nơi thường trú / Place of residence:", 20)
    c.text(285, 511, RESIDENCE, 22, bold=True)
    return image


def id_back(frame: tuple[int, int]) -> Image.Image:
    """Draw the back of the test citizen ID card: chip, fingerprints and MRZ."""
    image, c = _card_base(frame, (230, 238, 244))
    d = c.draw
    d.rounded_rectangle(c.box(50, 40, 170, 130), radius=c.px(12), fill=(212, 175, 80))
    for y in (62, 85, 108):
        d.line([c.pt(50, y), c.pt(170, y)], fill=(150, 115, 40), width=c.px(3))
    d.line([c.pt(110, 40), c.pt(110, 130)], fill=(150, 115, 40), width=c.px(3))
    c.text(200, 40, "Đặc điểm nhân dạng / Personal identification:", 18)
    c.text(200, 66, "Sẹo chấm C: 1cm trên đuôi mắt trái", 20, bold=True)
    c.text(200, 110, "Ngày, tháng, năm / Date, month, year:", 18)
    c.text(200, 134, _vn_date(DATE_OF_ISSUE), 20, bold=True)
    c.text(200, 172, "CỤC TRƯỞNG CỤC CẢNH SÁT", 18, bold=True)
    c.text(200, 195, "QUẢN LÝ HÀNH CHÍNH VỀ TRẬT TỰ XÃ HỘI", 18, bold=True)
    d.ellipse(c.box(230, 225, 340, 335), outline=_RED, width=c.px(6))
    signature = [c.pt(260, 315), c.pt(300, 255), c.pt(330, 305), c.pt(380, 245)]
    d.line(signature, fill=(30, 40, 140), width=c.px(4))
    c.text(200, 350, "Trần Văn Mẫu", 20, bold=True)
    for x, label in ((725, "Ngón trỏ trái"), (880, "Ngón trỏ phải")):
        d.rectangle(c.box(x - 65, 40, x + 65, 230), outline=_INK, width=c.px(2))
        for ring in range(8):
            r = 12 + ring * 7
            ridge = c.box(x - r * 0.8, 135 - r, x + r * 0.8, 135 + r)
            d.ellipse(ridge, outline=(90, 90, 100), width=c.px(2))
        c.text(x, 245, label, 16, anchor="ma")
    d.rectangle(c.box(12, 420, 988, 1000 / _CARD_RATIO - 25), fill=(245, 247, 248))
    for index, line in enumerate(mrz_lines()):
        c.text(500, 440 + index * 58, line, 44, mono=True, bold=True, anchor="ma")
    return image


def face(frame: tuple[int, int]) -> Image.Image:
    """Draw a head-and-shoulders portrait against a plain wall."""
    return _portrait(frame)


def document(frame: tuple[int, int]) -> Image.Image:
    """Draw a filled-in application form on A4 paper, on a grey tray."""
    image = _gradient(frame, (110, 112, 118), (90, 92, 98))
    draw = ImageDraw.Draw(image)
    origin, unit = _fit(frame, _PAGE_RATIO, 0.94)
    c = _Canvas(draw, origin, unit)
    draw.rectangle(c.box(0, 0, 1000, 1000 / _PAGE_RATIO), fill=(250, 250, 246))
    c.text(500, 70, "CỘNG HÒA XÃ HỘI CHỦ NGHĨA VIỆT NAM", 30, bold=True, anchor="ma")
    c.text(500, 112, "Độc lập - Tự do - Hạnh phúc", 28, bold=True, anchor="ma")
    c.text(500, 200, "ĐƠN ĐỀ NGHỊ", 40, bold=True, anchor="ma")
    c.text(500, 252, "Cấp đổi căn cước công dân", 30, bold=True, anchor="ma")
    c.text(120, 330, "Kính gửi: Ủy ban nhân dân Phường Bến Nghé, Quận 1", 26)
    lines = [
        f"1. Họ, chữ đệm và tên: {FULL_NAME}",
        f"2. Ngày, tháng, năm sinh: {_vn_date(DATE_OF_BIRTH)}        3. Giới tính: Nam",
        f"4. Số định danh cá nhân: {ID_NUMBER}",
        f"5. Nơi thường trú: {RESIDENCE}",
        f"6. Quê quán: {ORIGIN}",
        "7. Lý do đề nghị: thẻ hết hạn sử dụng, thay đổi thông tin cư trú.",
        "",
        "Tôi xin cam đoan những thông tin kê khai trên là đúng sự thật và",
        "chịu trách nhiệm trước pháp luật về lời khai của mình.",
    ]
    for index, line in enumerate(lines):
        c.text(120, 410 + index * 52, line, 24)
    c.text(720, 940, "TP. Hồ Chí Minh, ngày 14 tháng 3 năm 2025", 22, anchor="ma")
    c.text(760, 980, "Người làm đơn", 24, bold=True, anchor="ma")
    c.text(760, 1015, "(Ký, ghi rõ họ tên)", 20, anchor="ma")
    signature = [c.pt(660, 1110), c.pt(700, 1070), c.pt(740, 1120), c.pt(800, 1060)]
    draw.line(signature, fill=(30, 40, 140), width=c.px(4))
    c.text(760, 1150, FULL_NAME, 24, bold=True, anchor="ma")
    return image


_DRAW: dict[Purpose, Callable[[tuple[int, int]], Image.Image]] = {
    Purpose.ID_FRONT: id_front,
    Purpose.ID_BACK: id_back,
    Purpose.FACE: face,
    Purpose.DOCUMENT: document,
}


def synthetic_jpeg(purpose: Purpose, width: int, height: int, quality: int) -> bytes:
    """Draw the picture for ``purpose`` at ``width`` x ``height`` pixels; return JPEG bytes.

    CPU-bound (about 30 ms at 1280 x 807, a few hundred ms at full sensor size).
    """
    image = _DRAW[purpose]((width, height))
    # Sensor noise (luminance): a flat drawing would compress far better than a photo.
    noise = Image.effect_noise((width, height), _NOISE_SIGMA).convert("RGB")
    image = ImageChops.add(image, noise, scale=1.0, offset=-128)
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=quality)
    return buffer.getvalue()
