"""Serial lines for wire simulators, made by socat: pseudo-terminals a real driver opens.

A driver opens the pty through its symlink exactly as it opens ``/dev/ttyACM0``.
Two shapes, one socat child each (its own session, killed with the daemon):

- :class:`PtyPair`: ``socat pty,link=A pty,link=B``, two linked ptys, for a
  simulated device running in another process (the ccTalk acceptor of the chaos
  tests).  Either end may be closed and reopened while socat keeps running.
- :class:`PtyLine`: ``socat pty,link=A FD:n``, a pty relayed to one end of a Unix
  socket pair whose other end this process holds (scanner frames, in the
  daemon).  A socket, because it shows how much of what the simulator wrote
  socat has not taken yet (``SIOCOUTQ``); with the pty's input queue
  (``TIOCINQ``) that gives :meth:`PtyLine.pending`.

Stopping socat makes the links disappear and the driver's reads fail with
``EIO``: what a USB unplug looks like to the driver.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import shutil
import socket
import struct
import termios
from collections.abc import Sequence
from pathlib import Path
from typing import Self

from devices.errors import Offline
from devices.runtime.process import owned_child

#: How long socat may take to create its links, in s.
START_TIMEOUT_S = 5.0
#: How long a terminated socat may take to exit before it is killed, in s.
STOP_TIMEOUT_S = 2.0


async def _start_socat(
    addresses: Sequence[str], links: Sequence[Path], pass_fds: Sequence[int] = ()
) -> asyncio.subprocess.Process:
    """Run ``socat addresses...``; return once every link exists.

    Raises:
        Offline: socat is missing, exited, or did not create the links within
            :data:`START_TIMEOUT_S`.

    """
    socat = shutil.which("socat")
    if socat is None:
        raise Offline("socat is not installed (apt install socat)")
    for link in links:
        link.parent.mkdir(parents=True, exist_ok=True)
        link.unlink(missing_ok=True)
    proc = await asyncio.create_subprocess_exec(
        socat,
        *addresses,
        pass_fds=pass_fds,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
        **owned_child(),
    )
    try:
        async with asyncio.timeout(START_TIMEOUT_S):
            while not _links_made(proc, links):  # noqa: ASYNC110 - another process makes them
                await asyncio.sleep(0.01)
    except TimeoutError:
        await _stop_socat(proc, links, kill=True)
        raise Offline(f"socat did not create {links[0]} in {START_TIMEOUT_S:g} s") from None
    except BaseException:
        await _stop_socat(proc, links, kill=True)
        raise
    return proc


def _links_made(proc: asyncio.subprocess.Process, links: Sequence[Path]) -> bool:
    """True once socat created every link (a stat on a local directory, microseconds).

    Raises:
        Offline: socat exited.

    """
    if proc.returncode is not None:
        raise Offline(f"socat exited with {proc.returncode}")
    return all(link.exists() for link in links)


async def _stop_socat(
    proc: asyncio.subprocess.Process, links: Sequence[Path], *, kill: bool
) -> None:
    """End socat and remove its links (idempotent).

    ``kill``: SIGKILL at once, so the kernel closes the pty as an unplug does,
    without socat having to be scheduled first; else SIGTERM, then SIGKILL after
    :data:`STOP_TIMEOUT_S`.
    """
    if proc.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            if kill:
                proc.kill()
            else:
                proc.terminate()
        try:
            async with asyncio.timeout(STOP_TIMEOUT_S):
                await proc.wait()
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()
    for link in links:
        link.unlink(missing_ok=True)


class PtyPair:
    """Two linked ptys: ``host`` is the driver's end, ``device`` the simulator's.

    Start with :meth:`start`; the pair lives until :meth:`aclose`.
    """

    def __init__(self, host: Path, device: Path, proc: asyncio.subprocess.Process) -> None:
        self.host = host
        self.device = device
        self._proc = proc

    @classmethod
    async def start(cls, host: Path, device: Path) -> PtyPair:
        """Run socat with links at ``host`` and ``device``; return once both exist.

        Raises:
            Offline: socat is missing, exited, or did not create the links in time.

        """
        proc = await _start_socat(
            (f"pty,raw,echo=0,link={host}", f"pty,raw,echo=0,link={device}"), (host, device)
        )
        return cls(host, device, proc)

    async def __aenter__(self) -> Self:
        """Use the running pair in ``async with``."""
        return self

    async def __aexit__(self, *exc: object) -> None:
        """Stop socat."""
        await self.aclose()

    async def aclose(self) -> None:
        """Stop socat and remove the links (idempotent)."""
        await _stop_socat(self._proc, (self.host, self.device), kill=False)


def _ioctl_int(fd: int, request: int) -> int:
    value: int = struct.unpack("i", fcntl.ioctl(fd, request, b"\0\0\0\0"))[0]
    return value


class PtyLine:
    """A pty at ``driver_link`` whose far end is this object; started and stopped at will.

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
        """Start socat (unless running); returns once the link exists.

        Raises:
            Offline: socat is missing, exited, or did not create the link in time.

        """
        if self.running:
            return
        mine, theirs = socket.socketpair()
        with theirs:
            try:
                self._proc = await _start_socat(
                    (f"pty,raw,echo=0,link={self.driver_link}", f"FD:{theirs.fileno()}"),
                    (self.driver_link,),
                    pass_fds=(theirs.fileno(),),
                )
            except BaseException:
                mine.close()
                raise
        mine.setblocking(False)  # noqa: FBT003 - the socket API
        self._sock = mine
        # Held open, never read: it shows what the driver has not read yet
        # (the input queue is the tty's, shared by every opener).
        self._driver_fd = os.open(self.driver_link, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)

    def write(self, data: bytes) -> None:
        """Send ``data`` towards the driver now.

        Raises:
            OSError: the line is stopped, or its buffers are full.

        """
        if self._sock is None:
            raise OSError("the pty line is stopped")
        view = memoryview(data)
        while view:
            view = view[self._sock.send(view) :]

    async def read(self, max_bytes: int = 4096, *, timeout_s: float) -> bytes:
        """What the driver wrote (at least one byte).

        Raises:
            TimeoutError: nothing within ``timeout_s`` seconds.
            OSError: the line is stopped.

        """
        if self._sock is None:
            raise OSError("the pty line is stopped")
        async with asyncio.timeout(timeout_s):
            return await asyncio.get_running_loop().sock_recv(self._sock, max_bytes)

    def pending(self) -> int:
        """Bytes written that the driver has not read yet (0 once it has them all)."""
        if self._sock is None or self._driver_fd is None:
            return 0
        unsent = _ioctl_int(self._sock.fileno(), termios.TIOCOUTQ)
        return unsent + _ioctl_int(self._driver_fd, termios.TIOCINQ)

    async def stop(self) -> None:
        """Kill socat (the pty and its link disappear, as on an unplug); idempotent."""
        if self._driver_fd is not None:
            os.close(self._driver_fd)
            self._driver_fd = None
        if self._sock is not None:
            self._sock.close()
            self._sock = None
        proc, self._proc = self._proc, None
        if proc is not None:
            await _stop_socat(proc, (self.driver_link,), kill=True)
