"""Typed fleet messages: birth, death, health, operational events and command replies.

Sparkplug's session semantics without its protobuf: a ``birth`` opens every
connection (``seq`` 0, the ``bdSeq`` of this connection), the broker publishes
the ``death`` (the last will, same ``bdSeq``) when the board vanishes, and every
message carries ``seq`` 0-255 in publish order so a consumer sees gaps.  Every
message except ``death`` also has a 64-bit ``msgId`` (unique per board,
increasing) that consumers deduplicate redelivered QoS 1 messages by, and
``ts`` (epoch ms) of when the board created it: a replayed message keeps its
``ts`` and says ``replay: true``.  Keys are lowerCamelCase, payloads
MessagePack (content type ``application/msgpack``).

Nothing here holds identity data: device facts are a fixed list of keys
(:data:`FACT_KEYS`) copied from state details, never event payloads as such.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec
from msgspec import Meta

#: State-detail and event keys that may travel upstream (scalars only).
FACT_KEYS = frozenset(
    {
        "paper", "cover", "media", "shutter", "door", "tamper", "cashBox", "cashBoxCoins",
        "cashBoxTotal", "stacker", "stackerNotes", "unsettled", "inhibited", "level",
        "compartment",
    },
)  # fmt: skip
Facts = dict[str, str | int | bool]

SEQ_MODULO = 256
BD_SEQ_MODULO = 256


class _Fleet(msgspec.Struct, rename="camel", kw_only=True):
    pass


class Stamped(_Fleet, kw_only=True):
    """Keys of every stored fleet message.

    ``msgId``: unique per board and increasing (microseconds since the epoch
    at creation, or one more than the previous id); ``ts``: creation time,
    epoch ms; ``seq``: 0-255 in publish order within a connection (birth is 0);
    ``replay``: sent after a reconnect or restart rather than live.
    """

    msg_id: int
    ts: int
    board: str
    tenant: str
    seq: int = 0
    replay: bool = False


class DeviceInventory(_Fleet):
    """One device in the birth message: what it is and can do."""

    id: str
    device_class: str
    driver: str
    simulated: bool
    commands: list[str]
    events: list[str]
    capabilities: dict[str, Any]


class UpdateStatus(_Fleet, kw_only=True):
    """``update`` in birth and health: the board's last kioskd update (docs/updates.md).

    ``state`` is idle, fetching, installing, gating, committed, rollingBack,
    rolledBack or failed; ``version`` the installed one, ``target`` the one asked
    for, ``reason`` why it was rolled back or refused; ``time`` ISO 8601 UTC.
    """

    state: str
    version: str
    target: str = ""
    reason: str = ""
    request_id: str = ""
    time: str = ""


class Birth(Stamped, kw_only=True):
    """``birth`` (retained): published first on every connection.

    ``bdSeq`` (0-255) counts connections across restarts and equals the
    ``bdSeq`` of this connection's ``death``; ``session`` is the daemon run;
    ``configHash`` a short SHA-256 of the effective configuration (secrets
    left out); ``healthIntervalS`` tells monitors when a board went silent;
    ``certNotAfter`` is the client certificate's expiry (epoch ms); ``site`` is
    ``[board] site`` (a staged release's pilot site is chosen by it).
    """

    bd_seq: int
    session: str
    version: str
    config_hash: str
    health_interval_s: float
    commands: list[str]
    devices: list[DeviceInventory]
    cert_not_after: int | None = None
    update: UpdateStatus | None = None
    site: str = ""


class Death(_Fleet):
    """``death`` (retained, the last will; also sent on a clean stop).

    Only a death whose ``bdSeq`` equals the board's current birth ends its
    session: an older one is a late will of a connection already replaced.
    """

    board: str
    tenant: str
    bd_seq: int
    session: str
    ts: int
    clean: bool = False


class DeviceHealth(_Fleet):
    """One device in a health message.

    ``since``: epoch ms of its last state change; ``errors``: how often it
    entered an error state (userError, hardwareError, offline, noDevice,
    powerOff, fraudAttempt) in this daemon run; ``facts``: paper level, cash box
    count and total since last emptied, door, tamper, ...
    """

    device_class: str
    state: str
    since: int
    errors: int
    facts: Facts


class OutboxHealth(_Fleet):
    """The store-and-forward outbox: depth, size, drops since the outbox was created."""

    messages: int
    bytes: int
    dropped: int
    oldest_ts: int | None


class SystemHealth(_Fleet):
    """The board: uptime (s), CPU use (0-100 % of all cores), load, memory and disk (bytes).

    ``socTempC`` and ``throttled`` are null where the board cannot tell
    (not a Raspberry Pi); ``throttled`` names the active and past flags
    (``underVoltage``, ``freqCapped``, ``throttled``, ``softTempLimit`` and the
    same with ``Occurred``).
    """

    uptime_s: float
    cpu_percent: float | None
    daemon_cpu_percent: float | None
    load1: float
    load5: float
    load15: float
    mem_total: int
    mem_available: int
    daemon_rss: int
    disk_free: int
    disk_total: int
    soc_temp_c: float | None
    throttled: list[str] | None


class Health(Stamped, kw_only=True):
    """``health``: every ``healthIntervalS`` and on ``getHealth``.

    ``status``/``reasons`` mirror the local retained status; ``uptimeS`` is the
    daemon's; ``certNotAfter`` (epoch ms) and ``certDaysLeft`` warn before the
    client certificate expires.
    """

    session: str
    status: str
    reasons: list[str]
    uptime_s: float
    clock_synced: bool
    devices: dict[str, DeviceHealth]
    outbox: OutboxHealth
    system: SystemHealth
    cert_not_after: int | None
    cert_days_left: float | None
    update: UpdateStatus | None = None


EventKind = Literal[
    "deviceError", "deviceRecovered", "jam", "paperLow", "paperOut", "doorOpened", "tamper",
    "transactionUnknown", "cashBoxFull", "fraudAttempt", "compartmentLeftOpen",
]  # fmt: skip


class OperationalEvent(Stamped, kw_only=True):
    """``event/{kind}``: something an operator may have to act on, sent at once.

    ``state``/``previous`` are the device states around it; ``facts`` the
    device's current facts (and the triggering event's, e.g. ``compartment``).
    """

    kind: EventKind
    device: str
    device_class: str
    state: str
    previous: str | None
    facts: Facts


class CommandReply(Stamped, kw_only=True):
    """``reply``: the outcome of a fleet command (``refused`` when not enabled or unknown)."""

    request_id: str
    command: str
    result: Literal["ok", "refused", "failed"]
    error: str | None = None


class FleetRequest(_Fleet):
    """A fleet command's payload: ``requestId``, and the command's argument.

    ``device`` for ``restartDevice``; ``version`` for ``update`` (a package version
    of the signed repository, never a URL).
    """

    request_id: Annotated[str, Meta(min_length=1, max_length=128)]
    device: str | None = None
    version: Annotated[str, Meta(max_length=100)] | None = None


def facts_of(message: msgspec.Struct | None) -> Facts:
    """The upstream-safe facts of a state detail or event payload (see :data:`FACT_KEYS`)."""
    if message is None:
        return {}
    data = msgspec.to_builtins(message)
    if not isinstance(data, dict):
        return {}
    return {
        key: value
        for key, value in data.items()
        if key in FACT_KEYS and isinstance(value, str | int | bool)
    }
