"""Every topic string of the local API, built and parsed here and nowhere else."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum, auto

API_ROOT = "kiosk/v1"

#: Longest reply topic accepted, in UTF-8 bytes.  MQTT allows 65 535; a reply topic is
#: ``kiosk/v1/{board}/reply/{clientId}/...`` and a few dozen bytes in practice, and the
#: daemon keeps it for the whole life of a request.
MAX_REPLY_TOPIC_BYTES = 1024

# MQTT 5 section 1.5.4: a topic must not contain U+0000 (the broker drops the connection
# of whoever publishes one) and should not contain other control characters.
_CONTROL = frozenset(chr(c) for c in [*range(0x20), *range(0x7F, 0xA0)])


class Kind(Enum):
    """What an incoming topic addresses."""

    DAEMON_COMMAND = auto()
    DEVICE_COMMAND = auto()
    SIM_ACTION = auto()
    DEVICE_STATE = auto()


@dataclass(frozen=True, slots=True)
class Addressed:
    """A parsed incoming topic: its kind, the device id (if any) and the command/action.

    ``requester`` is ``{c}`` of a request topic ``req/{c}/...``: the broker user the
    ACL lets publish there, hence who is asking.  None on the legacy request topics
    (``cmd/...``, ``dev/{d}/cmd/...``), sim actions and states.
    """

    kind: Kind
    device: str | None
    name: str
    requester: str | None = None


class Topics:
    """Topics of one board (``kiosk/v1/{board}/...``)."""

    def __init__(self, board_id: str) -> None:
        self.board_id = board_id
        self.root = f"{API_ROOT}/{board_id}"
        self.status = f"{self.root}/status"
        self.description = f"{self.root}/description"
        self.reply_root = f"{self.root}/reply/"

    def device_state(self, device: str) -> str:
        """Retained state of a device."""
        return f"{self.root}/dev/{device}/state"

    def device_command(self, device: str, command: str) -> str:
        """A device command request on the legacy topic (requester from the reply topic)."""
        return f"{self.root}/dev/{device}/cmd/{command}"

    def request(self, client_id: str, command: str, device: str | None = None) -> str:
        """A request of ``client_id``: a device command, or a daemon command without ``device``."""
        where = f"dev/{device}/cmd" if device is not None else "cmd"
        return f"{self.root}/req/{client_id}/{where}/{command}"

    def device_event(self, device: str, event: str) -> str:
        """An unsolicited device event."""
        return f"{self.root}/dev/{device}/evt/{event}"

    def sim_output(self, device: str, what: str) -> str:
        """What a simulated device shows the physical world."""
        return f"{self.root}/sim/{device}/out/{what}"

    def reply(self, client_id: str, suffix: str) -> str:
        """A topic in a client's reply subtree."""
        return f"{self.reply_root}{client_id}/{suffix}"

    def subscriptions(self, *, with_sim: bool) -> list[str]:
        """Filters the daemon serves; ``sim/`` only when a device is simulated.

        The legacy request topics are always subscribed, so a request there is
        logged when ``[api] legacy_request_topics`` is off rather than lost unseen.
        """
        filters = [
            f"{self.root}/req/+/cmd/+",
            f"{self.root}/req/+/dev/+/cmd/+",
            f"{self.root}/cmd/+",
            f"{self.root}/dev/+/cmd/+",
        ]
        if with_sim:
            filters.append(f"{self.root}/sim/+/+")
        return filters

    def stale_state_filter(self) -> str:
        """Filter that finds retained device states, to clear unconfigured devices."""
        return f"{self.root}/dev/+/state"

    def parse(self, topic: str) -> Addressed | None:
        """Classify an incoming topic; None for anything the daemon does not serve."""
        if not topic.startswith(self.root + "/"):
            return None
        parts = topic[len(self.root) + 1 :].split("/")
        requester = None
        if len(parts) > 2 and parts[0] == "req" and parts[1]:  # noqa: PLR2004 - req/{c}/...
            requester, parts = parts[1], parts[2:]
        match parts:
            case ["cmd", name] if name:
                return Addressed(Kind.DAEMON_COMMAND, None, name, requester)
            case ["dev", device, "cmd", name] if device and name:
                return Addressed(Kind.DEVICE_COMMAND, device, name, requester)
            case ["dev", device, "state"] if device and requester is None:
                return Addressed(Kind.DEVICE_STATE, device, "state")
            case ["sim", device, action] if device and action not in ("", "out") and not requester:
                return Addressed(Kind.SIM_ACTION, device, action)
            case _:
                return None

    def reply_client(self, topic: str) -> str | None:
        """The client id owning a reply topic, or None if the topic is not a valid reply topic.

        Valid: ``kiosk/v1/{b}/reply/{c}`` optionally followed by ``/...``, with a
        non-empty ``{c}``, no wildcard or control characters anywhere, valid UTF-8 of
        at most :data:`MAX_REPLY_TOPIC_BYTES`.  Anything else could not be published
        (or would make the broker drop the daemon's connection), so it is never used.
        """
        if not topic.startswith(self.reply_root) or "+" in topic or "#" in topic:
            return None
        try:
            size = len(topic.encode("utf-8"))
        except UnicodeEncodeError:  # lone surrogates: not valid UTF-8
            return None
        if size > MAX_REPLY_TOPIC_BYTES or not _CONTROL.isdisjoint(topic):
            return None
        client, _, _ = topic[len(self.reply_root) :].partition("/")
        return client or None
