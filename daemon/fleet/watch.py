"""``kioskd fleet watch``: a live terminal table of every board, problems first.

Columns: board, status (``up``/``DEAD``/``SILENT`` and the daemon's own
ready/degraded), last seen, degraded devices, paper, outbox depth and drops,
SoC temperature, certificate days left, version.  A board whose death arrived
is flagged ``DEAD``; one that is up but unheard for three health intervals is
flagged ``SILENT``.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from rich.console import Console
from rich.live import Live
from rich.table import Table
from rich.text import Text

from daemon.fleet_topics import session_filters, telemetry_filters

from .feed import FleetBroker, feed
from .model import Board, FleetModel

REFRESH_S = 1.0
CERT_WARN_DAYS = 30
TEMP_WARN_C = 75.0


def _ago(seconds: float) -> str:
    if seconds < 60:  # noqa: PLR2004 - units
        return f"{seconds:.0f}s"
    if seconds < 3600:  # noqa: PLR2004
        return f"{seconds / 60:.0f}m"
    return f"{seconds / 3600:.1f}h"


def _status(board: Board, now: float) -> Text:
    if not board.up:
        return Text("DEAD" if board.death is not None else "unknown", style="bold red")
    if board.silent(now):
        return Text("SILENT", style="bold yellow")
    daemon = (board.health or {}).get("status", "up")
    return Text(str(daemon), style="green" if daemon == "ready" else "yellow")


def _devices(health: dict[str, Any]) -> tuple[str, str]:
    """(degraded devices, paper) from a health message."""
    degraded, paper = [], "-"
    for device, info in sorted((health.get("devices") or {}).items()):
        if info.get("state") not in ("online", "busy"):
            degraded.append(f"{device}:{info.get('state')}")
        facts = info.get("facts") or {}
        if info.get("deviceClass") == "printer" and "paper" in facts:
            paper = str(facts["paper"])
    return ", ".join(degraded) or "-", paper


def _rank(board: Board, now: float) -> tuple[int, str, str]:
    health = board.health or {}
    if not board.up:
        level = 0
    elif board.silent(now):
        level = 1
    elif health.get("status") != "ready":
        level = 2
    else:
        level = 3
    return level, board.tenant, board.board


def render(model: FleetModel, now: float | None = None) -> Table:
    """The table of every board in ``model``, problems first."""
    now = time.time() if now is None else now
    boards = sorted(model.boards.values(), key=lambda b: _rank(b, now))
    up = sum(1 for b in boards if b.up and not b.silent(now))
    table = Table(title=f"kioskd fleet: {up}/{len(boards)} boards up", expand=True)
    columns = (
        "board",
        "status",
        "seen",
        "degraded",
        "paper",
        "outbox",
        "temp",
        "cert",
        "ver",
        "update",
    )
    for column in columns:
        table.add_column(column, no_wrap=column != "degraded")
    for board in boards:
        health = board.health or {}
        degraded, paper = _devices(health)
        outbox = health.get("outbox") or {}
        depth = f"{outbox.get('messages', '-')}"
        if outbox.get("dropped"):
            depth += f" ({outbox['dropped']} dropped)"
        temp = (health.get("system") or {}).get("socTempC")
        days = health.get("certDaysLeft")
        table.add_row(
            f"{board.tenant}/{board.board}",
            _status(board, now),
            _ago(max(0.0, now - board.last_seen)),
            Text(degraded, style="yellow" if degraded != "-" else ""),
            Text(paper, style="yellow" if paper in ("low", "out", "jammed") else ""),
            depth,
            Text(
                "-" if temp is None else f"{temp:.0f}°C",
                style="red" if temp is not None and temp >= TEMP_WARN_C else "",
            ),
            Text(
                "-" if days is None else f"{days:.0f}d",
                style="red" if days is not None and days < CERT_WARN_DAYS else "",
            ),
            str((board.birth or {}).get("version", "-")),
            _update(board),
        )
    return table


def _update(board: Board) -> Text:
    """The last update's state (health's, newer than birth's), its target and any reason."""
    update = board.update()
    if not update or update.get("state") in (None, "idle"):
        return Text("-")
    state = str(update["state"])
    if state == "committed":
        return Text(state)
    text = f"{state} {update.get('target', '')}".strip()
    if update.get("reason"):
        text += f": {update['reason']}"
    return Text(text, style="red" if state in ("rolledBack", "failed") else "yellow")


async def run_watch(
    broker: FleetBroker, *, tenant: str = "+", console: Console | None = None
) -> None:
    """Show the live table until cancelled (Ctrl-C).

    Raises:
        TransportError: the broker URL or TLS files are unusable.

    """
    model = FleetModel()

    def sink(topic: str, payload: bytes, content_type: str | None) -> None:
        model.ingest(topic, payload, content_type)

    def view() -> Table:
        table = render(model)
        if not connected.is_set():
            # feed() retries quietly; without this a wrong URL shows an empty table forever.
            table.caption = f"not connected to {broker.url}: retrying"
        return table

    connected = asyncio.Event()
    filters = session_filters(tenant) + telemetry_filters(tenant)
    task = asyncio.get_running_loop().create_task(
        feed(broker, filters, sink, connected), name="fleet-feed"
    )
    try:
        with Live(view(), console=console, auto_refresh=False) as live:
            while not task.done():
                live.update(view(), refresh=True)
                await asyncio.wait({task}, timeout=REFRESH_S)
        task.result()
    finally:
        task.cancel()
