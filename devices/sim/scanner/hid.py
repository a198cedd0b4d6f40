"""Wire simulator ``hid``: a keyboard-wedge scanner as a stream of evdev key events.

This machine has no ``/dev/uinput``, so instead of a virtual keyboard the
simulator writes ``struct input_event`` records, exactly what the kernel
delivers from ``/dev/input/eventN``, into a FIFO the driver's ``path`` points
at (``{runtime_dir}/{device}.events``).  The driver's decoding is the same;
only opening differs (a FIFO is not grabbed).  Each ``scan`` types the code as
a US-layout wedge scanner does: Shift around shifted characters, Enter at the
end, and characters the layout cannot type (Vietnamese letters) left out.
"""

from __future__ import annotations

import time

import msgspec
from evdev import ecodes

from devices.base import DeviceEnv, DeviceHost
from devices.scanner.hid import INPUT_EVENT, KEY_DOWN, KEY_UP, HidScannerSettings
from devices.scanner.keymap import TYPING
from devices.sim.scanner.wire import ScannerWireSimulator
from devices.sim.support.fifo import FifoDevice


def _record(kind: int, code: int, value: int) -> bytes:
    now = time.time()
    return INPUT_EVENT.pack(int(now), int(now % 1 * 1_000_000), kind, code, value)


def _press(code: int) -> bytes:
    """One key stroke as a keyboard reports it: down, sync, up, sync."""
    sync = _record(ecodes.EV_SYN, ecodes.SYN_REPORT, 0)
    return (
        _record(ecodes.EV_KEY, code, KEY_DOWN) + sync + _record(ecodes.EV_KEY, code, KEY_UP) + sync
    )


def type_text(text: str, *, enter: bool = True) -> bytes:
    """The key events a US-layout wedge scanner sends for ``text`` (untypeable ones dropped)."""
    out = bytearray()
    for char in text:
        key = TYPING.get(char)
        if key is None:
            continue
        code, shift = key
        if shift:
            out += _record(ecodes.EV_KEY, ecodes.KEY_LEFTSHIFT, KEY_DOWN)
        out += _press(code)
        if shift:
            out += _record(ecodes.EV_KEY, ecodes.KEY_LEFTSHIFT, KEY_UP)
    if enter:
        out += _press(ecodes.KEY_ENTER)
    return bytes(out)


class HidScannerSimulator(ScannerWireSimulator):
    """A keyboard-wedge scanner whose key events go through a FIFO."""

    def __init__(self, device_id: str, host: DeviceHost, env: DeviceEnv) -> None:
        super().__init__(device_id, host, env)
        self.device = FifoDevice(env.runtime_dir / f"{device_id}.events")
        self.settings: HidScannerSettings | None = None

    def driver_settings(self, settings: msgspec.Struct) -> msgspec.Struct:
        """The driver's settings with ``path`` at the FIFO."""
        assert isinstance(settings, HidScannerSettings), settings
        self.settings = msgspec.structs.replace(settings, path=str(self.device.path))
        return self.settings

    async def plug(self) -> None:
        """Create the event FIFO."""
        self.device.plug()

    async def unplug(self) -> None:
        """Remove the event FIFO (the driver reads end of file)."""
        self.device.unplug()

    def send_code(self, text: str, symbology: str) -> None:
        """Type the code (with its AIM identifier when the driver expects one), then Enter."""
        s = self.settings or HidScannerSettings(path=str(self.device.path))
        aim = self.aim_identifier(symbology) if s.aim else ""
        self.device.write(type_text(s.prefix + aim + text + s.suffix))

    def pending(self) -> int:
        """Bytes the driver has not read yet."""
        return self.device.pending()

    def send_noise(self) -> None:
        """Three lone Enter presses: empty frames."""
        self.device.write(type_text("", enter=True) * 3)

    def send_garbage(self) -> None:
        """A lone Enter, then keys that never see their Enter."""
        self.device.write(type_text("") + type_text("HS-2026-00", enter=False))
