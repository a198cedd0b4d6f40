"""LDS files of an eMRTD (ICAO 9303-10): EF.COM, DG1, DG2 and the Vietnamese DG13.

Parsers take the whole file as read from the chip (outer tag included) and
raise :class:`~devices.errors.ProtocolError` (``hardwareError``) for bytes
that break the format; DG13 is parsed tolerantly (see :func:`parse_dg13`).
Nothing here logs: file contents are identity data.
"""

from __future__ import annotations

import io
import re
from dataclasses import dataclass
from datetime import date
from enum import IntEnum

import msgspec
from PIL import Image

from devices.card_reader.identity import Dg13, Face, Mrz, parse_mrz
from devices.errors import ProtocolError

from . import tlv


class Ef(IntEnum):
    """File identifiers of the eMRTD application's elementary files."""

    CARD_ACCESS = 0x011C  # in the master file, readable before access control
    COM = 0x011E
    SOD = 0x011D
    DG1 = 0x0101
    DG2 = 0x0102
    DG13 = 0x010D
    DG14 = 0x010E
    DG15 = 0x010F


#: Outer tag of each data group file, by data group number (9303-10 table 34).
DG_TAGS: dict[int, int] = {
    1: 0x61, 2: 0x75, 3: 0x63, 4: 0x76, 5: 0x65, 6: 0x66, 7: 0x67, 8: 0x68,
    9: 0x69, 10: 0x6A, 11: 0x6B, 12: 0x6C, 13: 0x6D, 14: 0x6E, 15: 0x6F, 16: 0x70,
}  # fmt: skip
TAG_COM = 0x60
TAG_SOD = 0x77
_TAG_LIST = 0x5C
_TAG_MRZ = 0x5F1F
_TAG_BIOMETRIC_GROUP = 0x7F61
_TAG_BIOMETRIC = 0x7F60
_TAG_BIOMETRIC_DATA = (0x5F2E, 0x7F2E)
_TAG_SEQUENCE = 0x30
_TAG_INTEGER = 0x02
_TAG_OID = 0x06
#: ASN.1 string types DG13 values come in: UTF8String, PrintableString, IA5String, BMPString.
_STRING_TAGS = {0x0C: "utf-8", 0x13: "ascii", 0x16: "ascii", 0x1E: "utf-16-be"}
_DG_BY_TAG = {tag: number for number, tag in DG_TAGS.items()}


def _outer(data: bytes, tag: int, name: str) -> bytes:
    item = tlv.read_tlv(data)
    if item.tag != tag:
        raise ProtocolError(f"{name}: unexpected outer tag {item.tag:#x}")
    return item.value


def parse_com(data: bytes) -> list[int]:
    """Return the data group numbers EF.COM lists, in its order.

    Raises:
        ProtocolError: not an EF.COM or no tag list.

    """
    tag_list = tlv.find(_outer(data, TAG_COM, "EF.COM"), _TAG_LIST)
    if tag_list is None:
        raise ProtocolError("EF.COM: no data group tag list")
    return [_DG_BY_TAG[t] for t in tag_list.value if t in _DG_BY_TAG]


def parse_dg1(data: bytes, today: date) -> Mrz:
    """Decode DG1 (TD1 MRZ of an ID card, TD3 of a passport, or TD2) into :class:`Mrz`.

    Raises:
        ProtocolError: not a DG1, no MRZ, another MRZ size, or a check digit fails.

    """
    mrz = tlv.find(_outer(data, DG_TAGS[1], "DG1"), _TAG_MRZ)
    if mrz is None:
        raise ProtocolError("DG1: no MRZ data object")
    try:
        text = mrz.value.decode("ascii")
    except UnicodeDecodeError:
        raise ProtocolError("DG1: MRZ is not ASCII") from None
    return parse_mrz(text, today)


# --- DG2 ---------------------------------------------------------------------------------

_FAC_MAGIC = b"FAC\x00"
_FAC_HEADER = 14
_FACE_INFO = 20
_LANDMARK = 8
_IMAGE_INFO = 12
_JPEG_MAGIC = b"\xff\xd8\xff"
_JP2_MAGIC = b"\x00\x00\x00\x0cjP  \r\n\x87\n"
_J2K_MAGIC = b"\xff\x4f\xff\x51"


def _image_mime(image: bytes) -> str | None:
    if image.startswith(_JPEG_MAGIC):
        return "image/jpeg"
    if image.startswith((_JP2_MAGIC, _J2K_MAGIC)):
        return "image/jp2"
    return None


