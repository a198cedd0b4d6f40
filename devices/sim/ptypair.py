"""A socat pty pair: two linked pseudo-terminals, the device end and the driver end.

Wire simulators of serial devices (scanner, ccTalk coin acceptor) write the
device's bytes into one end and the real driver opens the other through its
symlink, exactly as it opens ``/dev/ttyACM0``.  Stopping the pair makes both
links disappear and the driver's reads fail with ``EIO``: what a USB unplug
looks like to the driver.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import termios
import tty
from pathlib import Path

#: How long socat may take to create its links, in seconds.
START_TIMEOUT_S = 3.0


class PtyPair:
    """``socat pty,link=<driver> pty,link=<device>``, started and stopped on demand.

    Args:
        driver_link: where the driver's end appears (the driver's ``port``).
        device_link: where the simulator's end appears.

    """

    def __init__(self, driver_link: Path, device_link: Path) -> None:
        self.driver_link = driver_link
        self.device_link = device_link
        self._proc: asyncio.subprocess.Process | None = None
        self._fd: int | None = None

    @property
    def running(self) -> bool:
        """True while socat runs and the device end is open."""
        return self._proc is not None and self._proc.returncode is None and self._fd is not None

    async def start(self) -> None:
        """Start socat and open the device end (raw, non-blocking).

        Raises:
            OSError: socat did not create the links within :data:`START_TIMEOUT_S`.

        """
        if self.running:
            return
        for link in (self.driver_link, self.device_link):
            link.parent.mkdir(parents=True, exist_ok=True)
            link.unlink(missing_ok=True)
        self._proc = await asyncio.create_subprocess_exec(
            "socat",
            f"pty,raw,echo=0,link={self.driver_link}",
            f"pty,raw,echo=0,link={self.device_link}",
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
        )
        loop = asyncio.get_running_loop()
        until = loop.time() + START_TIMEOUT_S
        while not (self.driver_link.exists() and self.device_link.exists()):
            if loop.time() > until or self._proc.returncode is not None:
                await self.stop()
                raise OSError(f"socat did not create {self.driver_link} in {START_TIMEOUT_S:g} s")
            await asyncio.sleep(0.01)
        fd = os.open(self.device_link, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
        tty.setraw(fd, termios.TCSANOW)
        self._fd = fd

    def write(self, data: bytes) -> None:
        """Write ``data`` into the device end now (it reaches the driver through socat).

        Raises:
            OSError: the pair is stopped, or the pty buffer is full.

        """
        if self._fd is None:
            raise OSError("the pty pair is stopped")
        view = memoryview(data)
        while view:
            written = os.write(self._fd, view)
            view = view[written:]

    async def stop(self) -> None:
        """Stop socat (its links disappear) and close the device end; idempotent."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        proc, self._proc = self._proc, None
        if proc is not None and proc.returncode is None:
            proc.terminate()
            try:
                async with asyncio.timeout(2):
                    await proc.wait()
            except TimeoutError:
                proc.kill()
                await proc.wait()
        for link in (self.driver_link, self.device_link):
            with contextlib.suppress(FileNotFoundError):
                link.unlink()
