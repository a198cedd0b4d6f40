"""The typed payloads of the wire, and what a running command knows of its request.

Every result, event and state detail is a :class:`Message`; the parameters of
every command and sim action are :class:`Params` (msgspec structs, camelCase on
the wire).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass

import msgspec


class Message(msgspec.Struct, rename="camel", kw_only=True, omit_defaults=False):
    """Base of every typed payload on the wire (results, events, state detail)."""


class Params(msgspec.Struct, rename="camel", kw_only=True):
    """Base of command parameters.

    The envelope keys (``requestId``, ``timeoutMs``, ``replyTo``) are read by the
    request lifecycle; unknown keys are ignored so newer UIs keep working.
    """


class NoParams(Params):
    """A command or action that takes no parameters."""


class NoResult(Message):
    """A command that completes with an empty result."""


EventSink = Callable[[str, Message], None]


@dataclass(slots=True)
class CommandContext:
    """What a running command knows about its request.

    Attributes:
        request_id: the requester's ``requestId``.
        client_id: the requester: the broker user named in its request topic
            (``req/{c}/...``), or the client id of its reply topic (legacy topics).
        deadline: ``loop.time()`` at which the command must end, in seconds.
        emit: sends an ``event`` reply to the requester alone (its reply topic,
            correlation data and codec).  It stays valid after the command completes:
            a command that starts a standing mode keeps it and sends the mode's events
            through it until the mode ends.
        staff: the requester has the technician role, so a command may do for it what
            it refuses a citizen-facing UI (end another client's deposit).

    """

    request_id: str
    client_id: str
    deadline: float
    emit: EventSink
    staff: bool = False

    def remaining(self) -> float:
        """Seconds left before the deadline (never negative)."""
        return max(0.0, self.deadline - asyncio.get_running_loop().time())
