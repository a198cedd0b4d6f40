"""Behavioural card reader simulator: specimen cards placed with ``sim/{d}/presentCard``.

It models what a UI sees of a real read: the access key is checked against the
card's MRZ data (or CAN), files arrive with their real sizes over about
``read_ms``, and taking the card away mid-read fails the read without a partial
identity.  It does not speak APDUs for ``readIdentity``: the byte-level twin is a
virtual card behind pcscd, driven by the PC/SC driver, which also does the real
passive authentication.  Here ``passiveAuth`` is hashes and signature valid,
chain unknown (``null``: no CSCA configured).
"""

from __future__ import annotations

import functools
import os
from datetime import UTC, datetime
from io import BytesIO
from typing import Annotated, ClassVar

import msgspec
from msgspec import Meta
from PIL import Image, ImageDraw

from devices.base import DeviceEnv, DeviceHost, NoParams, NoResult
from devices.card_reader.icao.lds import display_jpeg
from devices.card_reader.identity import (
    BacKey,
    Face,
    IdentityResult,
    PaceKey,
    PassiveAuth,
    ReadIssue,
    parse_td1,
)
from devices.card_reader.protocol import CardReader, CardReaderDetail, Progress
from devices.errors import AccessDenied, InvalidData, MediaError, SequenceError
from devices.sim.card_reader.actions import PRESENT_CARD, REMOVE_CARD, PresentCardParams
from devices.sim.card_reader.specimen_cards import (
    GARBLED_DG13_REASON,
    SPECIMEN_CARDS,
    UNVERIFIED_DG13_REASON,
    Looks,
    SpecimenCard,
)
from devices.sim.support.faults import Simulated

#: Share of ``read_ms`` spent on access control (BAC/PACE) before the first file.
_AUTH_SHARE = 0.15
#: Progress is reported at most once per this many bytes, to keep replies few.
_PROGRESS_STEP_BYTES = 1_024
#: File sizes of a Vietnamese citizen card, bytes: EF.COM (with DG13 listed or not),
#: EF.SOD (its document signer certificate makes most of it), DG1 (TLV around a TD1 MRZ).
_COM_BYTES = 25
_COM_BYTES_NO_DG13 = 24
_SOD_BYTES = 1_962
_DG1_BYTES = 95
#: DG2's biometric headers (ISO 19794-5 and CBEFF) around the portrait, bytes.
_DG2_HEADER_BYTES = 101
#: DG13 TLV overhead: per field (SEQUENCE, INTEGER field number, UTF8String) and the file.
_DG13_FIELD_OVERHEAD = 7
_DG13_FILE_OVERHEAD = 8

_EMRTD_AID = bytes.fromhex("a0000002471001")
_SW_OK = b"\x90\x00"
_SW_FILE_NOT_FOUND = b"\x6a\x82"
_SW_SECURITY_NOT_SATISFIED = b"\x69\x82"
_SW_INS_NOT_SUPPORTED = b"\x6d\x00"
_INS_SELECT = 0xA4
_INS_GET_CHALLENGE = 0x84
_INS_READ_BINARY = frozenset({0xB0, 0xB1})
_CHALLENGE_BYTES = 8
_APDU_HEADER_BYTES = 5

_PORTRAIT_SIZE = (180, 240)
_JPEG_QUALITY = 80


