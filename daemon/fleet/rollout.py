"""``kioskd fleet update``: one stage of a staged release, sent and followed to its outcome.

The tool learns the fleet from the retained births (as ``kioskd fleet watch``
does), picks the stage's targets (boards by id, one site, the stable percentage
sample of :mod:`daemon.fleet.stage`, or all), publishes the fleet command
``update`` ``{requestId, version}`` (QoS 1) to every target that is up, then
follows each one's command reply and the ``update`` of its birth and health
(the updater's outcome names the request id) until every target ended or the
timeout passed.

A target ends ``committed``; ``rolledBack`` (the health gate failed, the version
before is back); or ``refused`` (nothing changed: the board does not allow
``update``, or its updater refused the version, e.g. one the repository does not
have).  One that did not end keeps the last step seen: ``offline`` (down when the
stage started: not sent, since a board connects with a clean start and would never
get it), ``unknown`` (no birth of that id on the broker: not sent), ``sent`` (no
reply), ``handedOver`` (the board gave it to its updater), or the updater's phase
(``fetching``, ``installing``, ``gating``, ``rollingBack``).
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import aiomqtt
from rich.table import Table
from rich.text import Text

from daemon.fleet_topics import FleetKind, FleetTopics, parse, session_filters, telemetry_filters
from daemon.mqtt.codec import MSGPACK_CODEC, DecodeError, for_content_type
from daemon.mqtt.link import publish_properties
from daemon.update.updater import VERSION
from daemon.uplink.schema import FleetRequest
from daemon.uplink.transport import TransportError

from .feed import FleetBroker, client_maker, feed, new_client_id
from .model import Board, FleetModel
from .stage import in_sample

#: Discovery ends once no birth or death arrived for this long (s) after subscribing...
SETTLE_S = 0.5
#: ...or after this long (s) at most (the broker sends every retained birth at once).
DISCOVER_MAX_S = 10.0
#: Seconds the broker has to acknowledge each command (QoS 1).
PUBLISH_TIMEOUT_S = 10.0
#: How a target can end.
ENDED = frozenset({"committed", "rolledBack", "refused"})
#: Not sent: nothing will come from these.
NOT_SENT = frozenset({"offline", "unknown"})
#: The updater's states (``update.state`` in birth and health) as a target's state.
_UPDATER_STATES = {
    "fetching": "fetching",
    "installing": "installing",
    "gating": "gating",
    "rollingBack": "rollingBack",
    "committed": "committed",
    "rolledBack": "rolledBack",
    "failed": "refused",  # refused before anything was installed
}


@dataclass(frozen=True, slots=True)
class Selection:
    """The boards of one stage: ``boards`` by id, one ``site``, a ``percent`` sample, or ``every``.

    Raises:
        ValueError: not exactly one of them, or a percentage outside 0-100.

    """

    boards: tuple[str, ...] = ()
    site: str | None = None
    percent: int | None = None
    every: bool = False

    def __post_init__(self) -> None:
        chosen = [bool(self.boards), self.site is not None, self.percent is not None, self.every]
        if sum(chosen) != 1:
            raise ValueError("choose the targets with one of --board, --site, --percent or --all")
        if self.percent is not None and not 0 <= self.percent <= 100:  # noqa: PLR2004 - percent
            raise ValueError(f"--percent must be 0-100, not {self.percent}")

    def matches(self, board: Board) -> bool:
        """Whether ``board`` (its birth held) belongs to this stage."""
        if self.boards:
            return board.board in self.boards
        if self.site is not None:
            return (board.birth or {}).get("site") == self.site
        if self.percent is not None:
            return in_sample(board.board, self.percent)
        return True


@dataclass
class Target:
    """One board of the stage: where its update stands (module docstring) and why."""

    tenant: str
    board: str
    site: str = ""
    version_from: str = ""
    version: str = ""
    state: str = "pending"
    reason: str = ""

    @property
    def name(self) -> str:
        """``tenant/board``, as ``kioskd fleet watch`` shows it."""
        return f"{self.tenant}/{self.board}"

    @property
    def ended(self) -> bool:
        """Committed, rolled back or refused."""
        return self.state in ENDED

    @property
    def waiting(self) -> bool:
        """Sent and not ended: an outcome may still come."""
        return not self.ended and self.state not in NOT_SENT


class Rollout:
    """One stage: its targets and what every fleet message says about them.

    Args:
        version: the package version to install; only a Debian version, as the board checks.
        selection: which boards.
        on_change: called with a target whenever its state changes (progress output).

    Raises:
        ValueError: ``version`` is not a package version.

    """

    def __init__(
        self,
        version: str,
        selection: Selection,
        on_change: Callable[[Target], None] | None = None,
    ) -> None:
        if not VERSION.fullmatch(version):
            raise ValueError(
                f"not a package version: {version!r} (a board accepts nothing else, "
                "never a URL, a path or an option)"
            )
        self.version = version
        self.selection = selection
        self.request_id = f"rollout-{secrets.token_hex(6)}"
        self.model = FleetModel()
        self.targets: dict[tuple[str, str], Target] = {}
        self.changed = asyncio.Event()
        self._on_change = on_change
        self._session_seen = time.monotonic()

    # -- messages ------------------------------------------------------------------------------

    def ingest(self, topic: str, payload: bytes, content_type: str | None) -> None:
        """Apply one fleet message (the feed's sink)."""
        self.model.ingest(topic, payload, content_type)
        address = parse(topic)
        if address is None:
            return
        if address.kind in (FleetKind.BIRTH, FleetKind.DEATH):
            self._session_seen = time.monotonic()
        target = self.targets.get((address.tenant, address.board))
        board = self.model.boards.get((address.tenant, address.board))
        if target is None or board is None or target.ended:
            return
        if address.kind is FleetKind.REPLY:
            self._reply(target, payload, content_type)
        else:
            self._follow(target, board)

    def _reply(self, target: Target, payload: bytes, content_type: str | None) -> None:
        try:
            data = for_content_type(content_type).decode(payload)
        except DecodeError:
            return
        if not isinstance(data, dict) or data.get("requestId") != self.request_id:
            return
        if data.get("result") != "ok":
            self._set(target, "refused", str(data.get("error") or data.get("result")))
        elif target.state == "sent":
            self._set(target, "handedOver")

    def _follow(self, target: Target, board: Board) -> None:
        if board.birth is not None:
            target.version = str(board.birth.get("version", target.version))
        # The newer of birth and health: after the update's restart the birth is newer
        # than the health held from the daemon before.
        reports = [m for m in (board.birth, board.health) if m is not None]
        if not reports:
            return
        update = max(reports, key=lambda m: int(m.get("ts", 0))).get("update")
        if not isinstance(update, dict) or update.get("requestId") != self.request_id:
            return
        state = _UPDATER_STATES.get(str(update.get("state")))
        if state is not None:
            self._set(target, state, str(update.get("reason") or ""))

    def _set(self, target: Target, state: str, reason: str = "") -> None:
        if (target.state, target.reason) == (state, reason):
            return
        target.state, target.reason = state, reason
        self.changed.set()
        if self._on_change is not None:
            self._on_change(target)

    # -- the stage -----------------------------------------------------------------------------

    async def discover(self) -> None:
        """Wait for the retained births: until none came for :data:`SETTLE_S` (s).

        At most :data:`DISCOVER_MAX_S` seconds.
        """
        start = self._session_seen = time.monotonic()
        while True:
            now = time.monotonic()
            until = min(self._session_seen + SETTLE_S, start + DISCOVER_MAX_S)
            if now >= until:
                return
            await asyncio.sleep(until - now)

    def select(self) -> list[Target]:
        """The stage's targets among the boards heard of (down: offline; unheard: unknown)."""
        for board in sorted(self.model.boards.values(), key=lambda b: (b.tenant, b.board)):
            if board.birth is None or not self.selection.matches(board):
                continue
            version = str(board.birth.get("version", ""))
            target = Target(
                board.tenant,
                board.board,
                site=str(board.birth.get("site", "")),
                version_from=version,
                version=version,
            )
            if not board.up:
                target.state, target.reason = "offline", "down when the stage started: not sent"
            self.targets[board.tenant, board.board] = target
        heard = {board for _, board in self.targets}
        for board_id in self.selection.boards:
            if board_id not in heard:
                self.targets["?", board_id] = Target(
                    "?", board_id, state="unknown", reason="no birth of it on the broker: not sent"
                )
        return list(self.targets.values())

    async def send(self, broker: FleetBroker) -> None:
        """Publish the command to every pending target (QoS 1, acknowledged by the broker).

        Raises:
            TransportError: the broker could not be reached or did not acknowledge in time.

        """
        make = await client_maker(broker)
        payload = MSGPACK_CODEC.encode(
            FleetRequest(request_id=self.request_id, version=self.version)
        )
        properties = publish_properties(MSGPACK_CODEC.content_type)
        pending = [t for t in self.targets.values() if t.state == "pending"]
        sent = 0
        try:
            async with make(new_client_id()) as client:
                for target in pending:
                    self._set(target, "sent")
                    await client.publish(
                        FleetTopics(target.tenant, target.board).command("update"),
                        payload,
                        qos=1,
                        properties=properties,
                        timeout=PUBLISH_TIMEOUT_S,
                    )
                    sent += 1
        except aiomqtt.MqttError as exc:
            raise TransportError(
                f"fleet broker {broker.url}: {exc} (the command went to {sent} of "
                f"{len(pending)} boards; see kioskd fleet watch)"
            ) from None

    async def follow(self, timeout: float) -> None:
        """Wait until every sent target ended, or ``timeout`` seconds passed."""
        deadline = time.monotonic() + timeout
        while any(t.waiting for t in self.targets.values()):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            self.changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.changed.wait(), remaining)
        for target in self.targets.values():
            if target.waiting and not target.reason:
                target.reason = f"no outcome within {timeout:g} s"


