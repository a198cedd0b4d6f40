"""The ``cardReader`` device class: chip ID cards (ICAO 9303 eMRTD, Vietnamese CCCD).

Drivers report card arrival and removal through :meth:`CardReader.card_arrived`
and :meth:`CardReader.card_left`, and implement the chip access
(:meth:`CardReader._read_chip`, :meth:`CardReader._transmit`).  The class holds
what every driver shares: access-key validation (a 12-digit ID number becomes
the 9-digit MRZ document number), the ``media`` detail, the broadcast
``cardPresented``/``cardRemoved`` events (which never carry card contents) and
``waitForCard``.

Privacy: the identity read by ``readIdentity`` is returned to its requester and
nowhere else; drivers must not log it, keep it or put it in events or state.
"""

from __future__ import annotations

import abc
from collections.abc import Callable
from enum import StrEnum
from typing import Annotated, ClassVar

from msgspec import Meta

from devices.base import (
    CommandContext,
    Device,
    DeviceEnv,
    DeviceHost,
    Message,
    NoParams,
    Params,
    SettingsT_co,
    command,
)
from devices.errors import InvalidData, MediaError, Unsupported

from .identity import BacKey, IdentityResult, PaceKey, bac_key, pace_key

#: Shortest command APDU (CLA INS P1 P2) and longest (extended length, ISO 7816-4), bytes.
APDU_MIN_BYTES = 4
APDU_MAX_BYTES = 65_544


class Media(StrEnum):
    """Whether a card is on the reader."""

    PRESENT = "present"
    ABSENT = "absent"


class CardReaderDetail(Message):
    """State detail of a card reader."""

    media: Media = Media.ABSENT


class CardPresented(Message):
    """``evt/cardPresented``: a card was placed on the reader (no card contents)."""


class CardRemoved(Message):
    """``evt/cardRemoved``: the card was taken off the reader."""


class CardResult(Message):
    """Result of ``waitForCard``."""

    atr: Annotated[
        bytes,
        Meta(description="the chip's Answer To Reset (the chip type, not the holder)"),
    ]


class AccessKey(Params):
    """What opens the chip: the MRZ data (BAC) or the Card Access Number (PACE).

    Give either ``documentNumber``, ``dateOfBirth`` and ``dateOfExpiry`` (ISO
    dates), or ``can`` alone.  ``documentNumber`` may be the 12-digit ID number
    of a Vietnamese citizen card; the chip's document number is its last 9 digits.
    """

    document_number: Annotated[
        str | None,
        Meta(description="12-digit ID number, or the 9-character document number"),
    ] = None
    date_of_birth: Annotated[str | None, Meta(description="ISO date `YYYY-MM-DD`")] = None
    date_of_expiry: Annotated[str | None, Meta(description="ISO date `YYYY-MM-DD`")] = None
    can: Annotated[str | None, Meta(description="card access number: 6 digits")] = None

    def resolve(self) -> BacKey | PaceKey:
        """Return the key material.

        Raises:
            InvalidData: neither complete form is given, both are, or a field is malformed.

        """
        bac = (self.document_number, self.date_of_birth, self.date_of_expiry)
        if self.can is not None:
            if any(part is not None for part in bac):
                raise InvalidData("accessKey takes either the MRZ data or can, not both")
            return pace_key(self.can)
        document_number, date_of_birth, date_of_expiry = bac
        if document_number is None or date_of_birth is None or date_of_expiry is None:
            raise InvalidData(
                "accessKey needs documentNumber, dateOfBirth and dateOfExpiry, or can",
            )
        return bac_key(document_number, date_of_birth, date_of_expiry)


class ReadIdentityParams(Params):
    """``readIdentity`` parameters."""

    access_key: AccessKey


class ReadProgress(Message):
    """Intermediate ``readProgress`` event of ``readIdentity`` (requester only)."""

    file: Annotated[str, Meta(description="file being read: `COM`, `SOD`, `DG1`, `DG2`, `DG13`")]
    bytes: Annotated[int, Meta(ge=0, description="bytes of `file` read so far")]
    total: Annotated[int, Meta(ge=0, description="size of `file`, bytes")]


class ChipIoParams(Params):
    """``chipIO`` parameters."""

    apdu: Annotated[
        bytes,
        Meta(
            min_length=APDU_MIN_BYTES,
            max_length=APDU_MAX_BYTES,
            description="one command APDU (ISO 7816-4), 4 to 65 544 bytes",
        ),
    ]


class ChipIoResult(Message):
    """Result of ``chipIO``."""

    response: Annotated[bytes, Meta(description="response APDU: data, then status word SW1 SW2")]


#: ``readIdentity`` progress callback: ``(file, bytes read, file size in bytes)``.
Progress = Callable[[str, int, int], None]


