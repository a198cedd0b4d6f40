"""Reading a non-blocking character device (evdev, hidraw) on the event loop.

The fd is watched with ``loop.add_reader``; each wake-up reads what is there
with one ``os.read``, which for evdev is whole ``input_event`` records and for
hidraw exactly one report.  End of file or an I/O error (``ENODEV``/``EIO``
after an unplug) means the device is gone: :class:`~devices.errors.Offline`.
"""

from __future__ import annotations

import asyncio
import os
from collections import deque

from devices.errors import Offline, Timeout

#: Largest read: many evdev records or one HID report (hidraw reports are at most 4 KiB).
READ_BYTES = 4096


class FdReader:
    """Chunks read from a non-blocking fd that the caller opened (and closes).

    Args:
        fd: an open, non-blocking file descriptor.
        name: the device path, for messages.
        discard: first drop what is already waiting (input queued before the open).

    """

    def __init__(self, fd: int, name: str, *, discard: bool = False) -> None:
        self.fd = fd
        self.name = name
        self._chunks: deque[bytes] = deque()
        self._lost: str | None = None
        self._changed = asyncio.Event()
        self._loop = asyncio.get_running_loop()
        while discard:
            try:
                discard = bool(os.read(fd, READ_BYTES))
            except OSError:
                discard = False
        self._loop.add_reader(fd, self._ready)

    def _ready(self) -> None:
        try:
            data = os.read(self.fd, READ_BYTES)
        except BlockingIOError:
            return
        except OSError as exc:
            self._lose(str(exc))
            return
        if not data:
            self._lose("end of file")
            return
        self._chunks.append(data)
        self._changed.set()

    def _lose(self, why: str) -> None:
        self._lost = why
        self._loop.remove_reader(self.fd)
        self._changed.set()

    async def read(self, timeout_s: float | None) -> bytes:
        """The next chunk, as one ``os.read`` returned it.

        Raises:
            Timeout: nothing within ``timeout_s`` seconds (``None``: wait forever).
            Offline: the device is gone.

        """
        try:
            async with asyncio.timeout(timeout_s):
                while not self._chunks:
                    if self._lost is not None:
                        raise Offline(f"{self.name} vanished: {self._lost}")
                    self._changed.clear()
                    await self._changed.wait()
        except TimeoutError:
            raise Timeout(f"nothing from {self.name} within {timeout_s:g} s") from None
        return self._chunks.popleft()

    def close(self) -> None:
        """Stop watching the fd (the caller closes it); idempotent."""
        if self._lost is None:
            self._lost = "closed"
            self._loop.remove_reader(self.fd)
