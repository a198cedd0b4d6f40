"""A socat pty pair: two linked pseudo-terminals, for a driver and a simulated device.

``socat pty,link=A pty,link=B`` copies every byte written to one end to the
other, with raw line settings; either end may be closed and reopened (a driver
restarting, a daemon killed) while socat keeps running.  The pair lives until
:meth:`PtyPair.aclose`.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
from pathlib import Path
from typing import Self

from devices.errors import Offline
from devices.process import owned_child

#: How long socat may take to create both links, in s.
START_TIMEOUT_S = 5.0


def _ready(proc: asyncio.subprocess.Process, *links: Path) -> bool:
    """True once socat created every link (a stat on a local directory, microseconds).

    Raises:
        Offline: socat exited.

    """
    if proc.returncode is not None:
        raise Offline(f"socat exited with {proc.returncode}")
    return all(link.exists() for link in links)


class PtyPair:
    """Start with :meth:`start`; ``host`` is the driver's end, ``device`` the simulator's."""

    def __init__(self, host: Path, device: Path, proc: asyncio.subprocess.Process) -> None:
        self.host = host
        self.device = device
        self._proc = proc

    @classmethod
    async def start(cls, host: Path, device: Path) -> PtyPair:
        """Run socat with links at ``host`` and ``device``; return once both exist.

        Raises:
            Offline: socat is missing, exited, or did not create the links within 5 s.

        """
        socat = shutil.which("socat")
        if socat is None:
            raise Offline("socat is not installed (apt install socat)")
        for link in (host, device):
            link.parent.mkdir(parents=True, exist_ok=True)
            link.unlink(missing_ok=True)
        proc = await asyncio.create_subprocess_exec(
            socat,
            f"pty,raw,echo=0,link={host}",
            f"pty,raw,echo=0,link={device}",
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
            **owned_child(),
        )
        pair = cls(host, device, proc)
        try:
            async with asyncio.timeout(START_TIMEOUT_S):
                while not _ready(proc, host, device):  # noqa: ASYNC110 - another process makes them
                    await asyncio.sleep(0.01)
        except TimeoutError:
            await pair.aclose()
            raise Offline("socat did not create its ptys in time") from None
        except BaseException:
            await pair.aclose()
            raise
        return pair

    async def __aenter__(self) -> Self:
        """Use the running pair in ``async with``."""
        return self

    async def __aexit__(self, *exc: object) -> None:
        """Stop socat."""
        await self.aclose()

    async def aclose(self) -> None:
        """Stop socat and remove the links (idempotent)."""
        if self._proc.returncode is None:
            self._proc.terminate()
            try:
                async with asyncio.timeout(2):
                    await self._proc.wait()
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    self._proc.kill()
                await self._proc.wait()
        for link in (self.host, self.device):
            link.unlink(missing_ok=True)
