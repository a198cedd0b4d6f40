"""Slip templates and their rendering to a 1-bit raster, shared by every printer driver.

Templates are TOML data files in ``devices/printer/templates/`` (read with
:mod:`importlib.resources`), so an office changes the wording of its slips
without a code change.  A template is a description and a list of blocks,
printed top to bottom::

    description = "Phiếu hẹn trả kết quả"

    [[blocks]]
    kind = "title"                  # large, bold, centred
    text = "PHIẾU HẸN TRẢ KẾT QUẢ"

    [[blocks]]
    kind = "row"                    # label column + bold value column
    label = "Mã hồ sơ:"
    value = "{dossierCode}"

    [[blocks]]
    kind = "row"
    label = "Ngày hẹn trả:"
    value = "{appointmentDate:date}"   # ISO YYYY-MM-DD printed as DD/MM/YYYY
    optional = true                 # left out when a field it uses is missing

    [[blocks]]
    kind = "qr"                     # QR code of one field, centred
    field = "qr"

Block kinds: ``title``, ``text`` (``style`` normal|bold|small, ``align``
left|center|right), ``row``, ``qr`` (``size``: fraction of the paper width,
``caption``), ``separator`` (``style`` solid|dashed), ``footer`` (small,
centred) and ``space`` (``lines`` of body text height).  Every block but
``separator`` and ``space`` may be ``optional``.

Placeholders are ``{field}`` or ``{field:format}`` with the formats ``date``
(ISO ``YYYY-MM-DD`` -> ``DD/MM/YYYY``), ``datetime`` (ISO local
``YYYY-MM-DDTHH:MM[:SS]`` -> ``HH:MM DD/MM/YYYY``) and ``vnd`` (an integer
number of whole VND -> ``1.250.000 đ``); ``{{`` and ``}}`` are literal braces.

Slips are rendered with Pillow in DejaVu Sans (full Vietnamese coverage;
Debian package ``fonts-dejavu-core``) to a mode ``"1"`` image 384 dots (58 mm
paper) or 576 dots (80 mm paper) wide, at the printers' 8 dots/mm.  Rendering
takes about 15 ms of CPU: callers on the event loop run it in a thread.
"""

from __future__ import annotations

import contextlib
import functools
import io
import re
import string
import unicodedata
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from importlib import resources
from pathlib import Path
from typing import Literal, assert_never

import msgspec
import qrcode
import qrcode.constants
import qrcode.exceptions
from PIL import Image, ImageDraw, ImageFont

from devices.errors import DeviceError, InvalidData

from .template_files import TEMPLATE_DIR, TEMPLATE_NAME, TEMPLATE_PACKAGE

#: Raster widths of the supported paper, in dots: 58 mm and 80 mm rolls at 8 dots/mm.
SLIP_WIDTHS: tuple[int, ...] = (384, 576)

#: Where fonts-dejavu-core installs its fonts.
FONT_DIR = Path("/usr/share/fonts/truetype/dejavu")
_REGULAR = "DejaVuSans.ttf"
_BOLD = "DejaVuSans-Bold.ttf"


FieldValue = str | int
Align = Literal["left", "center", "right"]

_ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_ISO_DATETIME = re.compile(r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2})?")


class TemplateError(DeviceError, ValueError):
    """A template file is broken (bad TOML, unknown block, bad placeholder).

    Not a request error: it completes ``internalError`` and names the file.
    """


# ---------------------------------------------------------------- placeholders


def _plain(_field: str, value: FieldValue) -> str:
    return str(value)


def _format_date(field: str, value: FieldValue) -> str:
    text = str(value)
    if _ISO_DATE.fullmatch(text):
        with contextlib.suppress(ValueError):  # a well-formed but impossible date
            return date.fromisoformat(text).strftime("%d/%m/%Y")
    raise InvalidData(f"field {field!r} must be a date YYYY-MM-DD")


