"""The ``printer`` device class: slips from templates, raw jobs, the cutter.

The class holds the semantics every driver shares: templates are rendered
here (:mod:`devices.printer.slip`), the paper and cover are checked before
each slip, a job that loses its paper after the first copy fails as
"paper ran out mid-job", and paper level changes are broadcast as
``paperThreshold``.  Drivers implement four hardware hooks
(:meth:`Printer.refresh_status`, :meth:`Printer.print_image`,
:meth:`Printer.write_raw`, :meth:`Printer.cut_paper`) and report what the
printer's sensors say with :meth:`Printer.report_media`.

Slips carry identity data (the citizen's name): their fields are never logged.
"""

from __future__ import annotations

import abc
import asyncio
from collections.abc import Mapping
from enum import StrEnum
from typing import TYPE_CHECKING, Annotated, ClassVar, Literal, TypeVar

import msgspec

from devices.base import (
    UNREACHABLE,
    Command,
    CommandContext,
    Device,
    DeviceEnv,
    DeviceHost,
    DeviceState,
    Message,
    NoParams,
    NoResult,
    OpenClosed,
    Params,
    command,
)
from devices.errors import HardwareError, MediaError, Unsupported

from .template_files import template_names

if TYPE_CHECKING:
    from PIL import Image

#: Most copies of one slip a request may ask for.
MAX_COPIES = 5
#: Largest ``printRaw`` job, in bytes (a full-length 80 mm raster slip is about 150 KB).
MAX_RAW_BYTES = 262_144


class PaperLevel(StrEnum):
    """How much paper is left on the roll (``paperThreshold`` and the ``paper`` sim action)."""

    FULL = "full"
    LOW = "low"
    OUT = "out"


class PaperStatus(StrEnum):
    """State detail ``paper``: the roll level, or ``jammed`` while paper is stuck."""

    FULL = "full"
    LOW = "low"
    OUT = "out"
    JAMMED = "jammed"


class PrinterDetail(Message):
    """State detail of a printer.

    ``paper``: roll level (``low`` = the near-end sensor sees the roll's end,
    a few metres left) or ``jammed``; ``cover``: the paper compartment lid.
    """

    paper: PaperStatus = PaperStatus.FULL
    cover: OpenClosed = OpenClosed.CLOSED


class PaperThreshold(Message):
    """Event ``paperThreshold``: the roll level changed (never sent for a jam)."""

    level: PaperLevel


FieldName = Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
FieldText = Annotated[str, msgspec.Meta(max_length=1000)] | int


class PrintSlipParams(Params):
    """``printSlip``: render ``template`` with ``fields`` and print ``copies`` slips.

    ``fields`` maps the template's placeholder names (lowerCamelCase, e.g.
    ``dossierCode``) to text, or to an integer for money fields (whole VND).
    Fields the template does not use are ignored.
    """

    template: Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
    fields: Annotated[dict[FieldName, FieldText], msgspec.Meta(max_length=64)]
    copies: Annotated[int, msgspec.Meta(ge=1, le=MAX_COPIES)] = 1


class PrintResult(Message):
    """Result of ``printSlip``.

    ``copies``: slips printed and cut; ``widthDots``/``lengthDots``: the size of
    one slip's raster in printer dots (8 dots/mm); ``template``: the template used.
    """

    copies: int
    width_dots: int
    length_dots: int
    template: str


class PrintRawParams(Params):
    """``printRaw``: bytes sent to the printer unchanged (ESC/POS), at most 256 KiB."""

    data: Annotated[bytes, msgspec.Meta(min_length=1, max_length=MAX_RAW_BYTES)]


class RawResult(Message):
    """Result of ``printRaw``: ``bytesSent`` bytes reached the printer."""

    bytes_sent: int


