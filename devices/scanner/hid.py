"""Driver ``hid``: a keyboard-wedge scanner read through evdev, grabbed exclusively.

The scanner is a USB keyboard that types each code and presses Enter.  The
driver finds its input device (by ``path``, e.g. a stable
``/dev/input/by-id/...-event-kbd`` link, by ``name`` or by ``vid_pid``), grabs
it (``EVIOCGRAB``: keystrokes never reach a console or the UI), and decodes
key presses with Shift through the US layout (:mod:`devices.scanner.keymap`)
until Enter ends the code.

Wedge mode only carries what a US keyboard can type: Vietnamese text in a QR
code arrives garbled.  Use ``serial`` or ``hidpos`` for such codes
(docs/scanner.md).

``path`` may also name a FIFO carrying ``struct input_event`` records (what
``cat /dev/input/eventN`` records): the same decoding runs on a recorded or
constructed stream, with nothing to grab.  The wire simulator uses that.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import stat
import struct
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, ClassVar

import evdev
import msgspec
from evdev import ecodes

from devices.errors import HardwareError, Offline, Timeout
from devices.transports.fdreader import FdReader

from .driver import ScannerDriver, ScannerSettings
from .frames import Rejected, parse_text
from .keymap import ENTER_KEYS, SHIFT_KEYS, key_char

#: ``struct input_event`` in this machine's ABI: timeval (two longs), type, code, value.
INPUT_EVENT = struct.Struct("@llHHi")
KEY_DOWN, KEY_UP = 1, 0


class HidScannerSettings(ScannerSettings, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """Settings of the ``hid`` driver (and those of :class:`ScannerSettings`); give one selector.

    Attributes:
        path: the event device (``/dev/input/by-id/...-event-kbd``, a udev
            symlink), or a FIFO of recorded ``input_event`` records.
        name: the input device name as evdev reports it (``evtest`` shows it).
        vid_pid: USB vendor and product id, ``"0c2e:0b61"``.
        gap_ms: keys that stop this long before Enter are dropped (``partial``), in ms.
        max_frame_chars: longer codes are rejected (``overlong``).

    """

    path: str | None = None
    name: str | None = None
    vid_pid: Annotated[str, msgspec.Meta(pattern=r"^[0-9a-fA-F]{4}:[0-9a-fA-F]{4}$")] | None = None
    gap_ms: Annotated[int, msgspec.Meta(ge=10, le=5000)] = 300
    max_frame_chars: Annotated[int, msgspec.Meta(ge=16, le=65_536)] = 4096

    def __post_init__(self) -> None:
        """Require a way to find the device."""
        super().__post_init__()
        if self.path is None and self.name is None and self.vid_pid is None:
            raise ValueError("give `path`, `name` or `vid_pid` to find the scanner")


class KeyFramer:
    """Turns key events into frames of text ended by Enter.

    Args:
        gap_s: keys that stop this long before Enter are dropped (seconds).
        max_chars: the longest frame accepted.

    """

    def __init__(self, gap_s: float, max_chars: int) -> None:
        self.gap_s = gap_s
        self.max_chars = max_chars
        self._chars: list[str] = []
        self._shift: set[int] = set()
        self._overlong = False
        self._last = 0.0
        self._started = False

    def key(self, code: int, value: int, now: float) -> list[str | Rejected]:
        """Feed one ``EV_KEY`` event (value 1 down, 0 up, 2 repeat) at ``now`` (s)."""
        out = self.expire(now)
        if code in SHIFT_KEYS:
            (self._shift.add if value else self._shift.discard)(code)
            return out
        if value != KEY_DOWN:
            return out
        self._last = now
        if code in ENTER_KEYS:
            text, overlong = "".join(self._chars), self._overlong
            self._reset()
            out.append(Rejected.OVERLONG if overlong else text)
            return out
        char = key_char(code, bool(self._shift))
        self._started = True
        if char is None or self._overlong:
            return out
        if len(self._chars) >= self.max_chars:
            self._overlong = True
            self._chars.clear()
        else:
            self._chars.append(char)
        return out

    def _reset(self) -> None:
        self._chars.clear()
        self._overlong = False
        self._started = False

    def deadline(self) -> float | None:
        """Loop time at which an unfinished frame is abandoned, or None."""
        return self._last + self.gap_s if self._started else None

    def expire(self, now: float) -> list[str | Rejected]:
        """Abandon a frame whose keys stopped ``gap_s`` ago."""
        deadline = self.deadline()
        if deadline is None or now < deadline:
            return []
        self._reset()
        return [Rejected.PARTIAL]


def key_events(data: bytes) -> Iterator[tuple[int, int]]:
    """``(code, value)`` of the ``EV_KEY`` records in whole ``input_event`` records."""
    for _sec, _usec, kind, code, value in INPUT_EVENT.iter_unpack(data):
        if kind == ecodes.EV_KEY:
            yield code, value


def _find(settings: HidScannerSettings) -> evdev.InputDevice[str]:
    """Open the input device the settings name (blocking: run in a thread)."""
    if settings.path is not None:
        return evdev.InputDevice(settings.path)
    want = None
    if settings.vid_pid is not None:
        vid, pid = settings.vid_pid.split(":")
        want = (int(vid, 16), int(pid, 16))
    for path in evdev.list_devices():
        with contextlib.suppress(OSError):
            device = evdev.InputDevice(path)
            if (settings.name is None or device.name == settings.name) and (
                want is None or (device.info.vendor, device.info.product) == want
            ):
                return device
            device.close()
    raise FileNotFoundError("no input device matches")


class GrabBusyError(OSError):
    """Another process grabbed the input device (``EBUSY``)."""


def _open_source(settings: HidScannerSettings) -> tuple[int, evdev.InputDevice[str] | None]:
    """Open and grab the device, or open the FIFO (blocking: run in a thread).

    Raises:
        GrabBusyError: another process holds the grab.
        OSError: no such device, or it cannot be opened or grabbed.

    """
    if settings.path is not None and stat.S_ISFIFO(Path(settings.path).stat().st_mode):
        return os.open(settings.path, os.O_RDONLY | os.O_NONBLOCK), None
    device = _find(settings)
    try:
        device.grab()
    except OSError as exc:
        device.close()
        if exc.errno == errno.EBUSY:
            raise GrabBusyError(f"{device.path!s} is grabbed by another process") from None
        raise
    return device.fd, device


class HidScanner(ScannerDriver[HidScannerSettings]):
    """A keyboard-wedge scanner on evdev."""

    Settings = HidScannerSettings
    settings: HidScannerSettings
    unicode: ClassVar[bool] = False

    async def _open(self) -> tuple[int, evdev.InputDevice[str] | None]:
        """The fd to read and the grabbed device (None for a FIFO of records).

        Raises:
            Offline: no such device.
            HardwareError: another process holds the grab.

        """
        try:
            return await asyncio.to_thread(_open_source, self.settings)
        except GrabBusyError as exc:
            raise HardwareError(str(exc)) from None
        except OSError as exc:
            raise Offline(f"no keyboard-wedge scanner: {exc}") from None

    async def serve(self) -> None:
        """Read key events and deliver each Enter-ended code until the device vanishes.

        Raises:
            Offline: the device is missing or vanished.
            HardwareError: another process grabbed it.

        """
        fd, device = await self._open()
        # Keys typed before we held the device are not a scan.
        name = str(device.path) if device else str(self.settings.path)
        reader = FdReader(fd, name, discard=True)
        try:
            await self._serve(reader)
        finally:
            reader.close()
            if device is None:
                os.close(fd)
            else:
                with contextlib.suppress(OSError):
                    device.ungrab()
                device.close()

    async def _serve(self, reader: FdReader) -> None:
        loop = asyncio.get_running_loop()
        framer = KeyFramer(self.settings.gap_ms / 1000, self.settings.max_frame_chars)
        self.opened()
        pending = b""
        while True:
            deadline = framer.deadline()
            try:
                data = await reader.read(
                    None if deadline is None else max(0.0, deadline - loop.time())
                )
            except Timeout:
                self._deliver_all(framer.expire(loop.time()))
                continue
            data = pending + data
            whole = len(data) - len(data) % INPUT_EVENT.size
            pending = data[whole:]
            for code, value in key_events(data[:whole]):
                self._deliver_all(framer.key(code, value, loop.time()))

    def _deliver_all(self, frames: list[str | Rejected]) -> None:
        for frame in frames:
            self.deliver(
                frame if isinstance(frame, Rejected) else parse_text(frame, self.text_format)
            )
