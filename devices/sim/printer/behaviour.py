"""Behavioural printer simulator: a paper roll that runs out, a cover, a jam.

Each printed slip is published as ``sim/{d}/out/slip`` (a PNG of the raster).
The paper roll holds ``paper_slips`` slips (endless by default); the near-end
sensor trips after ``low_after``.  ``sim/{d}/paper`` loads a roll or forces a
level, ``sim/{d}/cover`` opens or closes the lid, ``fault jam`` jams the paper.
"""

from __future__ import annotations

import asyncio
from typing import Annotated, ClassVar

import msgspec
from PIL import Image

from devices.base import (
    DeviceEnv,
    DeviceHost,
    DeviceState,
    Message,
    NoResult,
    OpenClosed,
)
from devices.printer.protocol import PaperLevel, Printer, PrinterDetail, PrinterSettings
from devices.printer.slip import encode_png
from devices.sim.printer.actions import COVER, PAPER, CoverParams, PaperParams
from devices.sim.support.faults import FaultKind, Simulated

_SEVERITY = {PaperLevel.FULL: 0, PaperLevel.LOW: 1, PaperLevel.OUT: 2}


class SlipOutput(Message):
    """``sim/{d}/out/slip``: one slip as printed.

    ``png``: the 1-bit raster as PNG bytes; ``widthDots``: its width in dots
    (8 dots/mm); ``requestId``: the ``printSlip`` request it belongs to.
    """

    png: bytes
    width_dots: int
    request_id: str | None = None


class SimPrinterSettings(PrinterSettings, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """Settings of the simulated printer.

    Attributes:
        paper_slips: slips a roll holds before the paper is out; ``None`` = endless.
        low_after: slips printed from a new roll before the level turns ``low``;
            ``None`` = never (until set by the ``paper`` action).
        print_ms: simulated time to print and cut one slip, in ms.

    """

    paper_slips: Annotated[int, msgspec.Meta(ge=1)] | None = None
    low_after: Annotated[int, msgspec.Meta(ge=0)] | None = None
    print_ms: Annotated[int, msgspec.Meta(ge=0, le=10_000)] = 300

    def __post_init__(self) -> None:
        if (
            self.paper_slips is not None
            and self.low_after is not None
            and self.low_after >= self.paper_slips
        ):
            raise ValueError("low_after must be smaller than paper_slips")


class SimPrinter(Simulated[SimPrinterSettings, PrinterDetail], Printer[SimPrinterSettings]):
    """A printer whose paper, cover and faults are driven by ``sim/`` actions."""

    Settings = SimPrinterSettings
    sim_outputs: ClassVar[dict[str, type[Message]]] = {"slip": SlipOutput}

    settings: SimPrinterSettings

    def __init__(
        self,
        device_id: str,
        host: DeviceHost,
        env: DeviceEnv,
        settings: SimPrinterSettings,
    ) -> None:
        super().__init__(device_id, host, env, settings)
        self._printed = 0  # slips printed from the current roll

    # ------------------------------------------------------------ state

    def media_condition(self) -> DeviceState:
        """Paper and cover, overridden by an injected hardware fault."""
        if self.fault in (FaultKind.HARDWARE_ERROR, FaultKind.UNRESPONSIVE, FaultKind.GARBAGE):
            return DeviceState.HARDWARE_ERROR
        return super().media_condition()

    def connected(self) -> None:
        """Set the condition from faults, paper and cover once the link is up."""
        self.set_condition(self.media_condition())

    def on_fault(self, kind: FaultKind | None) -> None:
        """Show a jam as ``paper: jammed``; clearing any fault frees the paper."""
        self.report_media(jammed=kind is FaultKind.JAM)
        super().on_fault(kind)

    def _level_after(self, printed: int) -> PaperLevel:
        paper_slips, low_after = self.settings.paper_slips, self.settings.low_after
        if paper_slips is not None and printed >= paper_slips:
            return PaperLevel.OUT
        if low_after is not None and printed >= low_after:
            return PaperLevel.LOW
        return PaperLevel.FULL

    # ------------------------------------------------------------ hardware hooks

    async def refresh_status(self) -> None:
        """Apply injected faults, as a real status query would report them."""
        await self.check_faults()

    async def print_image(self, image: Image.Image, request_id: str) -> None:
        """Take ``print_ms``, use up one slip of paper and publish the slip as PNG."""
        # PNG encoding is a few ms of CPU per slip: off the event loop.
        png = await asyncio.to_thread(encode_png, image)
        await asyncio.sleep(self.settings.print_ms / 1000)
        self._printed += 1
        self.host.sim_output(
            self.id,
            "slip",
            SlipOutput(png=png, width_dots=image.width, request_id=request_id),
        )
        level = self._level_after(self._printed)
        # The roll never refills by printing: a level forced by the paper action stays.
        if _SEVERITY[level] > _SEVERITY[self.paper]:
            self.report_media(paper=level)

    async def write_raw(self, _data: bytes) -> None:
        """Accept the bytes without decoding them (the wire simulator does); take ``print_ms``."""
        await asyncio.sleep(self.settings.print_ms / 1000)

    async def cut_paper(self) -> None:
        """Cutting takes no simulated time and no paper."""

    # ------------------------------------------------------------ sim actions

    @PAPER
    async def sim_paper(self, params: PaperParams) -> NoResult:
        """Set the roll level; ``full`` is a new roll and restarts the slip count."""
        if params.level is PaperLevel.FULL:
            self._printed = 0
        elif params.level is PaperLevel.LOW and self.settings.low_after is not None:
            self._printed = max(self._printed, self.settings.low_after)
        self.report_media(paper=params.level)
        return NoResult()

    @COVER
    async def sim_cover(self, params: CoverParams) -> NoResult:
        """Open or close the paper lid."""
        self.report_media(cover=OpenClosed.of(params.open))
        return NoResult()
