"""What the real scanner drivers (``serial``, ``hid``, ``hidpos``) share.

:class:`ScannerDriver` keeps the device attached: it opens it, marks it
``online``, hands every frame to :mod:`devices.scanner.frames`, and when the
device vanishes marks it ``offline`` and looks for it again after
``reconnect_ms``, then ever less often (the wait doubles, jittered, up to
:data:`RECONNECT_MAX_S`) until it is back: a glitch costs ``reconnect_ms``, a
replugged scanner is ``online`` again well within two seconds without waiting
for the supervisor's backoff, and a board without its scanner does not spend
its idle CPU looking for it ten times a second.  A line that keeps
delivering undecodable frames (noise) turns the device ``hardwareError``
until it has been quiet for ``noise_window_ms``.

Scanned codes are identity data: nothing here logs them; rejections are
logged by reason only.
"""

from __future__ import annotations

import abc
import asyncio
import codecs
import logging
from collections.abc import Mapping
from typing import Annotated, ClassVar, TypeVar

import msgspec

from devices.base import DeviceEnv, DeviceHost, DeviceState
from devices.errors import Offline
from devices.runtime.backoff import Backoff

from .frames import Code, NoiseMonitor, Rejected, TextFormat
from .protocol import Scanner

log = logging.getLogger(__name__)

#: The longest wait between two looks for a missing scanner, seconds.
RECONNECT_MAX_S = 1.0


class ScannerSettings(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    r"""Settings every real scanner driver has.

    Attributes:
        prefix: text the scanner is programmed to send before each code; removed,
            and a frame without it is rejected (``framing``).  TOML escapes work:
            ``"\u0002"`` for STX.
        suffix: text sent after each code (before the terminator); removed likewise.
        aim: the scanner sends an AIM symbology identifier (``]Q1``...) before the
            code: it is removed and gives ``symbology``.
        encoding: how the code's bytes become text; strict, so an invalid byte
            rejects the frame (``invalidEncoding``).
        reconnect_ms: the first wait before a missing device is looked for again,
            in ms; each further miss doubles the ceiling of the jittered wait,
            up to :data:`RECONNECT_MAX_S` (or ``reconnect_ms`` if larger).
        noise_frames: rejected frames within ``noise_window_ms`` that make the
            device ``hardwareError`` (a wrong baud rate or a damaged cable).
        noise_window_ms: the window of ``noise_frames``, and the quiet time after
            which a noisy device is ``online`` again, in ms.

    """

    prefix: str = ""
    suffix: str = ""
    aim: bool = False
    encoding: str = "utf-8"
    reconnect_ms: Annotated[int, msgspec.Meta(ge=20, le=1000)] = 100
    noise_frames: Annotated[int, msgspec.Meta(ge=1, le=100)] = 3
    noise_window_ms: Annotated[int, msgspec.Meta(ge=10, le=60_000)] = 1000

    def __post_init__(self) -> None:
        """Check the encoding exists (a config error, not a runtime one)."""
        try:
            codecs.lookup(self.encoding)
        except LookupError:
            raise ValueError(f"unknown encoding {self.encoding!r}") from None

    @property
    def text_format(self) -> TextFormat:
        """The frame format these settings describe."""
        return TextFormat(self.prefix, self.suffix, self.aim, self.encoding)


#: A scanner driver's settings type (every one extends :class:`ScannerSettings`).
ScannerSettingsT_co = TypeVar("ScannerSettingsT_co", bound=ScannerSettings, covariant=True)


class ScannerDriver(Scanner[ScannerSettingsT_co]):
    """Base of real scanner drivers: reconnection, noise detection, frame delivery.

    Subclasses implement :meth:`serve` and set ``Settings``.
    """

    #: The driver can deliver any Unicode text (False for keyboard wedges).
    unicode: ClassVar[bool] = True

    def __init__(
        self, device_id: str, host: DeviceHost, env: DeviceEnv, settings: ScannerSettingsT_co
    ) -> None:
        super().__init__(device_id, host, env, settings)
        self.text_format = settings.text_format
        self._noise = NoiseMonitor(settings.noise_frames, settings.noise_window_ms / 1000)
        self._quiet_timer: asyncio.TimerHandle | None = None
        first_s = settings.reconnect_ms / 1000
        self._reconnect = Backoff(
            first_s=first_s, max_s=max(first_s, RECONNECT_MAX_S), floor_s=first_s
        )

    async def run(self) -> None:
        """Serve the device; while it is missing, stay ``offline`` and look again.

        Raises:
            DeviceError: a failure other than the device missing (the supervisor
                backs off and calls again).

        """
        while True:
            try:
                await self.serve()
            except Offline as exc:
                if self.condition is not DeviceState.OFFLINE:
                    log.warning("%s offline: %s", self.id, exc)
                self.set_condition(DeviceState.OFFLINE)
            finally:
                self._cancel_quiet_timer()
                self._noise.clear()
            await asyncio.sleep(self._reconnect.failed())

    @abc.abstractmethod
    async def serve(self) -> None:
        """Open the device, call :meth:`opened`, then :meth:`deliver` frames until it is lost.

        Raises:
            Offline: the device is missing, could not be opened, or vanished.

        """

    def opened(self) -> None:
        """Called by :meth:`serve` once the device is open and reading."""
        log.info("%s online", self.id)
        self._reconnect.up()
        self.set_condition(DeviceState.ONLINE)

    def deliver(self, item: Code | Rejected) -> None:
        """Hand a decoded frame to the class semantics (``read``, continuous mode)."""
        if isinstance(item, Rejected):
            self._rejected(item)
            return
        if self.condition is DeviceState.HARDWARE_ERROR:
            self._quiet()
        self._noise.clear()
        self.code_scanned(item.text, item.symbology)

    def _rejected(self, reason: Rejected) -> None:
        log.info("%s: frame rejected (%s)", self.id, reason.value)
        self.code_rejected(reason.value)
        loop = asyncio.get_running_loop()
        if self._noise.rejected(loop.time()):
            if self.condition is DeviceState.ONLINE:
                log.warning("%s: noise on the line; check baud rate, framing and cable", self.id)
                self.set_condition(DeviceState.HARDWARE_ERROR)
            self._cancel_quiet_timer()
            self._quiet_timer = loop.call_at(self._noise.quiet_at(), self._quiet)

    def _quiet(self) -> None:
        self._cancel_quiet_timer()
        self._noise.clear()
        if self.condition is DeviceState.HARDWARE_ERROR:
            log.info("%s: line quiet again", self.id)
            self.set_condition(DeviceState.ONLINE)

    def _cancel_quiet_timer(self) -> None:
        if self._quiet_timer is not None:
            self._quiet_timer.cancel()
            self._quiet_timer = None

    def capabilities(self) -> Mapping[str, object]:
        """``unicode``: any text arrives intact; ``symbology``: codes say their symbology."""
        return {"unicode": self.unicode, "symbology": self.settings.aim}
