"""Specimen citizen cards: synthetic people the simulators, tests and demos read.

Nobody here is a real person.  The behavioural simulator and the virtual
card (``devices/sim/card_reader/vcard``) build every chip file from these records; the
production reader never imports this module.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from devices.card_reader.identity import BacKey, Dg13, bac_key, build_td1

RGB = tuple[int, int, int]


@dataclass(frozen=True, slots=True)
class Looks:
    """How a specimen card's synthetic portrait is drawn (colours are sRGB)."""

    skin: RGB = (224, 182, 150)
    hair: RGB = (30, 24, 20)
    long_hair: bool = False
    background: RGB = (236, 240, 245)


@dataclass(frozen=True, slots=True)
class SpecimenCard:
    """A synthetic citizen card as its chip holds it (no real person).

    Dates are ISO.  ``can`` is the Card Access Number for PACE (``None``: the
    chip only offers BAC); ``dg13`` False models a chip without a readable DG13;
    ``dg13_garbled`` one whose DG13 holds a text field that is not UTF-8 (a layout
    the reader does not understand: the read returns no DG13 and says why);
    ``portrait_jp2`` one whose DG2 portrait is JPEG 2000 (browsers cannot show it:
    the read adds ``face.displayJpeg``); ``dg13_unverified`` one whose DG13 EF.SOD
    does not vouch for (returned, with an ``unverified`` issue; the behavioural
    simulator only: the virtual card's EF.SOD hashes every group).
    """

    full_name: str
    id_number: str
    date_of_birth: str
    sex: Literal["M", "F"]
    date_of_expiry: str
    date_of_issue: str
    can: str | None
    ethnicity: str = "Kinh"
    religion: str = "Không"
    place_of_origin: str = ""
    place_of_residence: str = ""
    personal_identification: str = ""
    father_name: str | None = None
    mother_name: str | None = None
    spouse_name: str | None = None
    old_id_number: str | None = None
    dg13: bool = True
    dg13_garbled: bool = False
    portrait_jp2: bool = False
    dg13_unverified: bool = False
    looks: Looks = field(default_factory=Looks)
    #: The chip's ATR as a PC/SC reader reports it (ISO 14443-4 type B, synthesised).
    atr: bytes = bytes.fromhex("3b888001e1f35e117781830021")

    @property
    def surname(self) -> str:
        """The family name: the first word of a Vietnamese full name."""
        return self.full_name.split()[0]

    @property
    def given_names(self) -> str:
        """The middle and given names."""
        return " ".join(self.full_name.split()[1:])

    def mrz_lines(self) -> list[str]:
        """Return the card's TD1 MRZ lines."""
        return build_td1(
            document_code="ID",
            issuing_state="VNM",
            id_number=self.id_number,
            date_of_birth=self.date_of_birth,
            sex=self.sex,
            date_of_expiry=self.date_of_expiry,
            nationality="VNM",
            surname=self.surname,
            given_names=self.given_names,
        )

    def bac_key(self) -> BacKey:
        """Return the BAC key that opens this card's chip."""
        return bac_key(self.id_number, self.date_of_birth, self.date_of_expiry)

    def dg13_record(self) -> Dg13 | None:
        """Return a fresh DG13 as read from the chip, or ``None`` without DG13."""
        if not self.dg13:
            return None
        return Dg13(
            id_number=self.id_number,
            full_name=self.full_name,
            date_of_birth=self.date_of_birth,
            sex="Nam" if self.sex == "M" else "Nữ",
            nationality="Việt Nam",
            ethnicity=self.ethnicity,
            religion=self.religion,
            place_of_origin=self.place_of_origin or None,
            place_of_residence=self.place_of_residence or None,
            personal_identification=self.personal_identification or None,
            date_of_issue=self.date_of_issue,
            date_of_expiry=self.date_of_expiry,
            father_name=self.father_name,
            mother_name=self.mother_name,
            spouse_name=self.spouse_name,
            old_id_number=self.old_id_number,
        )


#: Name of the card ``presentCard`` uses when none is given.
DEFAULT_CARD = "default"

