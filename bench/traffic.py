"""What the soak and fuzz benches share: one-shot calls, a reconnect watch, daemon log checks."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from tests.uiclient import MSGPACK, UiClient

from . import procs

BOARD = "sim-0001"
READY_STATES = ("ready", "degraded")


class Caller:
    """Requests of one UI client, each awaited to its completion and then forgotten.

    ``UiClient.call`` keeps a reply queue per request for the whole session (fine in a
    test); a bench of a million requests would then measure its own growth.
    """

    def __init__(self, ui: UiClient) -> None:
        self.ui = ui
        self._ids = itertools.count(1)

    async def call(
        self,
        suffix: str,
        payload: Any = None,
        *,
        raw: bytes | None = None,
        content_type: str = MSGPACK,
        response_topic: str | None = None,
        expiry: int | None = None,
        timeout: float = 10.0,
    ) -> list[dict[str, Any]] | None:
        """Publish to ``{root}/{suffix}``; all replies up to the completion, None if none came.

        ``timeout`` is seconds until the completion.  ``response_topic`` defaults to the
        client's own reply subtree; ``""`` sends none (the payload may name ``replyTo``).
        ``expiry`` is the MQTT message expiry in seconds (it shortens the deadline).
        """
        n = next(self._ids)
        correlation = f"b{n}".encode()
        queue = self.ui._reply_queue(correlation)  # noqa: SLF001 - the test client's router
        try:
            await self.ui.send(
                f"{self.ui.root}/{suffix}",
                payload,
                raw=raw,
                content_type=content_type,
                response_topic=self.ui.reply_topic("b")
                if response_topic is None
                else response_topic or None,
                correlation=correlation,
                expiry=expiry,
            )
            replies: list[dict[str, Any]] = []
            async with asyncio.timeout(timeout):
                while True:
                    reply = (await queue.get()).payload
                    replies.append(reply)
                    if isinstance(reply, dict) and reply.get("type") == "completion":
                        return replies
        except TimeoutError:
            return None
        finally:
            self.ui._replies.pop(correlation.decode(), None)  # noqa: SLF001

    def next_id(self, prefix: str) -> str:
        """A request id unique within this run."""
        return f"{prefix}-{next(self._ids)}"


@dataclass
class LinkWatch:
    """Counts the daemon's reconnects to its broker, seen from outside.

    The daemon republishes its retained ``description`` on every connect and the
    broker publishes its will (``status`` offline) when it loses the daemon.
    """

    descriptions: int = 0
    offline: int = 0
    statuses: list[str] = field(default_factory=list)

    @property
    def reconnects(self) -> int:
        """Connections after the one the watch started on."""
        return max(0, self.descriptions - 1)


@contextlib.asynccontextmanager
async def watch_link(ui: UiClient) -> AsyncIterator[LinkWatch]:
    """Watch ``description`` and ``status`` for the duration (the first ones are retained)."""
    watch = LinkWatch()
    async with (
        ui.subscription(f"{ui.root}/description") as descriptions,
        ui.subscription(f"{ui.root}/status") as statuses,
    ):

        async def count() -> None:
            while True:
                received = await descriptions.get()
                watch.descriptions += 1
                del received

        async def states() -> None:
            while True:
                received = await statuses.get()
                state = (
                    received.payload.get("state") if isinstance(received.payload, dict) else None
                )
                watch.statuses.append(str(state))
                watch.offline += state == "offline"

        tasks = [asyncio.create_task(count()), asyncio.create_task(states())]
        try:
            yield watch
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)


async def wait_ready(ui: UiClient, timeout: float = 15.0) -> dict[str, Any]:
    """The daemon's retained status once it is ready or degraded."""
    async with ui.subscription(f"{ui.root}/status") as statuses, asyncio.timeout(timeout):
        while True:
            status = (await statuses.get()).payload
            if isinstance(status, dict) and status.get("state") in READY_STATES:
                return status


def log_problems(daemon: procs.Daemon) -> dict[str, int]:
    """Tracebacks, unretrieved task exceptions and ERROR lines in the daemon's log."""
    text = daemon.log_path.read_text(encoding="utf-8", errors="replace")
    return {
        "tracebacks": text.count("Traceback (most recent call last)"),
        "unretrievedTaskExceptions": text.count("exception was never retrieved"),
        "errorLines": sum(
            1
            for line in text.splitlines()
            if line.startswith(("ERROR ", "CRITICAL ", "<3>", "<2>"))
        ),
    }
