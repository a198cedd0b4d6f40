"""Driver ``hidpos``: a HID POS scanner (USB HID usage page 0x8C) read raw through hidraw.

In HID POS mode the scanner is not a keyboard: it sends the decoded bytes of
each code in *Scanned Data Reports* (Barcode Scanner page 0x8C, usage 0x12), so
any text, Vietnamese included, arrives byte for byte, with its symbology.
Nothing reaches the console, so there is nothing to grab.

Report layout (input report, report ID first, as hidraw returns it)::

    byte 0        Report ID (2)
    byte 1        Byte Count: bytes of Decoded Data in this report
    bytes 2-4     Symbology Identifier 1-3 (usages 0xFB-0xFD): the AIM identifier, "]Q1"
    bytes 5-60    Decoded Data (usage 0xFE), 56 bytes, zero padded after Byte Count
    bytes 61-62   vendor specific (Honeywell: its own code id)
    byte 63 bit 0 Decoded Data Continued (usage 0xFF): the next report carries more

Sources: the HID Point of Sale Usage Tables 1.02 (usb.org ``pos1_02.pdf``; usage
ids as in Haiku's ``usb_hid_page_bar_code_scanner.h``) and the Honeywell
layout used by NielsLeenheer/WebHidBarcodeScanner (``src/main.js``: report 2,
length at 0, AIM at 1-3, data from 4, continued flag at 62, offsets without the
report ID byte).  Other vendors may place the fields elsewhere: the report
descriptor (``/sys/class/hidraw/hidrawN/device/report_descriptor``) says where,
and ``report_id``, ``data_bytes`` and ``continued_byte`` follow it.

``path`` may also be a FIFO of such reports (the wire simulator); ``vid_pid``
finds the hidraw node whose device has that id and a 0x8C usage page.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Annotated

import msgspec

from devices.errors import Offline, Timeout
from devices.transports.fdreader import FdReader

from .driver import ScannerDriver, ScannerSettings
from .frames import Rejected, aim_symbology, decode_frame

#: Where hidraw nodes are described.
SYSFS_HIDRAW = Path("/sys/class/hidraw")
#: Byte offsets of the Scanned Data Report fields (report ID at 0).
COUNT_AT, AIM_AT, DATA_AT = 1, 2, 5


class HidPosScannerSettings(ScannerSettings, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """Settings of the ``hidpos`` driver (and those of :class:`ScannerSettings`).

    Attributes:
        path: the hidraw node or a stable udev symlink to it (``/dev/scanner-pos``).
        vid_pid: USB vendor and product id, ``"0c2e:0b62"``, instead of ``path``.
        report_id: the Scanned Data Report's id.
        report_bytes: input report size with its id byte.
        data_bytes: size of the Decoded Data field.
        continued_byte: offset of the byte whose bit 0 is Decoded Data Continued.
        gap_ms: a continued code whose next report does not come within this is
            dropped (``partial``), in ms.

    """

    path: str | None = None
    vid_pid: Annotated[str, msgspec.Meta(pattern=r"^[0-9a-fA-F]{4}:[0-9a-fA-F]{4}$")] | None = None
    report_id: Annotated[int, msgspec.Meta(ge=0, le=255)] = 2
    report_bytes: Annotated[int, msgspec.Meta(ge=8, le=4096)] = 64
    data_bytes: Annotated[int, msgspec.Meta(ge=1, le=4090)] = 56
    continued_byte: Annotated[int, msgspec.Meta(ge=6, le=4095)] = 63
    gap_ms: Annotated[int, msgspec.Meta(ge=10, le=5000)] = 300
    max_frame_bytes: Annotated[int, msgspec.Meta(ge=16, le=65_536)] = 8192

    def __post_init__(self) -> None:
        """Require a way to find the device and a layout that fits the report."""
        super().__post_init__()
        if self.path is None and self.vid_pid is None:
            raise ValueError("give `path` or `vid_pid` to find the scanner")
        if (
            DATA_AT + self.data_bytes > self.report_bytes
            or self.continued_byte >= self.report_bytes
        ):
            raise ValueError("data_bytes and continued_byte must lie inside report_bytes")


def find_hidraw(vid_pid: str, sysfs: Path = SYSFS_HIDRAW) -> str:
    """The ``/dev/hidrawN`` of the device with ``vid_pid`` whose report descriptor uses page 0x8C.

    Blocking (sysfs reads): run it in a thread.

    Raises:
        FileNotFoundError: no such device is attached.

    """
    vid, pid = (int(part, 16) for part in vid_pid.split(":"))
    for node in sorted(sysfs.glob("hidraw*")):
        try:
            uevent = (node / "device" / "uevent").read_text(encoding="ascii")
            descriptor = (node / "device" / "report_descriptor").read_bytes()
        except OSError:
            continue
        ids = dict(line.split("=", 1) for line in uevent.splitlines() if "=" in line)
        _bus, v, p = ids.get("HID_ID", "0:0:0").split(":")
        # Usage Page 0x8C: item 0x05 0x8C (1 byte) or 0x06 0x8C 0x00 (2 bytes).
        pos = b"\x05\x8c" in descriptor or b"\x06\x8c\x00" in descriptor
        if (int(v, 16), int(p, 16)) == (vid, pid) and pos:
            return f"/dev/{node.name}"
    raise FileNotFoundError(f"no HID POS scanner {vid_pid} attached")


class ReportAssembler:
    """Joins Scanned Data Reports into codes: bytes and the AIM identifier's symbology."""

    def __init__(self, settings: HidPosScannerSettings) -> None:
        self.s = settings
        self._data = bytearray()
        self._symbology: str | None = None
        self._last = 0.0
        self._overlong = False

    def report(self, report: bytes, now: float) -> list[tuple[bytes, str | None] | Rejected]:
        """Feed one input report received at ``now`` (s); return the codes it completes."""
        out = self.expire(now)
        s = self.s
        if len(report) < s.report_bytes or report[0] != s.report_id:
            return out  # another report (status, a short one): not scanned data
        count = report[COUNT_AT]
        if count > s.data_bytes:
            self._reset()
            out.append(Rejected.FRAMING)
            return out
        if not self._data and not self._overlong:
            self._symbology = aim_symbology(report[AIM_AT:DATA_AT].decode("ascii", "replace"))
        self._data += report[DATA_AT : DATA_AT + count]
        if len(self._data) > s.max_frame_bytes:
            self._overlong = True
            self._data.clear()
        self._last = now
        if report[s.continued_byte] & 1:
            return out
        if self._overlong:
            out.append(Rejected.OVERLONG)
        else:
            out.append((bytes(self._data), self._symbology))
        self._reset()
        return out

    def _reset(self) -> None:
        self._data.clear()
        self._symbology = None
        self._overlong = False

    def deadline(self) -> float | None:
        """Loop time at which a continued code is abandoned, or None."""
        if self._data or self._overlong:
            return self._last + self.s.gap_ms / 1000
        return None

    def expire(self, now: float) -> list[tuple[bytes, str | None] | Rejected]:
        """Abandon a code whose next report did not come in time."""
        deadline = self.deadline()
        if deadline is None or now < deadline:
            return []
        self._reset()
        return [Rejected.PARTIAL]