class CardReader(Device[SettingsT_co, CardReaderDetail]):
    """Base of card reader drivers."""

    device_class: ClassVar[str] = "cardReader"
    events: ClassVar[dict[str, type[Message]]] = {
        "cardPresented": CardPresented,
        "cardRemoved": CardRemoved,
    }
    detail_type = CardReaderDetail

    def __init__(
        self, device_id: str, host: DeviceHost, env: DeviceEnv, settings: SettingsT_co
    ) -> None:
        super().__init__(device_id, host, env, settings)
        self._atr: bytes | None = None
        self._card_serial = 0

    # --- what drivers implement ------------------------------------------------------

    @property
    @abc.abstractmethod
    def chip_io_enabled(self) -> bool:
        """True when settings allow raw ``chipIO`` (off by default)."""

    @abc.abstractmethod
    async def _read_chip(self, key: BacKey | PaceKey, progress: Progress) -> IdentityResult:
        """Open the chip with ``key`` and read COM, SOD, DG1, DG2 and DG13.

        Called only while a card is present; reports each file's progress.

        Raises:
            AccessDenied: the chip refused the key.
            MediaError: the card was removed during the read.
            HardwareError: the reader or chip failed.

        """

    @abc.abstractmethod
    async def _transmit(self, apdu: bytes) -> bytes:
        """Send one command APDU to the present card and return its response APDU.

        Raises:
            MediaError: the card was removed.
            HardwareError: the reader failed.

        """

    # --- what drivers call -----------------------------------------------------------

    @property
    def card_present(self) -> bool:
        """True while a card is on the reader."""
        return self._atr is not None

    @property
    def card_serial(self) -> int:
        """Counts card arrivals: a changed value means the card was swapped."""
        return self._card_serial

    def card_arrived(self, atr: bytes) -> None:
        """Report a card placed on the reader; ``atr`` is its Answer To Reset."""
        if self._atr is not None:
            return
        self._atr = atr
        self._card_serial += 1
        self.update_detail(media=Media.PRESENT)
        self.emit("cardPresented", CardPresented())
        self.wake()

    def card_left(self) -> None:
        """Report the card taken off the reader."""
        if self._atr is None:
            return
        self._atr = None
        self.update_detail(media=Media.ABSENT)
        self.emit("cardRemoved", CardRemoved())
        self.wake()

    # --- commands ----------------------------------------------------------------------

    @command("waitForCard", NoParams, CardResult, 30_000, 600_000, long=True)
    async def wait_for_card(self, _params: NoParams, _ctx: CommandContext) -> CardResult:
        """Complete as soon as a card is on the reader (at once if one already is).

        A long command: the daemon ends it at its deadline or on cancel.

        Raises:
            Offline, HardwareError: the reader is unreachable or failed.

        """
        await self.wait_until(lambda: self.card_present, None)
        assert self._atr is not None
        return CardResult(atr=self._atr)

    @command(
        "readIdentity",
        ReadIdentityParams,
        IdentityResult,
        20_000,
        60_000,
        long=True,
        events={"readProgress": ReadProgress},
    )
    async def read_identity(
        self,
        params: ReadIdentityParams,
        ctx: CommandContext,
    ) -> IdentityResult:
        """Read the identity from the card on the reader, reporting ``readProgress``.

        Raises:
            InvalidData: the access key is incomplete or malformed.
            MediaError: no card, or the card was removed during the read.
            AccessDenied: the key does not open the chip (a userError).
            Offline, HardwareError: the reader is unreachable or failed.

        """
        key = params.access_key.resolve()
        if not self.card_present:
            raise MediaError("no card on the reader")

        def progress(file: str, done: int, total: int) -> None:
            ctx.emit("readProgress", ReadProgress(file=file, bytes=done, total=total))

        return await self._read_chip(key, progress)

    # Staff: raw APDUs reach whatever the chip holds, past the access key's checks.
    @command("chipIO", ChipIoParams, ChipIoResult, 5_000, 30_000, staff=True)
    async def chip_io(self, params: ChipIoParams, _ctx: CommandContext) -> ChipIoResult:
        """Exchange one raw APDU with the card (only when settings enable ``chipIO``).

        Raises:
            Unsupported: ``chipIO`` is disabled in this reader's settings.
            MediaError: no card on the reader.
            Offline, HardwareError: the reader is unreachable or failed.

        """
        if not self.chip_io_enabled:
            raise Unsupported("chipIO is disabled in this card reader's settings")
        if not self.card_present:
            raise MediaError("no card on the reader")
        return ChipIoResult(response=await self._transmit(params.apdu))

    def capabilities(self) -> dict[str, object]:
        """``chipIO``: whether raw APDUs are allowed."""
        return {"chipIO": self.chip_io_enabled}

    async def safe_state(self) -> None:
        """Do nothing: a card reader holds nothing that must be made safe."""
