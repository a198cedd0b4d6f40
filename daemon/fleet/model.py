"""What the fleet side knows about every board, built from fleet messages.

Shared by ``kioskd fleet watch`` and ``kioskd fleet exporter``.  Rules:

- A board is *up* from its birth until a death with the **same** ``bdSeq``
  (a death with another ``bdSeq`` is the late will of a replaced connection).
- Redelivered QoS 1 messages and the board's own replays of messages already
  seen are dropped by ``msgId`` (a bounded memory per board); ``seq`` only
  detects gaps.
- Health never goes back in time: a replayed health older than the one held
  updates nothing but the counters.
"""

from __future__ import annotations

import enum
import time
from collections import Counter, OrderedDict
from dataclasses import dataclass, field
from typing import Any

from daemon.fleet_topics import FleetKind, parse
from daemon.mqtt.codec import DecodeError, for_content_type

#: Message ids remembered per board for deduplication (a day of 1 s health is 86 400).
DEDUPE_WINDOW = 4096
#: A board is silent after this many health intervals without any message.
SILENT_INTERVALS = 3.0


class Outcome(enum.Enum):
    """What :meth:`FleetModel.ingest` did with a message."""

    ACCEPTED = "accepted"
    DUPLICATE = "duplicate"
    STALE = "stale"
    INVALID = "invalid"
    IGNORED = "ignored"


@dataclass
class Board:
    """One board as last heard of.

    ``last_seen`` is the wall-clock time (s) a message from it last arrived.
    """

    tenant: str
    board: str
    birth: dict[str, Any] | None = None
    death: dict[str, Any] | None = None
    health: dict[str, Any] | None = None
    last_seen: float = 0.0
    last_seq: int | None = None
    seq_gaps: int = 0
    duplicates: int = 0
    events: Counter[tuple[str, str]] = field(default_factory=Counter)
    last_event: dict[str, Any] | None = None
    _seen: OrderedDict[int, None] = field(default_factory=OrderedDict)

    @property
    def up(self) -> bool:
        """A birth holds and no death of the same connection arrived."""
        return self.birth is not None and self.death is None

    def health_interval_s(self) -> float:
        """The interval the board announced in its birth (30 s when unknown)."""
        if self.birth is None:
            return 30.0
        return float(self.birth.get("healthIntervalS", 30.0))

    def update(self) -> dict[str, Any] | None:
        """The board's last kioskd update (health's, newer than the birth's), if reported."""
        update = (self.health or {}).get("update") or (self.birth or {}).get("update")
        return update if isinstance(update, dict) else None

    def silent(self, now: float) -> bool:
        """Up, yet nothing heard for :data:`SILENT_INTERVALS` health intervals."""
        return self.up and now - self.last_seen > SILENT_INTERVALS * self.health_interval_s()

    def remember(self, msg_id: int) -> bool:
        """Record ``msg_id``; False if it was already seen (a duplicate)."""
        if msg_id in self._seen:
            self.duplicates += 1
            return False
        self._seen[msg_id] = None
        if len(self._seen) > DEDUPE_WINDOW:
            self._seen.popitem(last=False)
        return True


class FleetModel:
    """Every board of the fleet, keyed by ``(tenant, board)``.

    Args:
        track_gaps: count ``seq`` gaps (only meaningful when this process sees every
            message of a board, i.e. not as one member of a shared subscription).

    """

    def __init__(self, *, track_gaps: bool = True) -> None:
        self.boards: dict[tuple[str, str], Board] = {}
        self.outcomes: Counter[Outcome] = Counter()
        self._track_gaps = track_gaps

    def ingest(
        self, topic: str, payload: bytes, content_type: str | None, now: float | None = None
    ) -> Outcome:
        """Apply one fleet message; ``now`` is the wall-clock arrival time (s)."""
        outcome = self._ingest(topic, payload, content_type, time.time() if now is None else now)
        self.outcomes[outcome] += 1
        return outcome

    def _ingest(self, topic: str, payload: bytes, content_type: str | None, now: float) -> Outcome:
        address = parse(topic)
        if address is None or address.kind is FleetKind.COMMAND or not payload:
            return Outcome.IGNORED  # not fleet telemetry, or a cleared retained message
        try:
            data = for_content_type(content_type).decode(payload)
        except DecodeError:
            data = None
        if not isinstance(data, dict):
            return Outcome.INVALID
        key = (address.tenant, address.board)
        board = self.boards.get(key)
        if board is None:
            board = self.boards[key] = Board(address.tenant, address.board)
        board.last_seen = max(board.last_seen, now)
        match address.kind:
            case FleetKind.BIRTH:
                return self._birth(board, data)
            case FleetKind.DEATH:
                return self._death(board, data)
            case _:
                return self._stamped(board, address.kind, data)

    @staticmethod
    def _birth(board: Board, data: dict[str, Any]) -> Outcome:
        old = board.birth
        if old is not None and old.get("bdSeq") == data.get("bdSeq"):
            # The same connection's birth again: the broker re-sends the retained copy at
            # every (re)subscription. The stream's seq goes on, so last_seq must not reset.
            if old.get("ts", 0) == data.get("ts", 0):
                return Outcome.DUPLICATE
            if old.get("ts", 0) > data.get("ts", 0):
                return Outcome.STALE
        board.birth = data
        board.last_seq = 0
        if board.death is not None and board.death.get("bdSeq") != data.get("bdSeq"):
            board.death = None
        return Outcome.ACCEPTED

    @staticmethod
    def _death(board: Board, data: dict[str, Any]) -> Outcome:
        if board.birth is not None and board.birth.get("bdSeq") != data.get("bdSeq"):
            return Outcome.STALE
        board.death = data
        return Outcome.ACCEPTED

    def _stamped(self, board: Board, kind: FleetKind, data: dict[str, Any]) -> Outcome:
        seq, msg_id = data.get("seq"), data.get("msgId")
        if not isinstance(seq, int) or not isinstance(msg_id, int):
            return Outcome.INVALID
        if self._track_gaps:
            last = board.last_seq
            # A repeat of the last seq is a broker redelivery, not a gap.
            if last is not None and seq not in (last, (last + 1) % 256):
                board.seq_gaps += 1
            board.last_seq = seq
        if not board.remember(msg_id):
            return Outcome.DUPLICATE
        if kind is FleetKind.EVENT:
            board.events[str(data.get("device")), str(data.get("kind"))] += 1
            if board.last_event is None or data.get("ts", 0) >= board.last_event.get("ts", 0):
                board.last_event = data
        elif kind is FleetKind.HEALTH:
            if board.health is not None and board.health.get("ts", 0) > data.get("ts", 0):
                return Outcome.STALE
            board.health = data
        return Outcome.ACCEPTED
