"""Wire simulator ``hidpos``: a HID POS scanner's Scanned Data Reports through a FIFO.

The FIFO (``{runtime_dir}/{device}.hidraw``) stands in for ``/dev/hidrawN``;
each ``scan`` is split into 64-byte input reports laid out as the driver
documents (:mod:`devices.scanner.hidpos`): report ID, byte count, the AIM
identifier, up to 56 data bytes, and the Continued flag on every report but
the last.  The code's UTF-8 bytes go through unchanged, so a multi-byte
character may straddle two reports, as it does on a real scanner.
"""

from __future__ import annotations

import msgspec

from devices.base import DeviceEnv, DeviceHost
from devices.scanner.hidpos import COUNT_AT, DATA_AT, HidPosScannerSettings
from devices.sim.scanner.wire import ScannerWireSimulator
from devices.sim.support.fifo import FifoDevice


def reports(data: bytes, aim: str, settings: HidPosScannerSettings) -> bytes:
    """The input reports a HID POS scanner sends for ``data``, back to back."""
    s = settings
    parts = [data[i : i + s.data_bytes] for i in range(0, len(data), s.data_bytes)] or [b""]
    out = bytearray()
    for n, part in enumerate(parts):
        report = bytearray(s.report_bytes)
        report[0] = s.report_id
        report[COUNT_AT] = len(part)
        report[COUNT_AT + 1 : DATA_AT] = aim.encode("ascii")
        report[DATA_AT : DATA_AT + len(part)] = part
        report[s.continued_byte] = 1 if n < len(parts) - 1 else 0
        out += report
    return bytes(out)


class HidPosScannerSimulator(ScannerWireSimulator):
    """A HID POS scanner whose reports go through a FIFO."""

    def __init__(self, device_id: str, host: DeviceHost, env: DeviceEnv) -> None:
        super().__init__(device_id, host, env)
        self.device = FifoDevice(env.runtime_dir / f"{device_id}.hidraw")
        self.settings = HidPosScannerSettings(path=str(self.device.path))

    def driver_settings(self, settings: msgspec.Struct) -> msgspec.Struct:
        """The driver's settings with ``path`` at the FIFO."""
        assert isinstance(settings, HidPosScannerSettings), settings
        self.settings = msgspec.structs.replace(settings, path=str(self.device.path))
        return self.settings

    def _send(self, data: bytes) -> None:
        # One write per report: each is atomic, so a read never returns part of one.
        size = self.settings.report_bytes
        for i in range(0, len(data), size):
            self.device.write(data[i : i + size])

    async def plug(self) -> None:
        """Create the report FIFO."""
        self.device.plug()

    async def unplug(self) -> None:
        """Remove the report FIFO (the driver reads end of file)."""
        self.device.unplug()

    def send_code(self, text: str, symbology: str) -> None:
        """Send the code's reports; the symbology travels in the identifier fields."""
        s = self.settings
        data = (s.prefix + text + s.suffix).encode(s.encoding)
        self._send(reports(data, self.aim_identifier(symbology), s))

    def pending(self) -> int:
        """Bytes the driver has not read yet."""
        return self.device.pending()

    def send_noise(self) -> None:
        """Three reports whose data is not UTF-8."""
        self._send(reports(b"\xff\xfe\x80", "]X0", self.settings) * 3)

    def send_garbage(self) -> None:
        """A report whose byte count exceeds its data field, then a code cut after one report."""
        s = self.settings
        bad = bytearray(reports(b"x", "]X0", s))
        bad[COUNT_AT] = 0xFF
        cut = reports(b"y" * (s.data_bytes + 1), "]Q1", s)[: s.report_bytes]
        self._send(bytes(bad) + cut)