class HidPosScanner(ScannerDriver[HidPosScannerSettings]):
    """A HID POS scanner on hidraw."""

    Settings = HidPosScannerSettings
    settings: HidPosScannerSettings

    async def serve(self) -> None:
        """Read reports and deliver each complete code until the device vanishes.

        Raises:
            Offline: the device is missing or vanished.

        """
        s = self.settings
        try:
            path = (
                s.path
                if s.path is not None
                else await asyncio.to_thread(find_hidraw, str(s.vid_pid))
            )
            fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
        except OSError as exc:
            raise Offline(f"no HID POS scanner: {exc}") from None
        reader = FdReader(fd, path, discard=True)
        try:
            self.opened()
            await self._serve(reader)
        finally:
            reader.close()
            os.close(fd)

    async def _serve(self, reader: FdReader) -> None:
        loop = asyncio.get_running_loop()
        size = self.settings.report_bytes
        assembler = ReportAssembler(self.settings)
        while True:
            deadline = assembler.deadline()
            try:
                chunk = await reader.read(
                    None if deadline is None else max(0.0, deadline - loop.time())
                )
            except Timeout:
                self._deliver_all(assembler.expire(loop.time()))
                continue
            # hidraw returns one report per read; a FIFO may return several back to back.
            reports = [chunk[i : i + size] for i in range(0, len(chunk), size)]
            for report in reports:
                self._deliver_all(assembler.report(report, loop.time()))

    def _deliver_all(self, items: list[tuple[bytes, str | None] | Rejected]) -> None:
        for item in items:
            if isinstance(item, Rejected):
                self.deliver(item)
            else:
                data, symbology = item
                self.deliver(decode_frame(data, self.text_format, symbology))

    def capabilities(self) -> dict[str, bool]:
        """HID POS reports always say their symbology."""
        return {"unicode": True, "symbology": True}
