"""PC/SC card reader driver (``pcsc``): ICAO 9303 chips through pcscd, with pyscard.

Two PC/SC contexts, each on its own worker thread (``devices/transports/pcsc``):
one waits for status changes of the configured reader (card arrival and
removal, the reader vanishing), the other talks to the card.  A reader that
vanishes, or pcscd stopping, makes :meth:`PcscCardReader.run` raise
``Offline``; the supervisor runs it again until the reader is back.

``readIdentity`` opens the chip with PACE (the CAN, or the MRZ data when the
chip offers PACE) or BAC, reads the files under secure messaging and checks
them with passive authentication (``devices/card_reader/icao``).  PACE's
elliptic curve steps run on the I/O context's worker thread, between its
APDUs.  Nothing read from the card is logged or kept once the command
completes.
"""

from __future__ import annotations

import asyncio
import functools
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import msgspec
from msgspec import Meta

from devices.base import Command, DeviceEnv, DeviceHost, DeviceState
from devices.errors import HardwareError, MediaError, Offline, ProtocolError, Timeout
from devices.transports.pcsc import CardGone, PcscCard, PcscContext, ReaderStatus

from .icao.apdu import SHORT_READ_MAX
from .identity import BacKey, IdentityResult, PaceKey
from .protocol import CardReader, Progress

if TYPE_CHECKING:
    from .icao.pa import Csca

_CERT_SUFFIXES = frozenset({".pem", ".crt", ".cer", ".der"})
_MASTER_LIST_SUFFIX = ".ml"
_PEM_MARKER = b"-----BEGIN CERTIFICATE-----"


