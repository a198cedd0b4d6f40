"""A tiny sd_notify client: READY, WATCHDOG and STOPPING to systemd.

Speaks the datagram protocol of sd_notify(3) directly on the socket named by
``NOTIFY_SOCKET`` (``@`` means the abstract namespace).  Without the variable
every call is a no-op, so the daemon runs the same outside systemd.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket

log = logging.getLogger(__name__)


class Notifier:
    """Sends notifications to systemd; never raises (a lost ping must not stop the daemon)."""

    def __init__(self, env: dict[str, str] | None = None) -> None:
        environ = os.environ if env is None else env
        path = environ.get("NOTIFY_SOCKET", "")
        self._address = "\0" + path[1:] if path.startswith("@") else path
        usec = environ.get("WATCHDOG_USEC", "")
        pid = environ.get("WATCHDOG_PID", "")
        wanted = usec.isdigit() and (not pid or pid == str(os.getpid()))
        #: Interval between watchdog pings in seconds (half the systemd timeout), or None.
        self.watchdog_interval: float | None = int(usec) / 2e6 if wanted else None

    @property
    def enabled(self) -> bool:
        """True when running under a service manager that listens."""
        return bool(self._address)

    def notify(self, message: str) -> None:
        """Send one ``KEY=VALUE`` notification (non-blocking datagram)."""
        if not self._address:
            return
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
                sock.setblocking(False)  # noqa: FBT003 - the socket API
                sock.sendto(message.encode(), self._address)
        except OSError as exc:
            log.warning("sd_notify %s failed: %s", message.split("=", 1)[0], exc)

    async def watchdog(self) -> None:
        """Ping WATCHDOG=1 from the event loop, so a stalled loop is noticed and restarted."""
        if self.watchdog_interval is None:
            return
        while True:
            self.notify("WATCHDOG=1")
            await asyncio.sleep(self.watchdog_interval)
