"""A FIFO standing in for a character device (``/dev/input/eventN``, ``/dev/hidrawN``).

The simulator keeps the FIFO open for writing while "plugged", so a driver
that opened it for reading blocks like on the real device; unplugging closes
the write end and removes the FIFO, so the driver reads end of file, and the
path is gone until the device is plugged in again.  Each :meth:`write` of at
most ``PIPE_BUF`` (4096) bytes is atomic, so HID reports are never torn.
"""

from __future__ import annotations

import fcntl
import os
import struct
import termios
from pathlib import Path


class FifoDevice:
    """A named pipe at ``path``, present between :meth:`plug` and :meth:`unplug`."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None

    def plug(self) -> None:
        """Create the FIFO and hold it open (read-write, so opening never blocks)."""
        if self._fd is not None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.unlink(missing_ok=True)
        os.mkfifo(self.path, 0o600)
        self._fd = os.open(self.path, os.O_RDWR | os.O_NONBLOCK)

    def write(self, data: bytes) -> None:
        """Write ``data`` (atomically when at most 4096 bytes).

        Raises:
            OSError: unplugged, or the pipe is full.

        """
        if self._fd is None:
            raise OSError("the device is unplugged")
        view = memoryview(data)
        while view:
            view = view[os.write(self._fd, view) :]

    def pending(self) -> int:
        """Bytes written but not yet read by the driver."""
        if self._fd is None:
            return 0
        value: int = struct.unpack("i", fcntl.ioctl(self._fd, termios.FIONREAD, b"\0\0\0\0"))[0]
        return value

    def unplug(self) -> None:
        """Close the write end and remove the FIFO; idempotent."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        self.path.unlink(missing_ok=True)
