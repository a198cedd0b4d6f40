"""A serial line for wire simulators: a socat pty (driver end) relayed to a socket (device end).

``socat pty,link=<driver_link> FD:<n>`` creates a pseudo-terminal that the
real driver opens through its symlink exactly as it opens ``/dev/ttyACM0``,
and relays it to one end of a Unix socket pair; the simulator holds the other
end and speaks the device's protocol on it (scanner frames, ccTalk packets).
Stopping socat makes the link disappear and the driver's reads fail with
``EIO``: what a USB unplug looks like to the driver.  Starting again creates
the link anew at the same path.

A socket rather than a second pty as the device end, because a socket shows
how much of what the simulator wrote socat has not taken yet (``SIOCOUTQ``);
with the driver end's input queue (``TIOCINQ``) that gives :meth:`pending`.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import socket
import struct
import termios
from pathlib import Path

from devices.process import owned_child

#: How long socat may take to create its link, in seconds.
START_TIMEOUT_S = 3.0


def _ioctl_int(fd: int, request: int) -> int:
    value: int = struct.unpack("i", fcntl.ioctl(fd, request, b"\0\0\0\0"))[0]
    return value


class PtyPair:
    """A socat-made pty at ``driver_link`` whose far end is this object.

    Args:
        driver_link: where the driver's end appears (the driver's ``port``).

    """

    def __init__(self, driver_link: Path) -> None:
        self.driver_link = driver_link
        self._proc: asyncio.subprocess.Process | None = None
        self._sock: socket.socket | None = None
        self._driver_fd: int | None = None

    @property
    def running(self) -> bool:
        """True while socat runs."""
        return self._proc is not None and self._proc.returncode is None

    async def start(self) -> None:
        """Start socat; returns once the link exists.

        Raises:
            OSError: socat did not create the link within :data:`START_TIMEOUT_S`.

        """
        if self.running:
            return
        self.driver_link.parent.mkdir(parents=True, exist_ok=True)
        self.driver_link.unlink(missing_ok=True)
        mine, theirs = socket.socketpair()
        with theirs:
            self._proc = await asyncio.create_subprocess_exec(
                "socat",
                f"pty,raw,echo=0,link={self.driver_link}",
                f"FD:{theirs.fileno()}",
                pass_fds=(theirs.fileno(),),
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.DEVNULL,
                **owned_child(),
            )
        mine.setblocking(False)  # noqa: FBT003 - the socket API
        self._sock = mine
        loop = asyncio.get_running_loop()
        until = loop.time() + START_TIMEOUT_S
        while not self.driver_link.exists():
            if loop.time() > until or self._proc.returncode is not None:
                await self.stop()
                raise OSError(f"socat did not create {self.driver_link} in {START_TIMEOUT_S:g} s")
            await asyncio.sleep(0.01)
        # Held open, never read: it shows what the driver has not read yet
        # (the input queue is the tty's, shared by every opener).
        self._driver_fd = os.open(self.driver_link, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)

    def write(self, data: bytes) -> None:
        """Send ``data`` towards the driver now.

        Raises:
            OSError: the pair is stopped, or its buffers are full.

        """
        if self._sock is None:
            raise OSError("the pty pair is stopped")
        view = memoryview(data)
        while view:
            view = view[self._sock.send(view) :]

    async def read(self, max_bytes: int = 4096, *, timeout_s: float) -> bytes:
        """What the driver wrote (at least one byte).

        Raises:
            TimeoutError: nothing within ``timeout_s`` seconds.
            OSError: the pair is stopped.

        """
        if self._sock is None:
            raise OSError("the pty pair is stopped")
        async with asyncio.timeout(timeout_s):
            return await asyncio.get_running_loop().sock_recv(self._sock, max_bytes)

    def pending(self) -> int:
        """Bytes written that the driver has not read yet (0 once it has them all)."""
        if self._sock is None or self._driver_fd is None:
            return 0
        unsent = _ioctl_int(self._sock.fileno(), termios.TIOCOUTQ)
        return unsent + _ioctl_int(self._driver_fd, termios.TIOCINQ)

    async def stop(self) -> None:
        """Kill socat (the pty and its link disappear) and close this end; idempotent."""
        if self._driver_fd is not None:
            os.close(self._driver_fd)
            self._driver_fd = None
        if self._sock is not None:
            self._sock.close()
            self._sock = None
        proc, self._proc = self._proc, None
        if proc is not None and proc.returncode is None:
            # SIGKILL: the kernel closes the pty at once, as an unplug does, without
            # socat having to be scheduled first; the link is removed below.
            proc.kill()
            await proc.wait()
        with contextlib.suppress(FileNotFoundError):
            self.driver_link.unlink()
