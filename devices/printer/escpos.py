"""The ``escpos`` driver: ESC/POS thermal printers over network, USB, serial or a device file.

Slips are rendered by the printer class (:mod:`devices.printer.slip`) and sent
as raster images (``GS v 0`` by default, encoded by python-escpos), because
ESC/POS code pages cannot encode precomposed Vietnamese.  Around every job the
driver reads the printer's real-time status (``DLE EOT 1..4``,
:mod:`devices.printer.status`):

- before: paper out or cover open -> ``userError``; a jam or mechanical
  error -> ``hardwareError``; no answer within ``status_timeout_ms`` ->
  ``hardwareError`` (the printer is connected but mute);
- after the cut: the job ends with ``GS r 1``, which the printer answers only
  once the slip is printed and cut.  While waiting, ``DLE EOT 2`` every
  ``progress_poll_ms`` notices a printer that stopped (paper ran out, cover
  opened, cutter jammed).  The job is ``success`` only when the slip was
  confirmed printed and the status read after the cut shows no jam or
  mechanical error (paper that runs out after a confirmed slip fails the next
  copy instead).  With ``wait_printed`` off nothing confirms the slip, so any
  error in the status after the cut, paper out included, fails the job.

Between jobs the status is polled every ``poll_ms``, so the device state and
``paperThreshold`` follow the printer's sensors.  A printer that cannot be
reached is ``offline``; the supervisor reconnects.

Threads: every blocking call (python-escpos/pyusb/pyserial/socket) runs on the
device's one I/O thread (``escpos-<id>``, a :class:`~devices.runtime.worker.Worker`)
and is bounded by its own timeout; the event loop awaits it with that timeout
plus :data:`_GRACE_S`.  A cancelled command leaves its call running on the thread
(it cannot be interrupted; the worker drops its result);
:meth:`EscposPrinter.aclose` makes a wait for the printer's answers end at its
next read and stops the thread only once the call has returned.
"""

from __future__ import annotations

import asyncio
import copy
import logging
import threading
import time
from collections.abc import Callable
from enum import Enum
from typing import TYPE_CHECKING, Annotated, Any, Literal, TypeVar

import msgspec

from devices.base import DeviceEnv, DeviceHost, DeviceState, OpenClosed
from devices.errors import HardwareError, MediaError, Offline, ProtocolError
from devices.runtime.worker import Worker

from .links import Connection, FileLink, Link, NetworkLink, SerialLink, UsbLink
from .protocol import PaperLevel, Printer, PrinterSettings
from .status import COVER_OPEN as _COVER_OPEN
from .status import (
    DLE_EOT,
    PRINTED_REQUEST,
    STATUS_COUNT,
    STATUS_REQUESTS,
    PrinterStatus,
    is_printed_answer,
    is_realtime_answer,
)
from .status import ERROR_OCCURRED as _ERROR_OCCURRED
from .status import PAPER_END_STOP as _PAPER_END_STOP

if TYPE_CHECKING:
    from escpos.capabilities import Profile
    from escpos.printer import Dummy
    from PIL import Image

log = logging.getLogger(__name__)

T = TypeVar("T")

#: python-escpos's fallback profile (in its capabilities under this name).
DEFAULT_PROFILE = "default"


def _profiles() -> dict[str, Any]:
    """python-escpos's printer profiles by name (importing them loads its capabilities file)."""
    from escpos.capabilities import CAPABILITIES  # noqa: PLC0415

    profiles: dict[str, Any] = CAPABILITIES["profiles"]
    return profiles


#: Extra time the event loop gives an I/O call beyond the call's own timeout, in s.
_GRACE_S = 2.0
_INIT = b"\x1b@"
_STOPPED = _COVER_OPEN | _PAPER_END_STOP | _ERROR_OCCURRED
_OFFLINE_CAUSE = DLE_EOT + b"\x02"

Ms = Annotated[int, msgspec.Meta(ge=1, le=600_000)]