def _format_datetime(field: str, value: FieldValue) -> str:
    text = str(value)
    if _ISO_DATETIME.fullmatch(text):
        with contextlib.suppress(ValueError):
            return datetime.fromisoformat(text).strftime("%H:%M %d/%m/%Y")
    raise InvalidData(f"field {field!r} must be a local date-time YYYY-MM-DDTHH:MM[:SS]")


def _format_vnd(field: str, value: FieldValue) -> str:
    text = str(value)
    if not text.isascii() or not text.isdigit():
        raise InvalidData(f"field {field!r} must be a whole number of VND")
    return f"{int(text):,} đ".replace(",", ".")


_FORMATS: dict[str, Callable[[str, FieldValue], str]] = {
    "": _plain,
    "date": _format_date,
    "datetime": _format_datetime,
    "vnd": _format_vnd,
}


@dataclass(frozen=True, slots=True)
class _Piece:
    literal: str
    field: str | None
    spec: str


@functools.cache
def _parse(text: str) -> tuple[_Piece, ...]:
    """Split template text into literals and placeholders.

    Raises:
        ValueError: a placeholder is malformed, not a plain name, or has an unknown format.

    """
    pieces: list[_Piece] = []
    try:
        parsed = list(string.Formatter().parse(text))
    except ValueError as exc:
        raise ValueError(f"bad placeholder in {text!r}: {exc}") from None
    for literal, name, spec, conversion in parsed:
        if name is None:
            pieces.append(_Piece(literal, None, ""))
            continue
        # Plain names only: attribute/index access and conversions have no use in a slip.
        if conversion or not name.isidentifier():
            raise ValueError(f"placeholder {{{name}}} in {text!r} is not a plain field name")
        if spec not in _FORMATS:
            raise ValueError(f"unknown format {spec!r} in {text!r} (known: date, datetime, vnd)")
        pieces.append(_Piece(literal, name, spec))
    return tuple(pieces)


def _field_names(text: str) -> frozenset[str]:
    return frozenset(p.field for p in _parse(text) if p.field is not None)


def _clean(value: FieldValue) -> FieldValue:
    """NFC-normalise text (NFD input splits Vietnamese letters) and drop control characters."""
    if isinstance(value, int):
        return value
    text = unicodedata.normalize("NFC", value)
    return "".join(
        " " if unicodedata.category(ch) == "Cc" and ch != "\n" else ch for ch in text
    ).strip()


def _fill(text: str, fields: Mapping[str, FieldValue]) -> str:
    out: list[str] = []
    for piece in _parse(text):
        out.append(piece.literal)
        if piece.field is not None:
            out.append(_FORMATS[piece.spec](piece.field, fields[piece.field]))
    return "".join(out)


# ---------------------------------------------------------------- template model


class _Block(
    msgspec.Struct,
    tag_field="kind",
    frozen=True,
    forbid_unknown_fields=True,
    kw_only=True,
):
    optional: bool = False

    def fields(self) -> frozenset[str]:
        """Field names this block prints."""
        return frozenset()


class Title(_Block, tag="title", frozen=True):
    """Large bold centred text."""

    text: str

    def __post_init__(self) -> None:
        _parse(self.text)

    def fields(self) -> frozenset[str]:
        """Field names this block prints."""
        return _field_names(self.text)


class Text(_Block, tag="text", frozen=True):
    """A paragraph, wrapped to the paper width."""

    text: str
    style: Literal["normal", "bold", "small"] = "normal"
    align: Align = "left"

    def __post_init__(self) -> None:
        _parse(self.text)

    def fields(self) -> frozenset[str]:
        """Field names this block prints."""
        return _field_names(self.text)


class Row(_Block, tag="row", frozen=True):
    """``label`` in a left column, ``value`` in bold beside it; both wrap."""

    label: str
    value: str

    def __post_init__(self) -> None:
        _parse(self.label)
        _parse(self.value)

    def fields(self) -> frozenset[str]:
        """Field names this block prints."""
        return _field_names(self.label) | _field_names(self.value)


