"""``kioskd fleet watch`` with a broker it cannot reach says so instead of an empty table."""

from __future__ import annotations

import asyncio
import contextlib
import io

from rich.console import Console

from daemon.broker import free_port
from daemon.fleet.feed import FleetBroker
from daemon.fleet.watch import run_watch


async def test_watch_says_it_is_not_connected() -> None:
    out = io.StringIO()
    console = Console(file=out, width=120, force_terminal=False)
    url = f"mqtt://127.0.0.1:{free_port()}"
    broker = FleetBroker(url, connect_timeout=1.0, reconnect_max_s=0.5)
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(run_watch(broker, console=console), 0.5)
    assert f"not connected to {url}: retrying" in out.getvalue()