def _iso19794_image(record: bytes) -> bytes:
    """The first facial image of an ISO/IEC 19794-5 record (FAC header, facial block)."""
    if not record.startswith(_FAC_MAGIC) or len(record) < _FAC_HEADER + _FACE_INFO:
        raise ProtocolError("DG2: biometric data is not an ISO 19794-5 facial record")
    block = record[_FAC_HEADER:]
    block_length = int.from_bytes(block[0:4], "big")
    landmarks = int.from_bytes(block[4:6], "big")
    start = _FACE_INFO + landmarks * _LANDMARK + _IMAGE_INFO
    if block_length > len(block) or start > block_length:
        raise ProtocolError("DG2: facial record lengths do not add up")
    return block[start:block_length]


def _iso39794_image(block: bytes) -> bytes:
    """The first image of an ISO/IEC 39794-5 face image data block (DER, LDS 2 / 9303-10 8th ed.).

    The block is a tree of context-tagged DER objects; the image data of a 2D
    representation is a primitive object whose value is a JPEG or JPEG 2000
    file.  The first such value in document order is the portrait.

    Raises:
        ProtocolError: not DER, or no image in it.

    """
    pending = [tlv.read_tlv(block)]
    while pending:
        item = pending.pop(0)
        if item.constructed:
            pending[0:0] = item.children()
        elif _image_mime(item.value) is not None:
            return item.value
    raise ProtocolError("DG2: the ISO 39794-5 block holds no JPEG or JPEG 2000 image")


def _biometric_image(data: bytes) -> bytes:
    """The image of a biometric data block: ISO 19794-5 (``FAC``) or ISO 39794-5 (DER)."""
    if data.startswith(_FAC_MAGIC):
        return _iso19794_image(data)
    return _iso39794_image(data)


def parse_dg2(data: bytes) -> Face:
    """Extract the first portrait of DG2 with its MIME type (JPEG or JPEG 2000).

    The biometric data block is an ISO/IEC 19794-5 record or an ISO/IEC
    39794-5 face image data block.

    Raises:
        ProtocolError: not a DG2, no biometric data block, or an image of another type.

    """
    group = tlv.find(_outer(data, DG_TAGS[2], "DG2"), _TAG_BIOMETRIC_GROUP)
    if group is None:
        raise ProtocolError("DG2: no biometric information group template")
    for template in group.children():
        if template.tag != _TAG_BIOMETRIC:
            continue
        for item in template.children():
            if item.tag in _TAG_BIOMETRIC_DATA:
                image = _biometric_image(item.value)
                mime = _image_mime(image)
                if mime is None:
                    raise ProtocolError("DG2: the portrait is neither JPEG nor JPEG 2000")
                return Face(mime=mime, data=image)
    raise ProtocolError("DG2: no biometric data block")


def display_jpeg(face: Face, quality: int = 90) -> Face:
    """``face`` with a JPEG rendition for display when it is JPEG 2000 (Pillow's OpenJPEG).

    Decoding takes milliseconds: callers run it off the event loop.

    Raises:
        ProtocolError: the JPEG 2000 image does not decode.

    """
    if face.mime != "image/jp2":
        return face
    try:
        with Image.open(io.BytesIO(face.data)) as image:
            out = io.BytesIO()
            image.convert("RGB").save(out, format="JPEG", quality=quality)
    except (OSError, ValueError, SyntaxError) as exc:
        raise ProtocolError(f"DG2: the JPEG 2000 portrait does not decode ({exc})") from None
    return msgspec.structs.replace(face, display_jpeg=out.getvalue())


# --- DG13 (Vietnamese citizen card) ------------------------------------------------------


class Dg13Field(IntEnum):
    """Field numbers of the citizen card's DG13 entries (docs/card-reader.md: sources)."""

    ID_NUMBER = 1
    FULL_NAME = 2
    DATE_OF_BIRTH = 3
    SEX = 4
    NATIONALITY = 5
    ETHNICITY = 6
    RELIGION = 7
    PLACE_OF_ORIGIN = 8
    PLACE_OF_RESIDENCE = 9
    PERSONAL_IDENTIFICATION = 10
    DATE_OF_ISSUE = 11
    DATE_OF_EXPIRY = 12
    PARENTS = 13
    SPOUSE = 14
    OLD_ID_NUMBER = 16


_DMY = re.compile(r"^(\d{2})/(\d{2})/(\d{4})$")
_DMY_COMPACT = re.compile(r"^(\d{2})(\d{2})(\d{4})$")
_ISO = re.compile(r"^\d{4}(-\d{2}(-\d{2})?)?$")
_UNKNOWN_PART = "00"


@dataclass(frozen=True, slots=True)
class _Entry:
    number: int
    texts: list[str]