class Qr(_Block, tag="qr", frozen=True):
    """A QR code (error correction M) of one field, ``size`` of the paper width wide."""

    field: str
    size: float = 0.5
    caption: str | None = None

    def __post_init__(self) -> None:
        if not self.field.isidentifier():
            raise ValueError(f"qr field {self.field!r} is not a field name")
        if not 0.2 <= self.size <= 1.0:  # noqa: PLR2004 - bounds of a fraction, stated in the error
            raise ValueError("qr size must be between 0.2 and 1.0 of the paper width")
        if self.caption is not None:
            _parse(self.caption)

    def fields(self) -> frozenset[str]:
        """Field names this block prints."""
        caption = _field_names(self.caption) if self.caption is not None else frozenset()
        return frozenset({self.field}) | caption


class Separator(_Block, tag="separator", frozen=True):
    """A horizontal rule across the paper."""

    style: Literal["solid", "dashed"] = "solid"


class Footer(_Block, tag="footer", frozen=True):
    """Small centred text, usually last."""

    text: str

    def __post_init__(self) -> None:
        _parse(self.text)

    def fields(self) -> frozenset[str]:
        """Field names this block prints."""
        return _field_names(self.text)


class Space(_Block, tag="space", frozen=True):
    """Blank paper, ``lines`` times the body line height."""

    lines: float = 1.0


Block = Title | Text | Row | Qr | Separator | Footer | Space


