"""Typed wire messages of the daemon itself (envelopes, status, description).

Device results, events and state details are typed in each device class
(``devices/<class>/protocol.py``); docs/asyncapi.json is generated from both.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any

import msgspec
from msgspec import Meta

from devices.base import DeviceState, Message, Params
from devices.errors import CompletionCode

API_VERSION = 1

#: Longest ``requestId``, in characters.
MAX_REQUEST_ID = 128


class Envelope(msgspec.Struct, rename="camel", kw_only=True):
    """Keys every request may carry besides its parameters.

    ``requestId`` is required: replies, idempotency and ``cancel`` name the request
    by it.  ``timeoutMs`` shortens the command's deadline (clamped to its maximum);
    ``replyTo`` is the reply topic for MQTT 3.1.1 clients, which have no response topic.
    """

    request_id: Annotated[str, Meta(min_length=1, max_length=MAX_REQUEST_ID)]
    timeout_ms: Annotated[int, Meta(gt=0)] | None = None
    reply_to: str | None = None


class Ack(Message, tag_field="type", tag="ack"):
    """The request entered a device queue."""

    request_id: str


class EventReply(Message, tag_field="type", tag="event"):
    """An event of a request, to the requester alone.

    Intermediate while the request runs (``readProgress``), or, after its completion,
    an event of the standing mode it started (scanner continuous mode: ``scanned``
    until ``continuousEnded``).
    """

    request_id: str
    event: str
    data: Any


class Completion(Message, tag_field="type", tag="completion", omit_defaults=True):
    """The one final reply of every request."""

    request_id: str | None
    completion_code: CompletionCode
    error_description: str | None = None
    result: Any = None


class DaemonState(StrEnum):
    """``status.state`` values."""

    STARTING = "starting"
    READY = "ready"
    DEGRADED = "degraded"
    STOPPING = "stopping"
    OFFLINE = "offline"


class Status(Message):
    """Retained ``status`` (also the LWT with state ``offline``).

    ``since`` is epoch ms of the last state change; ``clockSynced`` is true when
    the system clock is NTP-synchronised (systemd-timesyncd's flag file).
    """

    state: DaemonState
    reasons: list[str]
    version: str
    session: str
    since: int
    clock_synced: bool
    api: int = API_VERSION


class DeviceStateMessage(Message):
    """Retained ``dev/{d}/state``; ``ts`` epoch ms, ``seq`` shared with events."""

    state: DeviceState
    detail: Any
    session: str
    seq: int
    ts: int


class EventMessage(Message):
    """Unsolicited ``dev/{d}/evt/{event}``."""

    session: str
    seq: int
    ts: int
    data: Any


class CommandInfo(Message):
    """A command's deadlines (ms) and how the daemon treats it."""

    default_timeout_ms: int
    max_timeout_ms: int
    long: bool
    queued: bool
    side_effect: bool


class DeviceInfo(Message, rename={"device_class": "class", "sim_actions": "simActions"}):
    """One device in ``description``; ``simActions`` is empty unless simulated."""

    id: str
    device_class: str
    driver: str
    simulated: bool
    commands: dict[str, CommandInfo]
    events: list[str]
    capabilities: dict[str, Any]
    sim_actions: list[str]


class Description(Message):
    """Retained ``description``: every device with its commands and events."""

    board: str
    version: str
    session: str
    devices: list[DeviceInfo]
    daemon_commands: list[str]


class Snapshot(Message):
    """Result of ``resync``: the status and every device state as of ``seq``."""

    session: str
    seq: int
    status: Status
    states: dict[str, DeviceStateMessage]


class CancelParams(Params):
    """``cancel``: the requester's request ids to end; none means all of them."""

    request_ids: list[str] | None = None


class CancelResult(Message):
    """Request ids that were queued or running and are now ``canceled``."""

    canceled: list[str]


class VietQRParams(Params):
    """``vietqrPayload``: a dynamic VietQR transfer request for one payment.

    ``amount`` is whole VND; ``reference`` (letters and digits, at most 25) is the
    transfer reference: the code's bill number and its purpose, so the payer's bank
    carries it into the office account's statement line (docs/payments.md).
    """

    amount: Annotated[int, Meta(gt=0, lt=10**13)]
    reference: Annotated[str, Meta(pattern=r"^[A-Za-z0-9]{1,25}$")]


class VietQRResult(Message):
    """A VietQR code for the office account of ``[vietqr]``.

    ``payload`` is the EMVCo/NAPAS text to encode (CRC included); ``qr`` its QR code
    (level M) as rows of ``0``/``1``, 1 a dark module, without the quiet zone (leave
    4 modules of white around it); ``bin``, ``account``, ``accountName`` say who is paid.
    """

    payload: str
    qr: list[str]
    amount: int
    reference: str
    bin: str
    account: str
    account_name: str
