"""PC/SC through pyscard: the thread seam between pcsc-lite's blocking calls and the loop.

pcsc-lite's calls block (``SCardGetStatusChange`` waits for a change,
``SCardTransmit`` for the card), so each :class:`PcscContext` owns one PC/SC
context and one dedicated worker thread (a :class:`~devices.runtime.worker.Worker`)
that makes every call on it, in order.  The loop awaits them with a timeout on
every call.  A call that overruns its timeout leaves the thread busy until
pcsc-lite returns (its result is dropped); the context then reports
:class:`~devices.errors.HardwareError` and the driver starts over with a new
one.  ``SCardCancel`` is the one call made from the loop thread: pcsc-lite
provides it to wake a blocked status wait.

Error codes map to the device error tree: the service or reader gone is
:class:`~devices.errors.Offline`, the card gone is :class:`CardGone` (a
``MediaError``), anything else a ``HardwareError``.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Self, TypeVar

from smartcard import scard

from devices.errors import HardwareError, MediaError, Offline, Timeout
from devices.runtime.worker import Worker

T = TypeVar("T")

#: How long a call may take beyond its own wait before the context is declared stuck, s.
CALL_MARGIN_S = 2.0
_SW_BYTES = 2

_OFFLINE = frozenset(
    {
        scard.SCARD_E_NO_SERVICE,
        scard.SCARD_E_SERVICE_STOPPED,
        scard.SCARD_E_NO_READERS_AVAILABLE,
        scard.SCARD_E_UNKNOWN_READER,
        scard.SCARD_E_READER_UNAVAILABLE,
        scard.SCARD_E_INVALID_HANDLE,
    }
)
_CARD_GONE = frozenset(
    {
        scard.SCARD_W_REMOVED_CARD,
        scard.SCARD_E_NO_SMARTCARD,
        scard.SCARD_W_RESET_CARD,
        scard.SCARD_W_UNPOWERED_CARD,
        scard.SCARD_W_UNRESPONSIVE_CARD,
        scard.SCARD_E_NOT_TRANSACTED,
    }
)


class CardGone(MediaError):
    """The card left the reader (or stopped answering) during an exchange."""


def check(hresult: int, what: str) -> None:
    """Raise the device error for a pcsc-lite result code (``SCARD_S_SUCCESS`` passes).

    Raises:
        Offline: the PC/SC service or the reader is gone.
        CardGone: the card is gone.
        HardwareError: any other failure.

    """
    if hresult == scard.SCARD_S_SUCCESS:
        return
    text = f"{what}: {scard.SCardGetErrorMessage(hresult)} ({hresult & 0xFFFFFFFF:#010x})"
    if hresult in _OFFLINE:
        raise Offline(text)
    if hresult in _CARD_GONE:
        raise CardGone(text)
    raise HardwareError(text)


@dataclass(frozen=True, slots=True)
class ReaderStatus:
    """What PC/SC reports about a reader: card present or not, its ATR, the raw state bits."""

    present: bool
    atr: bytes
    event_state: int


class PcscContext:
    """One PC/SC context and the one thread that makes its calls (an async context manager)."""

    def __init__(self, name: str) -> None:
        self._name = name
        self._worker: Worker | None = None
        self._context: int | None = None

    async def _call(self, timeout_s: float, fn: Callable[..., T], *args: Any) -> T:
        if self._worker is None:
            raise Offline("PC/SC context is closed")
        try:
            return await self._worker.call(timeout_s, fn, *args)
        except TimeoutError:
            raise Timeout(f"PC/SC call did not return within {timeout_s:.1f} s") from None

    async def compute(self, fn: Callable[[], T], timeout_s: float) -> T:
        """Run a CPU-bound step (card cryptography) on this context's thread, off the loop.

        It runs in order with the context's PC/SC calls, so a chip conversation
        stays on one thread.

        Raises:
            Timeout: ``fn`` did not finish within ``timeout_s``.
            Offline: the context is closed.

        """
        return await self._call(timeout_s, fn)

    async def __aenter__(self) -> Self:
        """Start the worker thread and establish the context.

        Raises:
            Offline: pcscd is not running.

        """
        self._worker = Worker(f"pcsc-{self._name}")
        try:
            hresult, context = await self._call(
                CALL_MARGIN_S, scard.SCardEstablishContext, scard.SCARD_SCOPE_USER
            )
            check(hresult, "SCardEstablishContext")
        except BaseException:
            await self.aclose()
            raise
        self._context = context
        return self

    async def __aexit__(self, *_exc: object) -> None:
        """Release the context and stop the thread."""
        await self.aclose()

    async def aclose(self) -> None:
        """Wake a pending wait, release the context, stop the thread (idempotent)."""
        worker, self._worker = self._worker, None
        context, self._context = self._context, None
        if context is not None:
            scard.SCardCancel(context)
        if worker is None:
            return
        if context is not None:
            with contextlib.suppress(Exception):
                await worker.call(CALL_MARGIN_S, scard.SCardReleaseContext, context)
        await worker.aclose(0)

    @property
    def context(self) -> int:
        """The PC/SC context handle.

        Raises:
            Offline: the context is closed.

        """
        if self._context is None:
            raise Offline("PC/SC context is closed")
        return self._context

    async def readers(self) -> list[str]:
        """Names of the readers pcscd knows (empty when none).

        Raises:
            Offline: pcscd is gone.
            HardwareError: another PC/SC failure.

        """
        hresult, names = await self._call(CALL_MARGIN_S, scard.SCardListReaders, self.context, [])
        if hresult == scard.SCARD_E_NO_READERS_AVAILABLE:
            return []
        check(hresult, "SCardListReaders")
        return list(names)

    async def find_reader(self, pattern: str) -> str | None:
        """The first reader whose name matches the regular expression ``pattern``.

        Raises:
            Offline, HardwareError: from :meth:`readers`.

        """
        regex = re.compile(pattern)
        return next((name for name in await self.readers() if regex.search(name)), None)

    async def wait_status(
        self, reader: str, known: ReaderStatus | None, wait_ms: int
    ) -> ReaderStatus:
        """Wait up to ``wait_ms`` for the reader's state to differ from ``known``.

        Returns the current status (unchanged after the wait if nothing happened);
        ``known=None`` returns at once.

        Raises:
            Offline: the reader or pcscd went away.
            Timeout: pcsc-lite did not return (the context is stuck).
            HardwareError: another PC/SC failure.

        """
        current = known.event_state & ~scard.SCARD_STATE_CHANGED if known else 0
        states = [(reader, current)]
        hresult, result = await self._call(
            wait_ms / 1000 + CALL_MARGIN_S,
            scard.SCardGetStatusChange,
            self.context,
            0 if known is None else wait_ms,
            states,
        )
        if hresult in (scard.SCARD_E_TIMEOUT, scard.SCARD_E_CANCELLED) and known is not None:
            return known
        check(hresult, "SCardGetStatusChange")
        _name, event, atr = result[0]
        if event & (scard.SCARD_STATE_UNKNOWN | scard.SCARD_STATE_UNAVAILABLE):
            raise Offline(f"reader {reader!r} is gone")
        present = bool(event & scard.SCARD_STATE_PRESENT) and not event & scard.SCARD_STATE_MUTE
        return ReaderStatus(present, bytes(atr) if present else b"", event)

    async def connect(self, reader: str, timeout_s: float) -> PcscCard:
        """Connect to the card in ``reader`` (shared, T=0 or T=1).

        Raises:
            CardGone: no card (or it left).
            Offline, HardwareError: the reader or pcscd failed.

        """
        hresult, handle, protocol = await self._call(
            timeout_s,
            scard.SCardConnect,
            self.context,
            reader,
            scard.SCARD_SHARE_SHARED,
            scard.SCARD_PROTOCOL_T0 | scard.SCARD_PROTOCOL_T1,
        )
        check(hresult, "SCardConnect")
        return PcscCard(self, handle, protocol)


class PcscCard:
    """A connection to the card in a reader; use as an async context manager."""

    def __init__(self, context: PcscContext, handle: int, protocol: int) -> None:
        self._context = context
        self._handle = handle
        self._protocol = protocol

    async def __aenter__(self) -> Self:
        """Return the connection."""
        return self

    async def __aexit__(self, *_exc: object) -> None:
        """Disconnect, leaving the card as it is."""
        await self.disconnect()

    async def transmit(self, apdu: bytes, timeout_s: float) -> bytes:
        """Send one command APDU; return the response APDU (data and SW1 SW2).

        Raises:
            CardGone: the card left (or answered without a status word).
            Timeout: no answer within ``timeout_s``.
            Offline, HardwareError: the reader or pcscd failed.

        """
        hresult, response = await self._context._call(  # noqa: SLF001 - same seam
            timeout_s, scard.SCardTransmit, self._handle, self._protocol, list(apdu)
        )
        check(hresult, "SCardTransmit")
        if len(response) < _SW_BYTES:
            # No status word at all: the card left the field mid-exchange (vpcd
            # and contactless readers both report it so, before the removal event).
            raise CardGone("the card gave no answer: it left the reader")
        return bytes(response)

    async def disconnect(self) -> None:
        """Disconnect (best effort: the card or pcscd may already be gone)."""
        with contextlib.suppress(Exception):
            await self._context._call(  # noqa: SLF001 - same seam
                CALL_MARGIN_S, scard.SCardDisconnect, self._handle, scard.SCARD_LEAVE_CARD
            )
