"""Identity documents: the ``readIdentity`` result types and MRZ rules.

The result types here are a fixed public contract (docs/api.md and the AsyncAPI
document are generated from them).  They are identity data: they travel only in
the ``readIdentity`` completion to its requester, never in broadcast events,
state detail, logs or files.

MRZ rules follow ICAO Doc 9303 (parts 3 and 5, TD1 size, as on the Vietnamese
citizen card, "CCCD"/"căn cước"): check digits with weights 7-3-1, and the
"MRZ information" that seeds the BAC keys.  On the citizen card the chip's
document number is the last 9 digits of the 12-digit ID number, which also
fills the line-1 optional data followed by its own check digit.

Error messages never echo what was given or read: they reach the requester
and may be logged.

The specimen cards (synthetic people for simulators, tests and demos) live in
:mod:`devices.sim.card_reader.specimen_cards`, outside production code.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from datetime import date
from typing import Annotated, Literal

import msgspec
from msgspec import Meta

from devices.base import Message
from devices.errors import InvalidData, ProtocolError

# --- result types (the public contract) -----------------------------------------------


def _doc(text: str) -> Meta:
    return Meta(description=text)


#: A calendar date as the MRZ or card gives it: ISO, possibly of reduced precision.
IsoDate = Annotated[str, _doc("ISO date `YYYY-MM-DD` (`YYYY-MM` or `YYYY` if partly unknown)")]
#: Text as printed on the card (Unicode, with diacritics); null when the card leaves it empty.
CardText = Annotated[str | None, _doc("as printed on the card; null when empty")]
#: A three-letter ICAO 9303 state code.
StateCode = Annotated[str, _doc("three-letter ICAO code, `VNM` for Viet Nam")]


class Mrz(Message):
    """The chip's DG1: the machine readable zone printed on the card, decoded.

    Field values are MRZ text with fillers (``<``) removed or read as spaces,
    except dates, which are ISO: ``YYYY-MM-DD``, or ``YYYY-MM`` / ``YYYY`` when the
    MRZ leaves the day or month unknown.  The MRZ has two-digit years: a birth
    year is placed in the most recent century that is not in the future, so a
    person over 100 gets the wrong century (DG13 holds the full date); expiry
    years are 20YY.
    """

    document_code: Annotated[str, _doc("`ID` on the citizen card (`I` for `I<`)")]
    issuing_state: StateCode
    document_number: Annotated[
        str,
        _doc("the chip's document number: the ID number's last 9 digits, `099000123`"),
    ]
    optional_data: Annotated[
        str,
        _doc("line-1 optional data: the 12-digit ID number on the citizen card"),
    ]
    date_of_birth: IsoDate
    sex: Annotated[Literal["M", "F", "X"], _doc("`X`: unspecified in the MRZ")]
    date_of_expiry: IsoDate
    nationality: StateCode
    optional_data2: Annotated[str, _doc("line-2 optional data (usually empty)")]
    surname: Annotated[str, _doc("primary identifier in MRZ form: `NGUYEN`")]
    given_names: Annotated[str, _doc("secondary identifier in MRZ form: `VAN THU`")]
    name: Annotated[str, _doc("surname and given names in MRZ form: `NGUYEN VAN THU`")]
    lines: Annotated[
        list[str],
        _doc(
            "the raw MRZ lines from DG1: three lines of 30 characters (TD1, ID cards), "
            "or two of 44 (TD3, passports) or 36 (TD2)"
        ),
    ]


class Dg13(Message):
    """The Vietnamese citizen card's DG13: the holder's particulars in Vietnamese.

    Text is as printed on the card (Unicode, with diacritics); dates are ISO.
    ``null`` means the card leaves the field empty.
    """

    id_number: Annotated[str, _doc("12-digit personal ID number, `079099000123`")]
    full_name: Annotated[str, _doc("full name with diacritics, `Nguyễn Văn Thử`")]
    date_of_birth: IsoDate
    sex: Annotated[str, _doc("as on the card: `Nam` or `Nữ`")]
    nationality: Annotated[str, _doc("as on the card: `Việt Nam`")]
    ethnicity: CardText
    religion: CardText
    place_of_origin: CardText
    place_of_residence: CardText
    personal_identification: Annotated[str | None, _doc("identifying marks, as on the card")]
    date_of_issue: IsoDate | None
    date_of_expiry: Annotated[str | None, _doc("ISO date; null for a card without expiry")]
    father_name: CardText
    mother_name: CardText
    spouse_name: CardText
    old_id_number: Annotated[str | None, _doc("the former 9- or 12-digit ID (CMND) number")]
    unknown: Annotated[
        dict[str, str],
        _doc("fields this version does not name: field number -> text"),
    ] = msgspec.field(default_factory=dict)


class Face(Message):
    """The portrait from DG2."""

    mime: Annotated[str, _doc("`image/jpeg` (or `image/jp2` for JPEG 2000)")]
    data: Annotated[bytes, _doc("the image file as stored on the chip, without biometric headers")]
    display_jpeg: Annotated[
        bytes | None,
        _doc(
            "the portrait re-encoded as JPEG for display when the chip stores JPEG 2000 "
            "(which browsers do not decode); null when `data` is already JPEG"
        ),
    ] = None


class PassiveAuth(Message):
    """Passive authentication of what was read (ICAO 9303 part 11).

    The behavioural simulator reports hashes and signature valid and the chain
    unknown; real verification is done by the PC/SC driver.
    """

    hashes_valid: Annotated[bool, _doc("every data group read matches its hash in EF.SOD")]
    signature_valid: Annotated[
        bool,
        _doc("EF.SOD's signature verifies with its document signer certificate"),
    ]
    chain_valid: Annotated[
        bool | None,
        _doc("the document signer chains to a configured CSCA; null: none configured"),
    ]


class ReadIssue(Message):
    """Something in the read that was not fully understood or not vouched for.

    A read never fails on a document it does not fully understand: what it
    could not judge, parse or verify is listed here instead, and the rest is
    returned.  Reasons name algorithms and file layouts, never identity data.
    """

    subject: Annotated[
        str,
        _doc(
            "what it concerns: a file (`DG13`, `DG14`, `DG15`), `EF.SOD signature`, "
            "`EF.SOD hashes`, `CSCA chain`, `Chip Authentication`, `Active Authentication`"
        ),
    ]
    status: Annotated[
        Literal["unknown", "unreadable", "unverified"],
        _doc(
            "`unknown`: a verdict could not be reached (an algorithm, curve encoding or "
            "layout not implemented), so its boolean is false or null without meaning a "
            "forgery; `unreadable`: the file was dropped (its field in the result is null); "
            "`unverified`: the data is returned but EF.SOD does not vouch for it"
        ),
    ]
    reason: Annotated[str, _doc("why, in English (no identity data)")]


class IdentityResult(Message):
    """Result of ``readIdentity`` (identity data: requester only)."""

    mrz: Mrz
    dg13: Annotated[Dg13 | None, _doc("null when the card has no readable DG13")]
    face: Face
    passive_auth: PassiveAuth
    chip_authentication: Annotated[
        bool | None,
        _doc(
            "Chip Authentication (DG14): true when the chip proved it holds the private key "
            "DG14 publishes (secure messaging continued under the keys agreed with it), false "
            "when it failed (a cloned chip); null: no DG14 or no Chip Authentication in it. "
            "After PACE-CAM this is PACE-CAM's verdict instead: the chip proved it holds the "
            "key of EF.CardSecurity, a file the document signer signed"
        ),
    ] = None
    active_authentication: Annotated[
        bool | None,
        _doc(
            "Active Authentication (DG15): true when the chip signed a fresh challenge with "
            "the key DG15 publishes, false when the signature is missing or wrong (a cloned "
            "chip); null: no DG15"
        ),
    ] = None
    issues: Annotated[
        list[ReadIssue],
        _doc(
            "what could not be judged, read or verified (empty for a fully verified read); "
            "a UI shows data named here as unverified"
        ),
    ] = msgspec.field(default_factory=list)


# --- MRZ rules --------------------------------------------------------------------------

_WEIGHTS = (7, 3, 1)
_LETTER_BASE = ord("A") - 10
_MRZ_CHARS = re.compile(r"^[0-9A-Z<]*$")
_DOCUMENT_NUMBER = re.compile(r"^[0-9A-Z]{1,9}$")
_ID_NUMBER = re.compile(r"^\d{12}$")
_CAN = re.compile(r"^\d{6}$")
_ISO_DATE = re.compile(r"^(\d{4})(?:-(\d{2})(?:-(\d{2}))?)?$")
_MRZ_DATE = re.compile(r"^(\d{2})(\d{2}|<<)(\d{2}|<<)$")
#: Length of the chip's document number field (shorter numbers are padded with ``<``).
DOCUMENT_NUMBER_LENGTH = 9
#: TD1: three lines of 30 characters.
TD1_LINES = 3
TD1_WIDTH = 30
#: TD3 (passports) and TD2: two lines of 44 and of 36 characters.
TD2_LINES = 2
TD3_WIDTH = 44
TD2_WIDTH = 36
_FILLER = "<"


def check_digit(data: str) -> str:
    """Return the ICAO 9303 check digit of ``data`` (weights 7-3-1; ``<`` counts 0).

    Raises:
        ValueError: ``data`` has a character outside ``0-9``, ``A-Z`` and ``<``.

    """
    if not _MRZ_CHARS.match(data):
        raise ValueError("not MRZ characters (0-9, A-Z, <)")
    total = 0
    for i, char in enumerate(data):
        if char.isdigit():
            value = int(char)
        elif char == _FILLER:
            value = 0
        else:
            value = ord(char) - _LETTER_BASE
        total += value * _WEIGHTS[i % 3]
    return str(total % 10)


def mrz_document_number(document_number: str) -> str:
    """Return the chip's document number for what the citizen typed.

    A 12-digit Vietnamese ID number becomes its last 9 digits; anything else
    must already be a document number of 1 to 9 letters and digits.  Spaces are
    ignored and letters upper-cased.

    Raises:
        InvalidData: neither a 12-digit ID number nor a document number.

    """
    text = "".join(document_number.split()).upper()
    if _ID_NUMBER.match(text):
        return text[-DOCUMENT_NUMBER_LENGTH:]
    if _DOCUMENT_NUMBER.match(text):
        return text
    raise InvalidData(
        "documentNumber must be the 12-digit ID number or a document number "
        "of up to 9 letters and digits",
    )


def iso_to_mrz_date(iso: str, what: str = "date") -> str:
    """Return the MRZ form ``YYMMDD`` of an ISO date.

    ``YYYY-MM`` and ``YYYY`` are accepted for dates the card leaves partly
    unknown; the missing parts become ``<<``.

    Raises:
        InvalidData: not an existing ISO date (``what`` names the field).

    """
    match = _ISO_DATE.match(iso.strip())
    if match is None:
        raise InvalidData(f"{what} must be an ISO date YYYY-MM-DD")
    year, month, day = match.groups()
    try:
        date(int(year), int(month or 1), int(day or 1))
    except ValueError:
        raise InvalidData(f"{what} is not a calendar date") from None
    return year[2:] + (month or "<<") + (day or "<<")


def mrz_date_to_iso(yymmdd: str, *, birth: bool, today: date) -> str:
    """Return the ISO form of an MRZ date (see :class:`Mrz` for the century rule).

    Raises:
        ValueError: not ``YYMMDD`` (day or month may be ``<<``) or not a calendar date.

    """
    match = _MRZ_DATE.match(yymmdd)
    if match is None:
        raise ValueError("not an MRZ date YYMMDD")
    yy, mm, dd = match.groups()
    year = 2000 + int(yy)
    known_month = int(mm) if mm != "<<" else None
    known_day = int(dd) if dd != "<<" and known_month is not None else None
    earliest = date(year, known_month or 1, known_day or 1)  # raises ValueError if invalid
    if birth and earliest > today:
        year -= 100
    if known_month is None:
        return f"{year:04d}"
    if known_day is None:
        return f"{year:04d}-{known_month:02d}"
    return f"{year:04d}-{known_month:02d}-{known_day:02d}"


@dataclass(frozen=True, slots=True)
class BacKey:
    """Basic Access Control key material: the MRZ fields, in MRZ form.

    Attributes:
        document_number: 1 to 9 characters (not padded).
        date_of_birth: ``YYMMDD``.
        date_of_expiry: ``YYMMDD``.

    """

    document_number: str
    date_of_birth: str
    date_of_expiry: str

    @property
    def mrz_information(self) -> str:
        """The 24-character "MRZ information" whose SHA-1 seeds the BAC keys (9303-11)."""
        number = self.document_number.ljust(DOCUMENT_NUMBER_LENGTH, _FILLER)
        return "".join(
            part + check_digit(part) for part in (number, self.date_of_birth, self.date_of_expiry)
        )


@dataclass(frozen=True, slots=True)
class PaceKey:
    """PACE key material: the 6-digit Card Access Number printed on the card."""

    can: str


def bac_key(document_number: str, date_of_birth: str, date_of_expiry: str) -> BacKey:
    """Build a BAC key from what the citizen gave (ISO dates; ID or document number).

    Raises:
        InvalidData: a field is malformed; the message names it.

    """
    return BacKey(
        document_number=mrz_document_number(document_number),
        date_of_birth=iso_to_mrz_date(date_of_birth, "dateOfBirth"),
        date_of_expiry=iso_to_mrz_date(date_of_expiry, "dateOfExpiry"),
    )


def pace_key(can: str) -> PaceKey:
    """Build a PACE key from a Card Access Number.

    Raises:
        InvalidData: the CAN is not 6 digits.

    """
    text = can.strip()
    if not _CAN.match(text):
        raise InvalidData("can must be the 6-digit card access number")
    return PaceKey(text)


def mrz_name(text: str) -> str:
    """Transliterate a name to MRZ characters: ``Nguyễn Văn Thử`` -> ``NGUYEN<VAN<THU``.

    Vietnamese diacritics are dropped (``Đ`` becomes ``D``), words are joined by ``<``.
    """
    plain = unicodedata.normalize("NFD", text.replace("Đ", "D").replace("đ", "d"))
    letters = "".join(c for c in plain if not unicodedata.combining(c)).upper()
    words = re.sub(r"[^A-Z]+", " ", letters).split()
    return _FILLER.join(words)


def build_td1(
    *,
    document_code: str,
    issuing_state: str,
    id_number: str,
    date_of_birth: str,
    sex: Literal["M", "F", "X"],
    date_of_expiry: str,
    nationality: str,
    surname: str,
    given_names: str,
) -> list[str]:
    """Return the three TD1 lines of a Vietnamese citizen card.

    Line 1 holds the document number (the ID number's last 9 digits) and, as
    optional data, the 12-digit ID number followed by ``<<`` and its own check
    digit, as on issued cards.  Names are full names (diacritics allowed) and
    are truncated to fit line 3.
    """
    number = mrz_document_number(id_number)
    optional = f"{id_number}<<{check_digit(id_number)}"
    line1 = f"{document_code:<<2}{issuing_state}{number:<<9}{check_digit(number)}{optional:<<15}"
    dob = iso_to_mrz_date(date_of_birth)
    expiry = iso_to_mrz_date(date_of_expiry)
    mrz_sex = "<" if sex == "X" else sex
    head = f"{dob}{check_digit(dob)}{mrz_sex}{expiry}{check_digit(expiry)}{nationality}"
    head = f"{head:<<29}"
    composite = line1[5:30] + head[0:7] + head[8:15] + head[18:29]
    line2 = head + check_digit(composite)
    line3 = f"{mrz_name(surname)}<<{mrz_name(given_names)}"[:TD1_WIDTH]
    return [line1, line2, f"{line3:<<30}"]


def _verified(field_text: str, digit: str, what: str) -> str:
    if check_digit(field_text) != digit:
        raise ProtocolError(f"DG1 MRZ: the {what} check digit is wrong")
    return field_text


def _vietnamese_optional_data(optional: str) -> str:
    """Return the 12-digit ID number from CCCD line-1 optional data, else the data as is."""
    match = re.match(r"^(\d{12})<<(\d)$", optional)
    if match is not None and check_digit(match.group(1)) == match.group(2):
        return match.group(1)
    return optional.rstrip(_FILLER).replace(_FILLER, " ")


@dataclass(frozen=True, slots=True)
class _MrzFields:
    """The fields every MRZ size has, as MRZ text (dates ``YYMMDD``)."""

    code: str
    state: str
    number: str
    optional: str
    birth: str
    sex: str
    expiry: str
    nationality: str
    optional2: str
    name: str


def _mrz(fields: _MrzFields, lines: list[str], today: date) -> Mrz:
    surname, _, given = fields.name.rstrip(_FILLER).partition("<<")
    surname, given = surname.replace(_FILLER, " ").strip(), given.replace(_FILLER, " ").strip()
    try:
        return Mrz(
            document_code=fields.code.rstrip(_FILLER),
            issuing_state=fields.state.rstrip(_FILLER),
            document_number=fields.number,
            optional_data=fields.optional,
            date_of_birth=mrz_date_to_iso(fields.birth, birth=True, today=today),
            sex="M" if fields.sex == "M" else "F" if fields.sex == "F" else "X",
            date_of_expiry=mrz_date_to_iso(fields.expiry, birth=False, today=today),
            nationality=fields.nationality.rstrip(_FILLER),
            optional_data2=fields.optional2.rstrip(_FILLER).replace(_FILLER, " "),
            surname=surname,
            given_names=given,
            name=f"{surname} {given}".strip(),
            lines=list(lines),
        )
    except ValueError:
        raise ProtocolError("DG1 MRZ: a date is not a calendar date") from None


def parse_td1(lines: list[str], today: date) -> Mrz:
    """Decode TD1 MRZ lines (as read from DG1) into :class:`Mrz`, checking every check digit.

    A document number longer than 9 characters continues in the optional data
    (ICAO 9303-5 note j).  ``today`` places two-digit birth years in a century.

    Raises:
        ProtocolError: not three 30-character MRZ lines, or a check digit is wrong.

    """
    if len(lines) != TD1_LINES or any(
        len(line) != TD1_WIDTH or not _MRZ_CHARS.match(line) for line in lines
    ):
        raise ProtocolError("DG1 MRZ: not three lines of 30 MRZ characters")
    line1, line2, line3 = lines
    number, optional = line1[5:14], line1[15:30]
    if line1[14] == _FILLER:  # long document number: its tail and check digit are in optional data
        tail, _, optional = optional.partition(_FILLER)
        number, digit = number + tail[:-1], tail[-1:]
    else:
        digit = line1[14]
    number = _verified(number.rstrip(_FILLER), digit, "document number")
    _verified(line2[0:6], line2[6], "date of birth")
    _verified(line2[8:14], line2[14], "date of expiry")
    _verified(line1[5:30] + line2[0:7] + line2[8:15] + line2[18:29], line2[29], "composite")
    fields = _MrzFields(
        code=line1[0:2],
        state=line1[2:5],
        number=number,
        optional=_vietnamese_optional_data(optional),
        birth=line2[0:6],
        sex=line2[7],
        expiry=line2[8:14],
        nationality=line2[15:18],
        optional2=line2[18:29],
        name=line3,
    )
    return _mrz(fields, lines, today)


def parse_two_line(lines: list[str], today: date) -> Mrz:
    """Decode a TD3 (passport, 2 x 44, ICAO 9303-4) or TD2 (2 x 36, 9303-6) MRZ.

    Line 2 is ``number, digit, nationality, birth, digit, sex, expiry, digit,
    optional data [, its digit], composite digit``; a TD2 document number longer
    than 9 characters continues in the optional data.  ``optional_data`` holds
    line 2's optional data (TD3: the personal number) and ``optional_data2`` is
    empty.

    Raises:
        ProtocolError: not two lines of 44 or 36 MRZ characters, or a check digit is wrong.

    """
    width = len(lines[0]) if len(lines) == TD2_LINES else 0
    if width not in (TD3_WIDTH, TD2_WIDTH) or any(
        len(line) != width or not _MRZ_CHARS.match(line) for line in lines
    ):
        raise ProtocolError("DG1 MRZ: not two lines of 44 (TD3) or 36 (TD2) MRZ characters")
    line1, line2 = lines
    number, digit, optional = line2[0:9], line2[9], line2[28 : width - 1]
    if width == TD3_WIDTH:
        optional = optional[:-1]
        if line2[42] != _FILLER or optional.strip(_FILLER):
            _verified(optional, line2[42], "personal number")
    elif digit == _FILLER:  # TD2 long document number: tail and check digit in optional data
        tail, _, optional = optional.partition(_FILLER)
        number, digit = number + tail[:-1], tail[-1:]
    number = _verified(number.rstrip(_FILLER), digit, "document number")
    _verified(line2[13:19], line2[19], "date of birth")
    _verified(line2[21:27], line2[27], "date of expiry")
    _verified(line2[0:10] + line2[13:20] + line2[21 : width - 1], line2[width - 1], "composite")
    fields = _MrzFields(
        code=line1[0:2],
        state=line1[2:5],
        number=number,
        optional=optional.rstrip(_FILLER).replace(_FILLER, " "),
        birth=line2[13:19],
        sex=line2[20],
        expiry=line2[21:27],
        nationality=line2[10:13],
        optional2="",
        name=line1[5:],
    )
    return _mrz(fields, lines, today)


def parse_mrz(text: str, today: date) -> Mrz:
    """Decode the MRZ text of DG1, whichever size: TD1 (90), TD3 (88) or TD2 (72 characters).

    Raises:
        ProtocolError: another length, or a check digit is wrong.

    """
    if len(text) == TD1_LINES * TD1_WIDTH:
        return parse_td1([text[i : i + TD1_WIDTH] for i in range(0, len(text), TD1_WIDTH)], today)
    for width in (TD3_WIDTH, TD2_WIDTH):
        if len(text) == TD2_LINES * width:
            return parse_two_line([text[:width], text[width:]], today)
    raise ProtocolError(
        "DG1 MRZ: not three lines of 30 (TD1) or two of 44 (TD3) or 36 (TD2) MRZ characters"
    )
