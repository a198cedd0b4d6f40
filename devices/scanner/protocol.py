"""The ``scanner`` device class: a read waits for the first code.

Drivers only deliver decoded codes through :meth:`Scanner.code_scanned` (and
frames they could not decode through :meth:`Scanner.code_rejected`); the class
holds the command semantics shared by every driver: one pending ``read``
gets the next code; in continuous mode every code also goes, as an event reply,
to the requester of the ``setMode`` that turned it on (never broadcast); otherwise
a code nobody waits for is dropped (scanned codes are identity data and are never
buffered).

Continuous mode is bound to one ``setMode {continuous: true}`` request at a time.
Any requester may turn it off or take it over with its own ``setMode``: a ``read``
gives any requester the next code anyway, and refusing others would let a UI that
went away (the daemon cannot see another client disconnect) hold the codes until
a restart.  The request that loses the mode gets a last event, ``continuousEnded``.
"""

from __future__ import annotations

from typing import ClassVar

from devices.base import (
    CommandContext,
    Device,
    EventSink,
    Message,
    NoParams,
    Params,
    RetiredEvent,
    SettingsT_co,
    command,
)
from devices.errors import SequenceError


class ScanResult(Message):
    """Result of ``read`` and data of the ``scanned`` event reply of continuous mode.

    ``symbology`` is a lower-case name (``qr``, ``code128``, ``ean13``,
    ``datamatrix``, ``pdf417``) or ``unknown`` when the scanner does not say.
    """

    text: str
    symbology: str = "unknown"


class ScanRejected(Message):
    """A frame the scanner sent that is not a deliverable code; carries no content.

    ``reason``: ``invalidEncoding`` (bytes that are not UTF-8), ``overlong``,
    ``partial`` (the frame stopped before its end) or ``framing`` (prefix or
    suffix missing, empty frame).  Sent to a waiting ``read``'s requester as an
    intermediate event (the read goes on), and broadcast in continuous mode.
    """

    reason: str


class SetModeParams(Params):
    """``setMode``: ``continuous`` sends every code to this request's requester.

    Each code goes as an event reply ``scanned`` on this request's reply topic (with
    its correlation data and encoding) until continuous mode is turned off or taken
    over (any requester's ``setMode``) or the daemon restarts.
    """

    continuous: bool


class ScannerDetail(Message):
    """State detail: whether continuous mode is on (for some requester; not whose)."""

    continuous: bool = False


class ModeResult(Message):
    """Result of ``setMode``."""

    continuous: bool


class ContinuousEnded(Message):
    """Last event reply of a ``setMode {continuous: true}``: no more codes come to it.

    ``reason``: ``turnedOff`` (a ``setMode {continuous: false}``, from any requester)
    or ``takenOver`` (a later ``setMode {continuous: true}``, whose requester gets
    the codes from now on).
    """

    reason: str


class Scanner(Device[SettingsT_co, ScannerDetail]):
    """Base of scanner drivers."""

    device_class: ClassVar[str] = "scanner"
    events: ClassVar[dict[str, type[Message]]] = {"rejected": ScanRejected}
    retired_events: ClassVar[dict[str, RetiredEvent]] = {
        "scanned": RetiredEvent(
            ScanResult,
            "in continuous mode each code is an event reply `scanned` on the reply topic "
            "of the `setMode` that turned it on, to its requester alone",
        ),
    }
    detail_type = ScannerDetail

    _reading: CommandContext | None = None
    _scanned: ScanResult | None = None
    #: Event replies to the ``setMode`` request continuous mode is bound to.
    _continuous: EventSink | None = None

    @property
    def continuous(self) -> bool:
        """True while continuous mode is on."""
        return self.detail.continuous

    @command(
        "read", NoParams, ScanResult, 30_000, 600_000, long=True, events={"rejected": ScanRejected}
    )
    async def read(self, _params: NoParams, ctx: CommandContext) -> ScanResult:
        """Wait for the next code; the lifecycle ends it at the deadline or on cancel.

        Raises:
            SequenceError: another read is already waiting.
            Offline, HardwareError: the scanner went away while waiting.

        """
        if self._reading is not None:
            raise SequenceError("a read is already waiting on this scanner")
        self._reading = ctx
        try:
            await self.wait_until(lambda: self._scanned is not None, None)
            assert self._scanned is not None
            return self._scanned
        finally:
            self._reading = None
            self._scanned = None

    @command(
        "setMode",
        SetModeParams,
        ModeResult,
        2_000,
        10_000,
        queued=False,
        events={"scanned": ScanResult, "continuousEnded": ContinuousEnded},
    )
    async def set_mode(self, params: SetModeParams, ctx: CommandContext) -> ModeResult:
        """Bind continuous mode to this request (``continuous: true``) or turn it off.

        The request it was bound to before, if any, gets ``continuousEnded``.
        """
        previous, self._continuous = self._continuous, ctx.emit if params.continuous else None
        if previous is not None:
            reason = "takenOver" if params.continuous else "turnedOff"
            previous("continuousEnded", ContinuousEnded(reason=reason))
        self.update_detail(continuous=params.continuous)
        return ModeResult(continuous=params.continuous)

    def code_scanned(self, text: str, symbology: str = "unknown") -> None:
        """Deliver a decoded code (drivers call this on the event loop)."""
        result = ScanResult(text=text, symbology=symbology)
        if self._reading is not None and self._scanned is None:
            self._scanned = result
            self.wake()
        if self._continuous is not None:
            self._continuous("scanned", result)

    def code_rejected(self, reason: str) -> None:
        """Report a frame that could not be decoded (drivers call this on the event loop)."""
        rejected = ScanRejected(reason=reason)
        if self._reading is not None and self._scanned is None:
            self._reading.emit("rejected", rejected)
        if self.continuous:
            self.emit("rejected", rejected)

    async def safe_state(self) -> None:
        """Scanners hold nothing that must be made safe."""