class PcscSettings(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Settings of the ``pcsc`` card reader driver.

    Attributes:
        reader: regular expression matched against PC/SC reader names; the
            first match is used (empty: the first reader).
        csca_dir: folder of CSCA certificates (PEM or DER files) and ICAO
            master lists (``.ml``) that document signers must chain to;
            unset: ``chainValid`` is null.
        chip_io: allow raw ``chipIO`` APDUs (off: ``unsupportedCommand``).
        poll_ms: longest single wait for a reader status change, ms.
        apdu_timeout_ms: longest wait for one APDU's answer, ms.
        read_chunk_bytes: READ BINARY size; above 223 needs extended length
            support in reader and chip.

    """

    reader: str = ""
    csca_dir: str | None = None
    chip_io: bool = False
    poll_ms: Annotated[int, Meta(ge=50, le=5_000)] = 500
    apdu_timeout_ms: Annotated[int, Meta(ge=100, le=60_000)] = 5_000
    read_chunk_bytes: Annotated[int, Meta(ge=16, le=32_767)] = SHORT_READ_MAX


def load_cscas(folder: Path) -> list[Csca]:
    """Every CSCA in ``folder``: ``.pem``/``.crt``/``.cer``/``.der`` files and ICAO master lists.

    A master list (``.ml``, CMS-signed, ICAO 9303-12) adds its CSCAs only when
    its signature verifies and its signer was issued by one of the folder's
    certificate files (the publishing state's CSCA; blocking: run it in a thread).

    Raises:
        HardwareError: the folder cannot be read, a file is not a certificate,
            or a master list is malformed or not trusted (the message names it).

    """
    # The ICAO code and its cryptography (~14 MiB) load once a reader is present.
    from cryptography import x509  # noqa: PLC0415

    from .icao import masterlist  # noqa: PLC0415
    from .icao.pa import as_asn1, normalised_name  # noqa: PLC0415

    certificates: list[Csca] = []
    lists: list[Path] = []
    try:
        for path in sorted(folder.iterdir()):
            if path.suffix.lower() == _MASTER_LIST_SUFFIX:
                lists.append(path)
                continue
            if path.suffix.lower() not in _CERT_SUFFIXES:
                continue
            data = path.read_bytes()
            if _PEM_MARKER in data:
                certificates += x509.load_pem_x509_certificates(data)
            else:
                certificates.append(x509.load_der_x509_certificate(data))
        loose = [as_asn1(c) for c in certificates]
        for path in lists:
            try:
                listed = masterlist.parse_master_list(path.read_bytes(), loose)
            except ProtocolError as exc:
                raise HardwareError(f"csca_dir {str(path)!r}: {exc}") from None
            if not listed.trusted:
                raise HardwareError(
                    f"csca_dir {str(path)!r}: master list not trusted: {listed.reason}"
                )
            certificates += listed.cscas
    except (OSError, ValueError) as exc:
        raise HardwareError(f"csca_dir {str(folder)!r}: {exc}") from None
    for csca in certificates:  # parse names and extensions here, not during the first read
        parsed = as_asn1(csca)
        normalised_name(parsed.subject)
        _ = parsed.key_identifier
    return certificates


class PcscCardReader(CardReader[PcscSettings]):
    """A chip card reader behind pcscd."""

    Settings = PcscSettings

    def __init__(
        self, device_id: str, host: DeviceHost, env: DeviceEnv, settings: PcscSettings
    ) -> None:
        super().__init__(device_id, host, env, settings)
        self._io: PcscContext | None = None
        self._reader: str | None = None
        self._cscas: list[Csca] | None = None

    @property
    def chip_io_enabled(self) -> bool:
        """From the ``chip_io`` setting."""
        return self.settings.chip_io

    def capabilities(self) -> dict[str, object]:
        """``chipIO``, and which access keys work: ``pace`` true (a CAN opens PACE chips)."""
        return {**super().capabilities(), "pace": True}

    async def run(self) -> None:
        """Find the reader, then follow its status until it or pcscd goes away.

        Raises:
            Offline: no matching reader, or it vanished, or pcscd stopped.
            HardwareError: ``csca_dir`` is unreadable, or PC/SC failed.

        """
        folder = self.settings.csca_dir
        poll_ms = self.settings.poll_ms
        async with (
            PcscContext(f"{self.id}-watch") as watch,
            PcscContext(f"{self.id}-io") as io,
        ):
            reader = await watch.find_reader(self.settings.reader)
            if reader is None:
                raise Offline(f"no PC/SC reader matches {self.settings.reader!r}")
            # Loaded once a reader is present: no ICAO code in memory while there is none.
            cscas = await asyncio.to_thread(load_cscas, Path(folder)) if folder else None
            self._io, self._reader, self._cscas = io, reader, cscas
            try:
                status = await watch.wait_status(reader, None, 0)
                self._report(status)
                self.set_condition(DeviceState.ONLINE)
                while True:
                    status = await watch.wait_status(reader, status, poll_ms)
                    self._report(status)
            finally:
                self._io = self._reader = None
                self.card_left()

    def _report(self, status: ReaderStatus) -> None:
        if status.present:
            self.card_arrived(status.atr)
        else:
            self.card_left()

    def _connection(self) -> tuple[PcscContext, str]:
        if self._io is None or self._reader is None:
            raise Offline(f"card reader {self.id!r} is not connected")
        return self._io, self._reader

    async def check_ready(self, command: Command) -> None:
        """Refresh card presence from pcscd (events may lag a command by a poll).

        Raises:
            Offline: the reader is not connected or vanished.
            HardwareError: PC/SC failed.

        """
        await super().check_ready(command)
        io, reader = self._connection()
        self._report(await io.wait_status(reader, None, 0))

    async def _read_chip(self, key: BacKey | PaceKey, progress: Progress) -> IdentityResult:
        from .icao.reader import read_identity  # noqa: PLC0415 - loaded with the reader's CSCAs

        io, reader = self._connection()
        serial = self.card_serial
        timeout_s = self.settings.apdu_timeout_ms / 1000
        try:
            async with await io.connect(reader, timeout_s) as card:
                return await read_identity(
                    functools.partial(self._same_card, card, serial, timeout_s),
                    key,
                    progress,
                    today=datetime.now(tz=UTC).date(),
                    cscas=self._cscas,
                    chunk_bytes=self.settings.read_chunk_bytes,
                    offload=functools.partial(io.compute, timeout_s=timeout_s),
                )
        except CardGone:
            raise MediaError("card removed during the read") from None
        except Timeout:
            raise HardwareError("the chip or reader stopped answering") from None

    async def _same_card(self, card: PcscCard, serial: int, timeout_s: float, apdu: bytes) -> bytes:
        """Transmit, unless the card left or was swapped since the read began.

        Raises:
            CardGone: the card is not the one the read began with.

        """
        if self.card_serial != serial or not self.card_present:
            raise CardGone("card removed during the read")
        return await card.transmit(apdu, timeout_s)

    async def _transmit(self, apdu: bytes) -> bytes:
        io, reader = self._connection()
        timeout_s = self.settings.apdu_timeout_ms / 1000
        try:
            async with await io.connect(reader, timeout_s) as card:
                return await card.transmit(apdu, timeout_s)
        except Timeout:
            raise HardwareError("the chip or reader stopped answering") from None
