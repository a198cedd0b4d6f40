"""Wire simulator ``serial``: a serial scanner at the far end of a socat pty.

The driver's ``port`` is pointed at the pair's driver end
(``{runtime_dir}/{device}.tty``); each ``scan`` writes the bytes a scanner
programmed like the driver's settings sends: prefix, AIM identifier, the
code's UTF-8 bytes, suffix and terminator.  Unplugging stops socat, so the
port vanishes exactly as a USB-CDC scanner's does; plugging starts socat again
at the same path.
"""

from __future__ import annotations

import msgspec

from devices.base import DeviceEnv, DeviceHost
from devices.scanner.frames import TERMINATORS
from devices.scanner.serial import SerialScannerSettings
from devices.sim.scanner.wire import ScannerWireSimulator
from devices.sim.support.pty import PtyLine

#: Three frames no encoding-strict decoder accepts (a burst of line noise).
NOISE = b"\xff\xfe\x80\x00\xc3\x28\x9f"


class SerialScannerSimulator(ScannerWireSimulator):
    """A scanner writing real byte streams into a socat pty."""

    def __init__(self, device_id: str, host: DeviceHost, env: DeviceEnv) -> None:
        super().__init__(device_id, host, env)
        self.pair = PtyLine(env.runtime_dir / f"{device_id}.tty")
        self.settings = SerialScannerSettings()

    def driver_settings(self, settings: msgspec.Struct) -> msgspec.Struct:
        """The driver's settings with ``port`` at the pair's driver end."""
        assert isinstance(settings, SerialScannerSettings), settings
        self.settings = msgspec.structs.replace(settings, port=str(self.pair.driver_link))
        return self.settings

    async def plug(self) -> None:
        """Start socat (the port appears)."""
        await self.pair.start()

    async def unplug(self) -> None:
        """Stop socat (the port vanishes)."""
        await self.pair.stop()

    def frame(self, text: str, symbology: str) -> bytes:
        """The bytes the scanner sends for one code, terminator included."""
        s = self.settings
        aim = self.aim_identifier(symbology) if s.aim else ""
        return (s.prefix + aim + text + s.suffix).encode(s.encoding) + TERMINATORS[s.terminator]

    def send_code(self, text: str, symbology: str) -> None:
        """Write one code's frame into the pty."""
        self.pair.write(self.frame(text, symbology))

    def pending(self) -> int:
        """Bytes the driver has not read yet."""
        return self.pair.pending()

    def send_noise(self) -> None:
        """Write three undecodable frames (one when frames end at gaps)."""
        end = TERMINATORS[self.settings.terminator]
        self.pair.write((NOISE + end) * 3)

    def send_garbage(self) -> None:
        """Write an undecodable frame, then a frame cut inside a UTF-8 character."""
        s = self.settings
        cut = (s.prefix + "Nguyễn").encode(s.encoding)[:-1]
        self.pair.write(NOISE + TERMINATORS[s.terminator] + cut)