class Template(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """A slip template as read from its TOML file."""

    description: str
    blocks: list[Block]

    def required_fields(self) -> frozenset[str]:
        """Fields every request must give (those of blocks that are not optional)."""
        names: frozenset[str] = frozenset()
        for block in self.blocks:
            if not block.optional:
                names |= block.fields()
        return names

    def all_fields(self) -> frozenset[str]:
        """Every field the template can print."""
        names: frozenset[str] = frozenset()
        for block in self.blocks:
            names |= block.fields()
        return names


@functools.cache
def load_template(name: str) -> Template:
    """Read and validate a template by name (cached for the life of the process).

    Raises:
        InvalidData: no template of that name.
        TemplateError: the file exists but is not a valid template.

    """
    if not TEMPLATE_NAME.fullmatch(name):
        raise InvalidData(f"unknown slip template {name!r}")
    entry = resources.files(TEMPLATE_PACKAGE).joinpath(TEMPLATE_DIR).joinpath(f"{name}.toml")
    if not entry.is_file():
        raise InvalidData(f"unknown slip template {name!r}")
    try:
        return msgspec.toml.decode(entry.read_bytes(), type=Template)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise TemplateError(f"slip template {name}.toml is invalid: {exc}") from exc


# ---------------------------------------------------------------- rendering


@functools.cache
def _font(name: str, size: int) -> ImageFont.FreeTypeFont:
    return ImageFont.truetype(str(FONT_DIR / name), size)


@dataclass(frozen=True, slots=True)
class _Style:
    """Type sizes (pixels = dots) for one paper width."""

    width: int
    margin: int
    body: int
    small: int
    title: int

    @property
    def content(self) -> int:
        return self.width - 2 * self.margin


_STYLES = {
    384: _Style(width=384, margin=8, body=20, small=17, title=26),
    576: _Style(width=576, margin=12, body=24, small=20, title=34),
}


#: Vietnamese capitals with stacked marks and descenders: they reach past the font's
#: ascent and descent, and would be clipped at the edge of a line.
_TALL = "ẤẦẨẪẬỮỬỄỂỀẾỆỴgjpqy"


@functools.cache
def _line_metrics(font: ImageFont.FreeTypeFont) -> tuple[int, int]:
    """``(baseline offset, line step)`` in dots that fit every Vietnamese glyph."""
    ascent, descent = font.getmetrics()
    _, top, _, bottom = font.getbbox(_TALL, anchor="ls")
    above, below = max(ascent, -int(top)), max(descent, int(bottom))
    return above, above + below + max(2, int(font.size) // 8)


def _line_height(font: ImageFont.FreeTypeFont) -> int:
    return _line_metrics(font)[1]


def _split_word(word: str, font: ImageFont.FreeTypeFont, width: int) -> list[str]:
    """Break a word wider than the column (a long code or URL) at character boundaries."""
    parts: list[str] = []
    while word and font.getlength(word) > width:
        cut = 1
        while cut < len(word) and font.getlength(word[: cut + 1]) <= width:
            cut += 1
        parts.append(word[:cut])
        word = word[cut:]
    if word:
        parts.append(word)
    return parts


def _wrap(text: str, font: ImageFont.FreeTypeFont, width: int) -> list[str]:
    lines: list[str] = []
    for paragraph in text.split("\n"):
        line = ""
        for word in paragraph.split():
            candidate = f"{line} {word}" if line else word
            if font.getlength(candidate) <= width:
                line = candidate
                continue
            if line:
                lines.append(line)
            *full, line = _split_word(word, font, width)
            lines.extend(full)
        lines.append(line)
    return lines


def _text_strip(
    text: str,
    font: ImageFont.FreeTypeFont,
    style: _Style,
    align: Align,
) -> Image.Image:
    lines = _wrap(text, font, style.content)
    baseline, step = _line_metrics(font)
    strip = Image.new("1", (style.width, step * len(lines)), 1)
    draw = ImageDraw.Draw(strip)
    for index, line in enumerate(lines):
        free = style.content - font.getlength(line)
        offset = {"left": 0.0, "center": free / 2, "right": free}[align]
        position = (style.margin + int(offset), index * step + baseline)
        draw.text(position, line, font=font, fill=0, anchor="ls")
    return strip


def _row_strip(label: str, value: str, style: _Style) -> Image.Image:
    regular, bold = _font(_REGULAR, style.body), _font(_BOLD, style.body)
    gap = style.body // 2
    label_width = int(style.content * 0.42)
    value_width = style.content - label_width - gap
    label_lines = _wrap(label, regular, label_width)
    value_lines = _wrap(value, bold, value_width)
    # One baseline grid for both columns, roomy enough for the bold face.
    baseline = max(_line_metrics(regular)[0], _line_metrics(bold)[0])
    step = max(_line_metrics(regular)[1], _line_metrics(bold)[1])
    strip = Image.new("1", (style.width, step * max(len(label_lines), len(value_lines))), 1)
    draw = ImageDraw.Draw(strip)
    for index, line in enumerate(label_lines):
        y = index * step + baseline
        draw.text((style.margin, y), line, font=regular, fill=0, anchor="ls")
    for index, line in enumerate(value_lines):
        y = index * step + baseline
        draw.text((style.margin + label_width + gap, y), line, font=bold, fill=0, anchor="ls")
    return strip


def _qr_strip(data: str, field: str, size: float, style: _Style) -> Image.Image:
    code = qrcode.QRCode(error_correction=qrcode.constants.ERROR_CORRECT_M, border=0)
    try:
        code.add_data(data)
        code.make(fit=True)
    except qrcode.exceptions.DataOverflowError:
        raise InvalidData(f"field {field!r} is too long for a QR code") from None
    matrix: list[list[bool]] = code.get_matrix()
    modules = len(matrix)
    module = int(style.content * size) // modules
    # Below 3 dots a module is at the edge of what a thermal head and a phone camera resolve.
    if module < 3:  # noqa: PLR2004 - explained above
        raise InvalidData(f"field {field!r} is too long for a QR code on this paper width")
    pixels = bytes(0 if dark else 255 for row in matrix for dark in row)
    symbol = Image.frombytes("L", (modules, modules), pixels).convert("1")
    symbol = symbol.resize((modules * module, modules * module), Image.Resampling.NEAREST)
    quiet = 4 * module  # the quiet zone QR readers need above and below
    strip = Image.new("1", (style.width, symbol.height + 2 * quiet), 1)
    strip.paste(symbol, ((style.width - symbol.width) // 2, quiet))
    return strip


def _separator_strip(kind: Literal["solid", "dashed"], style: _Style) -> Image.Image:
    height = style.body
    strip = Image.new("1", (style.width, height), 1)
    draw = ImageDraw.Draw(strip)
    y = height // 2
    right = style.width - style.margin - 1
    if kind == "solid":
        draw.rectangle((style.margin, y - 1, right, y), fill=0)
    else:
        dash = style.body // 3
        for x in range(style.margin, right, 2 * dash):
            draw.rectangle((x, y - 1, min(x + dash, right), y), fill=0)
    return strip


def _text_font(kind: Literal["normal", "bold", "small"], style: _Style) -> ImageFont.FreeTypeFont:
    if kind == "bold":
        return _font(_BOLD, style.body)
    if kind == "small":
        return _font(_REGULAR, style.small)
    return _font(_REGULAR, style.body)


def _block_strip(block: Block, fields: Mapping[str, FieldValue], style: _Style) -> Image.Image:
    match block:
        case Title(text=text):
            strip = _text_strip(_fill(text, fields), _font(_BOLD, style.title), style, "center")
        case Text(text=text, style=kind, align=align):
            strip = _text_strip(_fill(text, fields), _text_font(kind, style), style, align)
        case Row(label=label, value=value):
            strip = _row_strip(_fill(label, fields), _fill(value, fields), style)
        case Qr(field=field, size=size, caption=caption):
            strip = _qr_strip(str(fields[field]), field, size, style)
            if caption is not None:
                small = _font(_REGULAR, style.small)
                strip = _stack([strip, _text_strip(_fill(caption, fields), small, style, "center")])
        case Separator(style=kind):
            strip = _separator_strip(kind, style)
        case Footer(text=text):
            strip = _text_strip(_fill(text, fields), _font(_REGULAR, style.small), style, "center")
        case Space(lines=lines):
            height = int(lines * _line_height(_font(_REGULAR, style.body)))
            strip = Image.new("1", (style.width, max(1, height)), 1)
        case _:
            assert_never(block)
    return strip


def _stack(strips: list[Image.Image]) -> Image.Image:
    image = Image.new("1", (strips[0].width, sum(s.height for s in strips)), 1)
    y = 0
    for strip in strips:
        image.paste(strip, (0, y))
        y += strip.height
    return image


def render_slip(template: str, fields: Mapping[str, FieldValue], width_dots: int) -> Image.Image:
    """Render a slip: a mode ``"1"`` image ``width_dots`` wide, black (0) on white.

    Fields the template does not use are ignored; an empty string counts as missing.
    CPU-bound (about 15 ms): run it in a thread from the event loop.

    Args:
        template: template name (file stem in ``devices/printer/templates``).
        fields: placeholder values; text is NFC-normalised, control characters dropped.
        width_dots: raster width, one of :data:`SLIP_WIDTHS`.

    Raises:
        InvalidData: unknown template, a required field missing, a value not in the
            format its placeholder asks for, or a QR value too long.
        TemplateError: the template file is invalid.
        ValueError: ``width_dots`` is not a supported width.

    """
    style = _STYLES.get(width_dots)
    if style is None:
        raise ValueError(f"slip width must be one of {SLIP_WIDTHS} dots, not {width_dots}")
    spec = load_template(template)
    values = {name: _clean(value) for name, value in fields.items()}
    present = {name for name, value in values.items() if value != ""}
    missing = sorted(spec.required_fields() - present)
    if missing:
        raise InvalidData(f"slip template {template!r} needs field(s): {', '.join(missing)}")
    strips = [Image.new("1", (style.width, style.margin), 1)]
    strips.extend(
        _block_strip(block, values, style) for block in spec.blocks if block.fields() <= present
    )
    # Blank paper after the last line, so the cutter does not clip it.
    strips.append(Image.new("1", (style.width, 2 * _line_height(_font(_REGULAR, style.body))), 1))
    return _stack(strips)


def encode_png(image: Image.Image) -> bytes:
    """Encode a rendered slip as PNG bytes (a few ms; call from a thread)."""
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()