#: Specimen cards by name.  ``default`` is part of the wire contract (wire-api-v1.md).
SPECIMEN_CARDS: dict[str, SpecimenCard] = {
    DEFAULT_CARD: SpecimenCard(
        full_name="Nguyễn Văn Thử",
        id_number="079099000123",
        date_of_birth="1990-01-15",
        sex="M",
        date_of_expiry="2030-01-15",
        date_of_issue="2021-04-20",
        can="123456",
        place_of_origin="Phường 6, Quận 6, Thành phố Hồ Chí Minh",
        place_of_residence="123 Hậu Giang, Phường 6, Quận 6, Thành phố Hồ Chí Minh",
        personal_identification="Nốt ruồi C:1cm trên trước mép phải",
        father_name="Nguyễn Văn Thành",
        mother_name="Lê Thị Hoa",
        old_id_number="025123456",
    ),
    "female": SpecimenCard(
        full_name="Trần Thị Bích Ngọc",
        id_number="001185012345",
        date_of_birth="1985-07-22",
        sex="F",
        date_of_expiry="2045-07-22",
        date_of_issue="2025-08-05",
        can="654321",
        place_of_origin="Xã Đông Anh, Huyện Đông Anh, Thành phố Hà Nội",
        place_of_residence="45 Phố Huế, Phường Ngô Thì Nhậm, Quận Hai Bà Trưng, Thành phố Hà Nội",
        personal_identification="Sẹo chấm C:2cm dưới sau đuôi mắt trái",
        father_name="Trần Văn Long",
        mother_name="Phạm Thị Lan",
        spouse_name="Đỗ Minh Quân",
        looks=Looks(
            skin=(232, 196, 170), hair=(42, 30, 26), long_hair=True, background=(240, 236, 236)
        ),
    ),
    "expired": SpecimenCard(
        full_name="Lê Hoàng Nam",
        id_number="048095004567",
        date_of_birth="1995-03-03",
        sex="M",
        date_of_expiry="2020-03-03",
        date_of_issue="2016-04-12",
        can="246810",
        place_of_origin="Phường Hải Châu 1, Quận Hải Châu, Thành phố Đà Nẵng",
        place_of_residence="7 Lê Duẩn, Phường Hải Châu 1, Quận Hải Châu, Thành phố Đà Nẵng",
        personal_identification="Nốt ruồi C:0,5cm dưới trước cánh mũi trái",
        father_name="Lê Văn Hùng",
        mother_name="Võ Thị Thu",
        looks=Looks(skin=(198, 150, 118), hair=(20, 18, 16)),
    ),
    "noDg13": SpecimenCard(
        full_name="Phạm Minh Đức",
        id_number="031092007890",
        date_of_birth="1992-11-30",
        sex="M",
        date_of_expiry="2032-11-30",
        date_of_issue="2021-06-01",
        can=None,
        dg13=False,
        looks=Looks(skin=(214, 170, 138), hair=(58, 44, 34), background=(230, 238, 230)),
    ),
    "garbledDg13": SpecimenCard(
        full_name="Vũ Thị Hồng Nhung",
        id_number="036198003456",
        date_of_birth="1998-04-09",
        sex="F",
        date_of_expiry="2038-04-09",
        date_of_issue="2022-02-14",
        can="135790",
        place_of_origin="Xã Hải Bắc, Huyện Hải Hậu, Tỉnh Nam Định",
        place_of_residence="12 Trần Hưng Đạo, Phường Bà Triệu, Thành phố Nam Định",
        father_name="Vũ Văn Khải",
        mother_name="Đặng Thị Mai",
        dg13_garbled=True,
        looks=Looks(skin=(226, 188, 160), hair=(36, 26, 22), long_hair=True),
    ),
    # Constructed for the UI's JPEG 2000 and issue handling: no real card was sampled.
    "jp2Portrait": SpecimenCard(
        full_name="Hoàng Thị Mai Anh",
        id_number="044187006543",
        date_of_birth="1987-09-12",
        sex="F",
        date_of_expiry="2027-09-12",
        date_of_issue="2024-03-18",
        can="975310",
        place_of_origin="Xã Quảng Phú, Huyện Quảng Trạch, Tỉnh Quảng Bình",
        place_of_residence="9 Nguyễn Trãi, Phường 2, Thành phố Đồng Hới, Tỉnh Quảng Bình",
        father_name="Hoàng Văn Sơn",
        mother_name="Ngô Thị Hiền",
        portrait_jp2=True,
        dg13_unverified=True,
        looks=Looks(skin=(220, 178, 146), hair=(48, 34, 28), long_hair=True),
    ),
}

#: Why a garbled DG13 is dropped: what the reader says (``readIdentity.issues``).
GARBLED_DG13_REASON = "DG13: a text field is not valid text"

#: Why an unverified DG13 is not vouched for (``readIdentity.issues``).
UNVERIFIED_DG13_REASON = "DG13: EF.SOD holds no hash for it"