class EscposSettings(PrinterSettings, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """Settings of an ESC/POS printer.

    Attributes:
        connection: ``network`` (raw TCP), ``usb`` (pyusb), ``serial`` or ``file``
            (a device file such as ``/dev/usb/lp0``).
        host: network: the printer's address.
        port: network: TCP port (9100 on nearly every printer).
        usb_vendor_id: usb: vendor id (e.g. ``0x04b8`` Epson).
        usb_product_id: usb: product id (``lsusb`` shows both).
        usb_in_ep: usb: bulk IN endpoint (status answers).
        usb_out_ep: usb: bulk OUT endpoint (print data).
        device: serial: the port (``/dev/ttyUSB0``, a udev symlink); file: the device file.
        baud: serial: bits per second.
        flow_control: serial: ``none``, ``dsrdtr`` (hardware) or ``xonxoff``.
        profile: python-escpos printer profile (e.g. ``TM-T20II``); decides the cut command.
        image_impl: how rasters are sent: ``bitImageRaster`` (``GS v 0``), ``graphics``
            (``GS ( L``) or ``bitImageColumn`` (``ESC *``) for printers without ``GS v 0``.
        connect_timeout_ms: network: TCP connect timeout, in ms.
        write_timeout_ms: longest the printer may hold off one 4 KiB piece of data, in ms
            (it always has a value: python-escpos's USB default of 0 blocks forever).
        status_timeout_ms: longest wait for the four ``DLE EOT`` answers, in ms.
        print_timeout_ms: longest wait for a job to be printed and cut (``GS r 1``), in ms.
        progress_poll_ms: while a job prints, ``DLE EOT 2`` every this many ms.
        poll_ms: between jobs, read the full status every this many ms.
        wait_printed: end jobs with ``GS r 1`` and wait for its answer; turn off for
            printers without ``GS r`` (the status is then read right after the data is sent).

    """

    connection: Connection = "network"
    host: str = ""
    port: Annotated[int, msgspec.Meta(ge=1, le=65535)] = 9100
    usb_vendor_id: Annotated[int, msgspec.Meta(ge=0, le=0xFFFF)] = 0
    usb_product_id: Annotated[int, msgspec.Meta(ge=0, le=0xFFFF)] = 0
    usb_in_ep: Annotated[int, msgspec.Meta(ge=0x81, le=0x8F)] = 0x82
    usb_out_ep: Annotated[int, msgspec.Meta(ge=0x01, le=0x0F)] = 0x01
    device: str = ""
    baud: Literal[9600, 19200, 38400, 57600, 115200] = 19200
    flow_control: Literal["none", "dsrdtr", "xonxoff"] = "none"
    profile: str = DEFAULT_PROFILE
    image_impl: Literal["bitImageRaster", "graphics", "bitImageColumn"] = "bitImageRaster"
    connect_timeout_ms: Ms = 3000
    write_timeout_ms: Ms = 10_000
    status_timeout_ms: Ms = 1000
    print_timeout_ms: Ms = 20_000
    progress_poll_ms: Ms = 100
    poll_ms: Ms = 1000
    wait_printed: bool = True

    def __post_init__(self) -> None:
        if self.connection == "network" and not self.host:
            raise ValueError("connection 'network' needs host")
        if self.connection == "usb" and not (self.usb_vendor_id and self.usb_product_id):
            raise ValueError("connection 'usb' needs usb_vendor_id and usb_product_id")
        if self.connection in ("serial", "file") and not self.device:
            raise ValueError(f"connection {self.connection!r} needs device")
        # "default" is python-escpos's own fallback profile; another name is checked
        # against its capabilities, loaded then (~6 MiB; else at the first print).
        if self.profile != DEFAULT_PROFILE and self.profile not in _profiles():
            raise ValueError(f"unknown python-escpos profile {self.profile!r}")


class _Outcome(Enum):
    PRINTED = "printed"
    STOPPED = "stopped"
    TIMEOUT = "timeout"


class EscposPrinter(Printer[EscposSettings]):
    """An ESC/POS printer driven through python-escpos."""

    Settings = EscposSettings

    def __init__(
        self, device_id: str, host: DeviceHost, env: DeviceEnv, settings: EscposSettings
    ) -> None:
        super().__init__(device_id, host, env, settings)
        # The named thread seam: every blocking printer call runs here, one at a time.
        self._io = Worker(f"escpos-{device_id}")
        #: Set by aclose(): the I/O thread stops waiting for the printer's answers.
        self._closing = threading.Event()
        self._link: Link | None = None
        self._lock = asyncio.Lock()
        self._mute = False  # no answer, or garbage, to the last status request
        self._mechanical_error = False
        self._profile: Profile | None = None

    # ------------------------------------------------------------ the thread seam

    async def _call(self, timeout_s: float, fn: Callable[..., T], *args: object) -> T:
        """Run ``fn(*args)`` on the I/O thread; it is bounded by ``timeout_s`` itself.

        Raises:
            HardwareError: the call overran its own timeout by :data:`_GRACE_S`
                (the link is dropped: it is out of step with the printer).

        """
        try:
            return await self._io.call(timeout_s + _GRACE_S, fn, *args)
        except TimeoutError:
            self._drop_link()
            raise HardwareError("the printer connection hung past its timeout") from None

    def _drop_link(self) -> None:
        link, self._link = self._link, None
        if link is None:
            return
        try:
            # Queued behind any call still using it, on the I/O thread.
            self._io.submit(link.close)
        except RuntimeError:  # the thread is stopped (aclose): nothing uses the link
            link.close()

    def _open(self) -> Link:
        s = self.settings
        match s.connection:
            case "network":
                return NetworkLink(s.host, s.port, s.connect_timeout_ms / 1000)
            case "usb":
                return UsbLink(
                    s.usb_vendor_id,
                    s.usb_product_id,
                    s.usb_in_ep,
                    s.usb_out_ep,
                    s.write_timeout_ms / 1000,
                )
            case "serial":
                return SerialLink(s.device, s.baud, s.flow_control)
            case "file":
                return FileLink(s.device)

    def _require_link(self) -> Link:
        if self._link is None:
            raise Offline("the printer is not connected")
        return self._link

    # ------------------------------------------------------------ blocking sequences (I/O thread)

    def _read_status(self, link: Link) -> bytes | None:
        """Send the four ``DLE EOT`` requests; their answers, or None if they do not come."""
        timeout_s = self.settings.status_timeout_ms / 1000
        poll_s = self.settings.progress_poll_ms / 1000
        link.drain()
        link.write(STATUS_REQUESTS, self.settings.write_timeout_ms / 1000)
        until = time.monotonic() + timeout_s
        answers = b""
        while len(answers) < STATUS_COUNT:
            remaining = until - time.monotonic()
            if remaining <= 0 or self._closing.is_set():
                return None
            answers += link.read(min(remaining, poll_s))
        return answers

    def _send_job(self, link: Link, job: bytes) -> _Outcome:
        """Send a job; with ``wait_printed``, wait until it is printed or the printer stops."""
        s = self.settings
        link.write(job, s.write_timeout_ms / 1000)
        if not s.wait_printed:
            return _Outcome.PRINTED
        poll_s = s.progress_poll_ms / 1000
        until = time.monotonic() + s.print_timeout_ms / 1000
        while (now := time.monotonic()) < until and not self._closing.is_set():
            for byte in link.read(min(poll_s, until - now)):
                if is_printed_answer(byte):
                    return _Outcome.PRINTED
                if is_realtime_answer(byte) and byte & _STOPPED:
                    return _Outcome.STOPPED
            link.write(_OFFLINE_CAUSE, s.write_timeout_ms / 1000)
        return _Outcome.TIMEOUT

    # ------------------------------------------------------------ status

    def media_condition(self) -> DeviceState:
        """Paper and cover, overridden by a mute or garbling printer or a mechanical error."""
        if self._mute or self._mechanical_error:
            return DeviceState.HARDWARE_ERROR
        return super().media_condition()

    async def _status(self) -> PrinterStatus:
        """Read and apply the printer's status (call with the lock held).

        Raises:
            Offline: not connected, or the connection broke.
            HardwareError: no answer within ``status_timeout_ms``.
            ProtocolError: the answer is not a status answer.

        """
        link = self._require_link()
        timeout_s = (self.settings.status_timeout_ms + self.settings.write_timeout_ms) / 1000
        try:
            answers = await self._call(timeout_s, self._read_status, link)
        except Offline:
            self._drop_link()
            raise
        if answers is None:
            if not self._mute:
                log.warning("%s: no answer to a status request", self.id)
            self._mute = True
            self.set_condition(DeviceState.HARDWARE_ERROR)
            raise HardwareError(
                f"the printer did not answer a status request within "
                f"{self.settings.status_timeout_ms} ms",
            )
        try:
            status = PrinterStatus.decode(answers)
        except ProtocolError:
            # Garbage is no usable answer either: the state shows it, not only the command.
            self._mute = True
            self.set_condition(DeviceState.HARDWARE_ERROR)
            raise
        self._mute = False
        self._mechanical_error = status.mechanical_error
        paper = (
            PaperLevel.OUT
            if status.paper_out
            else PaperLevel.LOW
            if status.paper_low
            else PaperLevel.FULL
        )
        self.report_media(
            paper=paper,
            cover=OpenClosed.of(status.cover_open),
            jammed=status.cutter_jam,
        )
        # The link is up: the condition follows the status, also right after (re)connecting.
        self.set_condition(self.media_condition())
        return status

    async def refresh_status(self) -> None:
        """Read the status before paper moves (see :meth:`Printer.refresh_status`).

        Raises:
            Offline: the printer is not connected.
            HardwareError: no answer, or a mechanical error reported.

        """
        async with self._lock:
            status = await self._status()
        if status.mechanical_error:
            raise HardwareError("the printer reports a mechanical error")

    async def _run_job(self, job: bytes) -> None:
        """Send a job that ends with a cut or a raw payload, then check how it ended.

        Raises:
            MediaError: paper ran out or the cover was opened during the job.
            HardwareError: jam, mechanical error, no answer, or not printed in time.
            Offline: the connection broke.

        """
        s = self.settings
        if s.wait_printed:
            job += PRINTED_REQUEST
        # Sending (write_timeout per piece) and printing (print_timeout) are each bounded.
        budget_s = (s.print_timeout_ms + s.write_timeout_ms * (1 + len(job) // 4096)) / 1000
        async with self._lock:
            link = self._require_link()
            try:
                outcome = await self._call(budget_s, self._send_job, link, job)
            except (Offline, HardwareError):
                self._drop_link()
                raise
            status = await self._status()
        if status.cutter_jam:
            raise HardwareError("paper jammed at the cutter")
        if status.mechanical_error:
            raise HardwareError("the printer reports a mechanical error")
        if outcome is _Outcome.PRINTED and s.wait_printed:
            # Confirmed printed and cut: paper that ran out or a lid opened since then
            # stops the next copy, not this one (the citizen holds it).
            return
        if status.paper_out:
            raise MediaError("paper ran out while printing")
        if status.cover_open:
            raise MediaError("the cover was opened while printing")
        if outcome is _Outcome.TIMEOUT:
            raise HardwareError(f"the printer did not finish within {s.print_timeout_ms} ms")
        if outcome is _Outcome.STOPPED:
            raise HardwareError("the printer stopped during the job")

    # ------------------------------------------------------------ hardware hooks

    def _encoder(self) -> Dummy:
        """A python-escpos encoder with the named profile at the paper's width.

        The library (its capabilities, barcode and QR code modules: ~10 MiB) is loaded
        by the first print or cut.  The profile gets the paper's width, so python-escpos
        neither warns nor refuses 576 dots (a Profile instance: Dummy takes no other
        profile object).
        """
        from escpos.capabilities import Profile  # noqa: PLC0415
        from escpos.printer import Dummy  # noqa: PLC0415

        if self._profile is None:
            data = copy.deepcopy(_profiles()[self.settings.profile])
            data["media"]["width"]["pixels"] = self.settings.width_dots
            profile = Profile()
            profile.profile_data = data
            profile.features = data["features"]
            self._profile = profile
        return Dummy(profile=self._profile)

    def _encode_slip(self, image: Image.Image) -> bytes:
        """ESC/POS bytes of one slip: init, the raster, feed and cut (CPU, a few ms)."""
        printer = self._encoder()
        printer._raw(_INIT)  # noqa: SLF001 - Dummy's documented way to append bytes
        printer.image(image, impl=self.settings.image_impl)
        printer.cut()
        output: bytes = printer.output
        return output

    def _encode_cut(self) -> bytes:
        printer = self._encoder()
        printer.cut()
        output: bytes = printer.output
        return output

    async def print_image(self, image: Image.Image, request_id: str) -> None:
        """Print one slip and cut it; returns once the printer confirms both.

        Raises:
            MediaError: paper ran out or the cover was opened mid-slip.
            HardwareError: jam, mechanical error, no answer, not printed in time.
            Offline: the connection broke.

        """
        del request_id  # ESC/POS has nowhere to carry it
        job = await asyncio.to_thread(self._encode_slip, image)
        await self._run_job(job)

    async def write_raw(self, data: bytes) -> None:
        """Send ``data`` unchanged, then wait until it is processed (like a slip)."""
        await self._run_job(data)

    async def cut_paper(self) -> None:
        """Feed to the cutter and cut (the profile's cut command)."""
        await self._run_job(self._encode_cut())

    # ------------------------------------------------------------ lifecycle

    async def run(self) -> None:
        """Connect, read the status, then poll it every ``poll_ms`` between jobs.

        Raises:
            Offline: the printer cannot be reached or the connection broke.

        """
        timeout_s = self.settings.connect_timeout_ms / 1000 + self.settings.write_timeout_ms / 1000
        try:
            async with self._lock:
                self._link = await self._call(timeout_s, self._open)
                log.info("%s: connected to the printer at %s", self.id, self._link.name)
                await self._poll_once()
            while True:
                await asyncio.sleep(self.settings.poll_ms / 1000)
                if self._lock.locked():
                    continue  # a job reads the status itself
                async with self._lock:
                    await self._poll_once()
        finally:
            self._drop_link()

    async def _poll_once(self) -> None:
        """One status read between jobs: no answer or garbage shows in the state, not here."""
        try:
            await self._status()
        except HardwareError as exc:
            log.debug("%s: status poll: %s", self.id, exc)

    async def aclose(self) -> None:
        """Close the connection and stop the I/O thread once its last call returned.

        A wait for the printer's answers ends at its next read (within
        ``progress_poll_ms``); a write the printer holds off may take up to
        ``write_timeout_ms``, of which this waits :data:`_GRACE_S` seconds at most
        (process exit then waits for the rest).
        """
        self._closing.set()
        self._drop_link()
        await self._io.aclose(_GRACE_S)  # after the running call and the link's close
