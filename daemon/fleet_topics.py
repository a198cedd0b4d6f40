"""Every topic of the fleet namespace (``fleet/v1/{tenant}/{board}/...``), built and parsed here.

Boards publish ``birth`` and ``death`` (both retained, so a monitor that starts
late learns every board), ``health`` and ``event/{kind}`` (the high-volume part,
read through MQTT 5 shared subscriptions), and ``reply`` to fleet commands; they
read ``cmd/{command}``.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

FLEET_ROOT = "fleet/v1"


class FleetKind(Enum):
    """What a fleet topic carries."""

    BIRTH = "birth"
    DEATH = "death"
    HEALTH = "health"
    EVENT = "event"
    REPLY = "reply"
    COMMAND = "cmd"


@dataclass(frozen=True, slots=True)
class FleetAddress:
    """A parsed fleet topic: tenant, board, kind and (events, commands) the name."""

    tenant: str
    board: str
    kind: FleetKind
    name: str = ""


class FleetTopics:
    """Topics of one board in the fleet namespace."""

    def __init__(self, tenant: str, board_id: str) -> None:
        self.root = f"{FLEET_ROOT}/{tenant}/{board_id}"
        self.birth = f"{self.root}/birth"
        self.death = f"{self.root}/death"
        self.health = f"{self.root}/health"
        self.reply = f"{self.root}/reply"
        self.commands = f"{self.root}/cmd/+"

    def event(self, kind: str) -> str:
        """An operational event."""
        return f"{self.root}/event/{kind}"

    def command(self, name: str) -> str:
        """A fleet command to this board."""
        return f"{self.root}/cmd/{name}"


def session_filters(tenant: str = "+") -> list[str]:
    """Filters for birth and death of every board (plain subscriptions: they are retained)."""
    return [f"{FLEET_ROOT}/{tenant}/+/birth", f"{FLEET_ROOT}/{tenant}/+/death"]


def telemetry_filters(tenant: str = "+", share_group: str | None = None) -> list[str]:
    """Filters for health, events and replies (MQTT 5 shared subscriptions with ``share_group``).

    A shared subscription spreads the messages over every member of the group,
    so several exporters split the load; retained messages are never sent to
    shared subscriptions, which is why birth and death stay plain.
    """
    filters = [
        f"{FLEET_ROOT}/{tenant}/+/health",
        f"{FLEET_ROOT}/{tenant}/+/event/+",
        f"{FLEET_ROOT}/{tenant}/+/reply",
    ]
    if share_group is not None:
        filters = [f"$share/{share_group}/{f}" for f in filters]
    return filters


def parse(topic: str) -> FleetAddress | None:
    """Classify a fleet topic; None for anything outside the namespace."""
    prefix = FLEET_ROOT + "/"
    if not topic.startswith(prefix):
        return None
    match topic[len(prefix) :].split("/"):
        case [tenant, board, "birth" | "death" | "health" | "reply" as kind] if tenant and board:
            return FleetAddress(tenant, board, FleetKind(kind))
        case [tenant, board, "event" | "cmd" as kind, name] if tenant and board and name:
            return FleetAddress(tenant, board, FleetKind(kind), name)
        case _:
            return None