@functools.cache
def render_face(looks: Looks, image_format: str = "JPEG") -> bytes:
    """Draw a specimen card's synthetic portrait (deterministic, ~5 KiB).

    ``image_format`` is Pillow's: ``JPEG`` or ``JPEG2000`` (OpenJPEG, lossless).
    Cached per look: these are drawings of nobody, not identity data.  Drawing
    takes a few milliseconds, so it runs on the loop.
    """
    width = _PORTRAIT_SIZE[0]
    image = Image.new("RGB", _PORTRAIT_SIZE, looks.background)
    draw = ImageDraw.Draw(image)
    cx = width // 2
    if looks.long_hair:
        draw.rounded_rectangle((cx - 58, 40, cx + 58, 200), radius=50, fill=looks.hair)
    draw.ellipse((cx - 80, 190, cx + 80, 330), fill=(40, 60, 110))  # shoulders
    draw.rectangle((cx - 18, 150, cx + 18, 205), fill=looks.skin)  # neck
    draw.ellipse((cx - 48, 50, cx + 48, 175), fill=looks.skin)  # face
    draw.chord((cx - 52, 36, cx + 52, 130), 180, 360, fill=looks.hair)  # hair
    for side in (-1, 1):
        ex = cx + side * 20
        draw.ellipse((ex - 8, 102, ex + 8, 110), fill=(250, 250, 250))
        draw.ellipse((ex - 4, 102, ex + 4, 110), fill=(35, 25, 20))
        draw.line((ex - 11, 95, ex + 11, 94), fill=looks.hair, width=3)  # brow
    draw.line((cx, 112, cx - 5, 132, cx + 3, 134), fill=(150, 105, 85), width=2)  # nose
    draw.arc((cx - 16, 136, cx + 16, 156), 20, 160, fill=(150, 60, 60), width=3)  # mouth
    out = BytesIO()
    if image_format == "JPEG":
        image.save(out, "JPEG", quality=_JPEG_QUALITY)
    else:
        image.save(out, image_format)
    return out.getvalue()


def card_portrait(card: SpecimenCard) -> Face:
    """The card's DG2 portrait as the chip stores it (JPEG, or JPEG 2000 for ``portrait_jp2``)."""
    if card.portrait_jp2:
        return Face(mime="image/jp2", data=render_face(card.looks, "JPEG2000"))
    return Face(mime="image/jpeg", data=render_face(card.looks))


def _dg13_bytes(card: SpecimenCard) -> int:
    """Return the size of the card's DG13 as its chip would store it, bytes."""
    record = card.dg13_record()
    if record is None:
        return 0
    values = [v for v in msgspec.structs.astuple(record) if isinstance(v, str)]
    return _DG13_FILE_OVERHEAD + sum(_DG13_FIELD_OVERHEAD + len(v.encode()) for v in values)


class SimCardReaderSettings(msgspec.Struct, forbid_unknown_fields=True):
    """Settings of the simulated card reader.

    Attributes:
        read_ms: duration of a whole ``readIdentity``, ms.
        chip_io: allow raw ``chipIO`` (answered by a minimal eMRTD application).

    """

    read_ms: Annotated[int, Meta(ge=0, le=60_000)] = 600
    chip_io: bool = False