async def run_rollout(
    broker: FleetBroker, rollout: Rollout, *, timeout: float, tenant: str = "+"
) -> list[Target]:
    """Discover the fleet, send ``update`` to the stage's targets, follow them; the targets.

    An empty list means no board matched, and nothing was sent.

    Raises:
        TransportError: the broker URL or TLS files are unusable, the broker was not
            reached within its ``connect_timeout``, or a command was not acknowledged.

    """
    connected = asyncio.Event()
    filters = session_filters(tenant) + telemetry_filters(tenant)
    task = asyncio.get_running_loop().create_task(
        feed(broker, filters, rollout.ingest, connected), name="fleet-feed"
    )
    try:
        up = asyncio.get_running_loop().create_task(connected.wait(), name="fleet-connected")
        try:
            await asyncio.wait({task, up}, timeout=broker.connect_timeout,
                               return_when=asyncio.FIRST_COMPLETED)  # fmt: skip
        finally:
            up.cancel()
        if task.done():
            task.result()
        if not connected.is_set():
            raise TransportError(
                f"fleet broker {broker.url}: not reached within {broker.connect_timeout:g} s"
            )
        await rollout.discover()
        targets = rollout.select()
        if targets:
            await rollout.send(broker)
            await rollout.follow(timeout)
        return targets
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def render(targets: list[Target], version: str) -> Table:
    """The per-board table of a stage: version before and now, outcome and reason."""
    committed = sum(1 for t in targets if t.state == "committed")
    table = Table(title=f"kioskd {version}: {committed}/{len(targets)} boards committed")
    for column in ("board", "site", "from", "now", "outcome", "reason"):
        table.add_column(column, no_wrap=column not in ("site", "reason"))
    styles: dict[str, Any] = {"committed": "green", "rolledBack": "red", "refused": "red"}
    for target in targets:
        table.add_row(
            target.name,
            target.site or "-",
            target.version_from or "-",
            target.version or "-",
            Text(target.state, style=styles.get(target.state, "yellow")),
            target.reason or "-",
        )
    return table