def dg13_date(text: str) -> str | None:
    """Return the ISO form of a DG13 date (``dd/mm/yyyy``; ``00`` for an unknown day or month).

    ISO input is kept; a date that is not one (``Không thời hạn``, "no expiry")
    gives ``None``.
    """
    value = text.strip()
    if _ISO.match(value):
        return value
    match = _DMY.match(value) or _DMY_COMPACT.match(value)
    if match is None:
        return None
    day, month, year = match.groups()
    if month == _UNKNOWN_PART:
        return year
    if day == _UNKNOWN_PART:
        return f"{year}-{month}"
    try:
        return date(int(year), int(month), int(day)).isoformat()
    except ValueError:
        return None


def _texts(item: tlv.Tlv) -> list[str]:
    """Every string leaf under ``item`` in order (nested sequences flattened)."""
    encoding = _STRING_TAGS.get(item.tag)
    if encoding is not None:
        try:
            return [item.value.decode(encoding)]
        except UnicodeDecodeError:
            raise ProtocolError("DG13: a text field is not valid text") from None
    if item.constructed:
        return [text for child in item.children() for text in _texts(child)]
    return []


def _is_header(children: list[tlv.Tlv]) -> bool:
    """``INTEGER version, OID encoding, ...``: the card's outer DG13 header, not an entry."""
    return len(children) > 1 and children[0].tag == _TAG_INTEGER and children[1].tag == _TAG_OID


def _entries(item: tlv.Tlv, found: dict[int, _Entry]) -> None:
    """Collect ``SEQUENCE { INTEGER n, value... }`` entries anywhere under ``item``.

    A ``SEQUENCE { INTEGER 1, OID 1.0.10646.1.0.8, SET { entries } }`` header
    (as real cards carry it, docs/card-reader.md) is descended into, never taken
    for field 1.
    """
    if not item.constructed:
        return
    children = item.children()
    first = children[0] if children else None
    if (
        item.tag == _TAG_SEQUENCE
        and first is not None
        and first.tag == _TAG_INTEGER
        and 0 < len(first.value) <= 2  # noqa: PLR2004 - small field numbers
        and not _is_header(children)
    ):
        number = int.from_bytes(first.value, "big")
        found.setdefault(number, _Entry(number, [t for c in children[1:] for t in _texts(c)]))
        return
    for child in children:
        _entries(child, found)


def parse_dg13(data: bytes) -> Dg13:
    """Decode the citizen card's DG13: entries ``SEQUENCE { INTEGER field, text... }``.

    Tolerant: entries are found at any nesting depth, the first of each number
    wins, empty texts become ``null``, dates that are not dates are ``null``
    (birth date: the text as is), and fields this version does not name are
    kept in ``unknown`` (their texts joined by `` | ``).

    Raises:
        ProtocolError: not a DG13 or malformed TLV.

    """
    root = tlv.read_tlv(data)
    if root.tag != DG_TAGS[13]:
        raise ProtocolError(f"DG13: unexpected outer tag {root.tag:#x}")
    found: dict[int, _Entry] = {}
    _entries(root, found)

    def text(field: Dg13Field, index: int = 0) -> str | None:
        entry = found.get(field)
        if entry is None or len(entry.texts) <= index:
            return None
        return entry.texts[index].strip() or None

    def date_of(field: Dg13Field) -> str | None:
        raw = text(field)
        return dg13_date(raw) if raw is not None else None

    named = {int(f) for f in Dg13Field}
    birth = text(Dg13Field.DATE_OF_BIRTH) or ""
    return Dg13(
        id_number=text(Dg13Field.ID_NUMBER) or "",
        full_name=text(Dg13Field.FULL_NAME) or "",
        date_of_birth=dg13_date(birth) or birth,
        sex=text(Dg13Field.SEX) or "",
        nationality=text(Dg13Field.NATIONALITY) or "",
        ethnicity=text(Dg13Field.ETHNICITY),
        religion=text(Dg13Field.RELIGION),
        place_of_origin=text(Dg13Field.PLACE_OF_ORIGIN),
        place_of_residence=text(Dg13Field.PLACE_OF_RESIDENCE),
        personal_identification=text(Dg13Field.PERSONAL_IDENTIFICATION),
        date_of_issue=date_of(Dg13Field.DATE_OF_ISSUE),
        date_of_expiry=date_of(Dg13Field.DATE_OF_EXPIRY),
        father_name=text(Dg13Field.PARENTS, 0),
        mother_name=text(Dg13Field.PARENTS, 1),
        spouse_name=text(Dg13Field.SPOUSE),
        old_id_number=text(Dg13Field.OLD_ID_NUMBER),
        unknown={str(n): " | ".join(e.texts) for n, e in sorted(found.items()) if n not in named},
    )