class SimCardReader(
    Simulated[SimCardReaderSettings, CardReaderDetail], CardReader[SimCardReaderSettings]
):
    """A card reader whose cards come from ``sim/{d}/presentCard``."""

    Settings = SimCardReaderSettings
    fault_checked_commands: ClassVar[bool] = True
    polled: ClassVar[bool] = False  # the chip is read for a command only

    def __init__(
        self,
        device_id: str,
        host: DeviceHost,
        env: DeviceEnv,
        settings: SimCardReaderSettings,
    ) -> None:
        super().__init__(device_id, host, env, settings)
        self._card: SpecimenCard | None = None

    @property
    def chip_io_enabled(self) -> bool:
        """From the ``chip_io`` setting."""
        return self.settings.chip_io

    @PRESENT_CARD
    async def sim_present_card(self, params: PresentCardParams) -> NoResult:
        """Place a card (a dead reader notices nothing).

        Raises:
            InvalidData: no specimen card of that name.
            SequenceError: a card is already on the reader.

        """
        card = SPECIMEN_CARDS.get(params.card)
        if card is None:
            known = ", ".join(SPECIMEN_CARDS)
            raise InvalidData(f"no specimen card {params.card!r} (known: {known})")
        await self.check_faults()
        if self._card is not None:
            raise SequenceError("a card is already on the reader; remove it first")
        self._card = card
        self.card_arrived(card.atr)
        return NoResult()

    @REMOVE_CARD
    async def sim_remove_card(self, _params: NoParams) -> NoResult:
        """Take the card away (always possible, whatever the reader's faults).

        Raises:
            SequenceError: no card on the reader.

        """
        if self._card is None:
            raise SequenceError("no card on the reader")
        self._card = None
        self.card_left()
        return NoResult()

    async def _hold(self, serial: int, seconds: float) -> None:
        """Spend ``seconds`` talking to the card.

        Raises:
            MediaError: the card left (or was swapped) meanwhile.
            Offline, HardwareError: a fault was injected meanwhile.

        """
        if await self.wait_until(
            lambda: self.card_serial != serial or self._card is None,
            seconds,
        ):
            raise MediaError("card removed during the read")

    @staticmethod
    def _authenticate(card: SpecimenCard, key: BacKey | PaceKey) -> None:
        if isinstance(key, PaceKey):
            if card.can is None:
                raise AccessDenied(
                    "access denied: this card does not support a CAN; use the MRZ data",
                )
            if key.can != card.can:
                raise AccessDenied("access denied: the CAN does not match the card")
        elif key.mrz_information != card.bac_key().mrz_information:
            raise AccessDenied("access denied: the MRZ data does not match the card")

    async def _read_chip(self, key: BacKey | PaceKey, progress: Progress) -> IdentityResult:
        card = self._card
        assert card is not None
        serial = self.card_serial
        portrait = card_portrait(card)
        files = [
            ("COM", _COM_BYTES if card.dg13 else _COM_BYTES_NO_DG13),
            ("SOD", _SOD_BYTES),
            ("DG1", _DG1_BYTES),
            ("DG2", _DG2_HEADER_BYTES + len(portrait.data)),
        ]
        if card.dg13:
            files.append(("DG13", _dg13_bytes(card)))
        budget_s = self.settings.read_ms / 1000
        await self._hold(serial, budget_s * _AUTH_SHARE)
        self._authenticate(card, key)
        per_byte_s = budget_s * (1 - _AUTH_SHARE) / sum(size for _, size in files)
        for name, size in files:
            done = 0
            while done < size:
                step = min(_PROGRESS_STEP_BYTES, size - done)
                await self._hold(serial, step * per_byte_s)
                done += step
                progress(name, done, size)
        issues: list[ReadIssue] = []
        if card.dg13_garbled:
            issues.append(
                ReadIssue(subject="DG13", status="unreadable", reason=GARBLED_DG13_REASON)
            )
        if card.dg13_unverified:
            issues.append(
                ReadIssue(subject="DG13", status="unverified", reason=UNVERIFIED_DG13_REASON)
            )
        return IdentityResult(
            mrz=parse_td1(card.mrz_lines(), datetime.now(tz=UTC).date()),
            dg13=None if card.dg13_garbled else card.dg13_record(),
            face=display_jpeg(portrait),
            passive_auth=PassiveAuth(hashes_valid=True, signature_valid=True, chain_valid=None),
            issues=issues,
        )

    async def _transmit(self, apdu: bytes) -> bytes:
        """Answer as an eMRTD application before access control would.

        SELECT of the eMRTD application succeeds, GET CHALLENGE returns 8
        random bytes, READ BINARY needs secure messaging; anything else is an
        unsupported instruction.
        """
        ins = apdu[1]
        if ins == _INS_SELECT:
            length = apdu[4] if len(apdu) >= _APDU_HEADER_BYTES else 0
            aid = apdu[_APDU_HEADER_BYTES : _APDU_HEADER_BYTES + length]
            return _SW_OK if aid == _EMRTD_AID else _SW_FILE_NOT_FOUND
        if ins == _INS_GET_CHALLENGE:
            return os.urandom(_CHALLENGE_BYTES) + _SW_OK
        if ins in _INS_READ_BINARY:
            return _SW_SECURITY_NOT_SATISFIED
        return _SW_INS_NOT_SUPPORTED