class PrinterSettings(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """Settings every printer driver has.

    Attributes:
        width_dots: raster width in dots: 384 for 58 mm paper, 576 for 80 mm.
        allow_raw: accept ``printRaw``; off by default because raw ESC/POS can
            reconfigure the printer (a technician's tool, not a kiosk UI's).

    """

    width_dots: Literal[384, 576] = 576
    allow_raw: bool = False


#: A printer driver's settings type (every one extends :class:`PrinterSettings`).
PrinterSettingsT_co = TypeVar("PrinterSettingsT_co", bound=PrinterSettings, covariant=True)


class Printer(Device[PrinterSettingsT_co, PrinterDetail]):
    """Base of printer drivers."""

    device_class: ClassVar[str] = "printer"
    events: ClassVar[dict[str, type[Message]]] = {"paperThreshold": PaperThreshold}
    detail_type = PrinterDetail

    def __init__(
        self, device_id: str, host: DeviceHost, env: DeviceEnv, settings: PrinterSettingsT_co
    ) -> None:
        super().__init__(device_id, host, env, settings)
        self._supply = PaperLevel.FULL
        self._cover = OpenClosed.CLOSED
        self._jammed = False

    @property
    def paper(self) -> PaperLevel:
        """The roll level last reported by the printer."""
        return self._supply

    @property
    def jammed(self) -> bool:
        """True while paper is jammed."""
        return self._jammed

    def capabilities(self) -> Mapping[str, object]:
        """Raster width (dots), installed templates, copies limit, raw jobs allowed."""
        return {
            "widthDots": self.settings.width_dots,
            "templates": template_names(),
            "maxCopies": MAX_COPIES,
            "raw": self.settings.allow_raw,
        }

    # ------------------------------------------------------------ commands

    @command(
        "printSlip",
        PrintSlipParams,
        PrintResult,
        30_000,
        120_000,
        side_effect=True,
        interruptible=False,
    )
    async def print_slip(self, params: PrintSlipParams, ctx: CommandContext) -> PrintResult:
        """Render the slip once, then print and cut ``copies`` of it.

        The slip is rendered before any paper moves, so a bad request never
        feeds paper (the status was read by :meth:`check_ready`).  A print is
        never interrupted by its deadline.

        Raises:
            InvalidData: unknown template, missing or malformed field.
            MediaError: paper out or cover open; once paper has moved
                "paper ran out mid-job: N of M copies printed".
            HardwareError: paper jammed or a printer fault.
            Offline: the printer does not answer.

        """
        # The renderer (Pillow, fonts, QR codes: ~4 MiB) loads with the first slip.
        from .slip import render_slip  # noqa: PLC0415

        # Rendering is ~15 ms of CPU: off the event loop.
        image = await asyncio.to_thread(
            render_slip,
            params.template,
            params.fields,
            self.settings.width_dots,
        )
        for printed in range(params.copies):
            if printed:  # the first copy's check is check_ready's
                try:
                    await self._ready_for_paper()
                except MediaError as exc:
                    raise self._mid_job(printed, params.copies) from exc
            try:
                await self.print_image(image, ctx.request_id)
            except MediaError as exc:  # the slip being printed is lost too
                raise self._mid_job(printed, params.copies) from exc
        return PrintResult(
            copies=params.copies,
            width_dots=image.width,
            length_dots=image.height,
            template=params.template,
        )

    def _mid_job(self, printed: int, copies: int) -> MediaError:
        what = "paper ran out" if self._supply is PaperLevel.OUT else "cover was opened"
        return MediaError(f"{what} mid-job: {printed} of {copies} copies printed")

    # Staff: raw ESC/POS can reconfigure the printer and prints no slip template.
    @command(
        "printRaw",
        PrintRawParams,
        RawResult,
        30_000,
        120_000,
        side_effect=True,
        interruptible=False,
        staff=True,
    )
    async def print_raw(self, params: PrintRawParams, _ctx: CommandContext) -> RawResult:
        """Send bytes to the printer unchanged, when ``allow_raw`` is set.

        Raises:
            Unsupported: raw jobs are not enabled for this printer.
            MediaError: paper out or cover open.
            HardwareError: paper jammed or a printer fault.
            Offline: the printer does not answer.

        """
        if not self.settings.allow_raw:
            raise Unsupported("raw print jobs are not enabled on this printer")
        await self.write_raw(params.data)
        return RawResult(bytes_sent=len(params.data))

    @command("cut", NoParams, NoResult, 5_000, 15_000, side_effect=True, interruptible=False)
    async def cut(self, _params: NoParams, _ctx: CommandContext) -> NoResult:
        """Cut the paper at the current position.

        Raises:
            MediaError: paper out or cover open.
            HardwareError: paper jammed or a printer fault.
            Offline: the printer does not answer.

        """
        await self.cut_paper()
        return NoResult()

    async def safe_state(self) -> None:
        """Printers hold nothing that must be made safe."""

    async def check_ready(self, command: Command) -> None:
        """Also ask the printer for its status: every printer command moves paper.

        Raises:
            NotReady: as :meth:`Device.check_ready`.
            Offline, HardwareError, MediaError: as :meth:`_ready_for_paper`.

        """
        await super().check_ready(command)
        await self._ready_for_paper()

    async def _ready_for_paper(self) -> None:
        """Query the status (:meth:`refresh_status`); raise if paper cannot move now.

        Raises:
            Offline, HardwareError: as :meth:`refresh_status`; HardwareError also
                for jammed paper.
            MediaError: paper out or cover open.

        """
        await self.refresh_status()
        if self._jammed:
            raise HardwareError("paper is jammed in the printer")
        if self._supply is PaperLevel.OUT:
            raise MediaError("the printer is out of paper")
        if self._cover is OpenClosed.OPEN:
            raise MediaError("the printer cover is open")

    # ------------------------------------------------------------ driver side

    def media_condition(self) -> DeviceState:
        """Return the condition the paper and cover imply while the printer is connected.

        Drivers with more fault sources extend it.
        """
        if self._jammed:
            return DeviceState.HARDWARE_ERROR
        if self._supply is PaperLevel.OUT or self._cover is OpenClosed.OPEN:
            return DeviceState.USER_ERROR
        return DeviceState.ONLINE

    def report_media(
        self,
        *,
        paper: PaperLevel | None = None,
        cover: OpenClosed | None = None,
        jammed: bool | None = None,
    ) -> None:
        """Record what the printer's sensors say (drivers call this on the event loop).

        Broadcasts ``paperThreshold`` when the roll level changes, updates the
        state detail, and the condition unless the printer is unreachable.
        """
        if paper is not None and paper is not self._supply:
            self._supply = paper
            self.emit("paperThreshold", PaperThreshold(level=paper))
        if cover is not None:
            self._cover = cover
        if jammed is not None:
            self._jammed = jammed
        detail = {
            "paper": PaperStatus.JAMMED if self._jammed else PaperStatus(self._supply.value),
            "cover": self._cover,
        }
        if self.condition in UNREACHABLE:
            self.update_detail(**detail)
        else:
            self.set_condition(self.media_condition(), **detail)

    @abc.abstractmethod
    async def refresh_status(self) -> None:
        """Query the printer's status before paper moves; report it with :meth:`report_media`.

        Raises:
            Offline: no answer within the driver's status timeout.
            HardwareError: the printer reports a fault.

        """

    @abc.abstractmethod
    async def print_image(self, image: Image.Image, request_id: str) -> None:
        """Print one rendered slip (mode ``"1"``, black = 0) and cut it.

        Returns when the slip is cut.  Raises like :meth:`refresh_status`,
        plus :class:`MediaError` when paper runs out or the cover opens.
        """

    @abc.abstractmethod
    async def write_raw(self, data: bytes) -> None:
        """Send bytes to the printer unchanged; returns once they are printed."""

    @abc.abstractmethod
    async def cut_paper(self) -> None:
        """Feed to the cutter and cut."""
