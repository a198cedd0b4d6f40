"""Turns incoming MQTT messages into requests: validate, route, answer the undecidable.

Nothing here raises into the link: a malformed message gets an ``invalidData``
completion when it names a valid reply topic, and is dropped (counted, logged
without its payload) when it does not.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import aiomqtt
import msgspec

from daemon.mqtt.codec import Codec, DecodeError, for_request
from devices.base import AnyDevice, Message, NoResult, Params, RunSimAction, SimControl
from devices.errors import CompletionCode, Forbidden, completion_code

from .requests import Lifecycle, Reply, Request
from .schema import MAX_REQUEST_ID, CancelParams, CancelResult, Envelope
from .topics import Addressed, Kind, Topics

log = logging.getLogger(__name__)

DAEMON_COMMANDS = ("getStatus", "getCapabilities", "resync", "cancel")

#: Longest a sim action may run, in seconds, before it completes ``timeOut``.  A sim
#: action plays a person or the physical world (a coin dropped, a door pulled); the
#: slowest, a wire simulator's, waits a few seconds for the driver to see it.
SIM_ACTION_TIMEOUT_S = 30.0


@dataclass(frozen=True, slots=True)
class ParamCommand:
    """A daemon command with parameters, answered at once without a device.

    ``run`` gets the converted ``params``; a ValueError it raises is the request's
    fault and completes ``invalidData`` with its message.
    """

    params: type[Params]
    run: Callable[[Any], Message]


class Router:
    """Routes one board's incoming messages.

    Args:
        topics: the board's topics.
        devices: configured devices by id.
        lifecycle: runs device commands.
        daemon_answers: ``getStatus``/``getCapabilities``/``resync`` result builders.
        clear_retained: clears a stale retained topic (publishes an empty retained message).
        max_payload: largest accepted request payload, in bytes.
        legacy_topics: serve the legacy request topics (``cmd/...``, ``dev/{d}/cmd/...``);
            when False a request there is dropped and logged.
        staff_users: requesters with the technician role (on ``req/{c}/...`` only).
        param_commands: daemon commands with parameters (``vietqrPayload``), by name.

    """

    def __init__(
        self,
        *,
        topics: Topics,
        devices: Mapping[str, AnyDevice],
        sim_controls: Mapping[str, SimControl],
        lifecycle: Lifecycle,
        daemon_answers: Mapping[str, Callable[[], Message]],
        clear_retained: Callable[[str], None],
        max_payload: int,
        legacy_topics: bool,
        staff_users: frozenset[str],
        param_commands: Mapping[str, ParamCommand] | None = None,
    ) -> None:
        self._topics = topics
        self._devices = devices
        self._sim_controls = sim_controls
        self._lifecycle = lifecycle
        self._answers = daemon_answers
        self._clear_retained = clear_retained
        self._max_payload = max_payload
        self._legacy_topics = legacy_topics
        self._staff_users = staff_users
        self._param_commands = param_commands or {}
        self._sim_tasks: set[asyncio.Task[None]] = set()
        self.dropped = 0

    @property
    def param_commands(self) -> tuple[str, ...]:
        """Names of the daemon commands with parameters this board serves."""
        return tuple(self._param_commands)

    def handle(self, message: aiomqtt.Message) -> None:
        """Handle one message; never raises."""
        topic = str(message.topic)
        try:
            addressed = self._topics.parse(topic)
            if addressed is None:
                return
            if addressed.kind is Kind.DEVICE_STATE:
                self._stale_state(topic, addressed, message)
                return
            self._request(addressed, message)
        except Exception:
            log.exception("unhandled error on %s", topic)

    def _stale_state(self, topic: str, addressed: Addressed, message: aiomqtt.Message) -> None:
        if message.retain and message.payload and addressed.device not in self._devices:
            log.info("clearing retained state of unconfigured device %s", addressed.device)
            self._clear_retained(topic)

    def _admitted(self, addressed: Addressed, message: aiomqtt.Message) -> bool:
        """False for a message on a request topic that is not a request to serve (logged)."""
        if not message.payload and getattr(message.properties, "ResponseTopic", None) is None:
            # Asks nothing and cannot be answered: the echo of clearing a retained request.
            return False
        if message.retain:
            # Published retained (seen live, retain as published, or from the broker's
            # store at (re)subscribe): it would run again at every restart.  Never run;
            # cleared, so the broker does not keep it either.
            self.dropped += 1
            log.warning(
                "ignored a retained request on %s (requests are never retained)", message.topic
            )
            self._clear_retained(str(message.topic))
            return False
        legacy = addressed.requester is None and addressed.kind is not Kind.SIM_ACTION
        if legacy and not self._legacy_topics:
            self.dropped += 1
            log.warning(
                "dropped request on %s: legacy request topic ([api] legacy_request_topics is "
                "off; publish to %s)",
                message.topic,
                self._topics.request("{clientId}", addressed.name, addressed.device),
            )
            return False
        return True

    def _request(self, addressed: Addressed, message: aiomqtt.Message) -> None:
        if not self._admitted(addressed, message):
            return
        props = message.properties
        correlation = getattr(props, "CorrelationData", None)
        reply_topic: str | None = getattr(props, "ResponseTopic", None)
        expiry: int | None = getattr(props, "MessageExpiryInterval", None)
        payload = message.payload if isinstance(message.payload, bytes) else b""
        codec = for_request(getattr(props, "ContentType", None), payload)
        doc, problem = self._decode(payload, codec)
        if reply_topic is None and isinstance(doc, dict) and isinstance(doc.get("replyTo"), str):
            reply_topic = doc["replyTo"]
        raw_id = doc.get("requestId") if isinstance(doc, dict) else None
        # An over-long id is invalid (Envelope): answered with requestId null, not echoed.
        request_id = raw_id if isinstance(raw_id, str) and len(raw_id) <= MAX_REQUEST_ID else None

        client = self._requester(addressed, reply_topic)
        if client is None or reply_topic is None:
            if addressed.kind is Kind.SIM_ACTION and reply_topic is None and problem is None:
                self._sim_action(addressed, doc, None)
                return
            self._drop(str(message.topic), reply_topic, codec, problem, addressed.requester)
            return
        staff = addressed.requester is not None and addressed.requester in self._staff_users
        reply = Reply(client, request_id, reply_topic, correlation, codec, staff=staff)
        if problem is not None:
            self._lifecycle.complete(reply, CompletionCode.INVALID_DATA, problem)
            return
        try:
            envelope = msgspec.convert(doc, Envelope)
        except msgspec.ValidationError as exc:
            self._lifecycle.complete(reply, CompletionCode.INVALID_DATA, str(exc))
            return
        match addressed.kind:
            case Kind.DAEMON_COMMAND:
                self._daemon_command(addressed.name, doc, reply)
            case Kind.DEVICE_COMMAND:
                self._device_command(addressed, doc, envelope, expiry, reply)
            case Kind.SIM_ACTION:
                self._sim_action(addressed, doc, reply)
            case _:
                pass

    def _requester(self, addressed: Addressed, reply_topic: str | None) -> str | None:
        """Who asks: ``{c}`` of ``req/{c}/...`` or of the reply topic (legacy); None: unanswerable.

        A request on ``req/{c}/...`` is answered only in ``reply/{c}/``: a reply topic
        elsewhere would let a client write into (and act as) another client.
        """
        client = self._topics.reply_client(reply_topic) if reply_topic is not None else None
        if addressed.requester is not None and client != addressed.requester:
            return None
        return client

    def _drop(
        self,
        topic: str,
        reply_topic: str | None,
        codec: Codec,
        problem: str | None,
        requester: str | None,
    ) -> None:
        """Count and log a request that cannot be answered (never its payload)."""
        self.dropped += 1
        if reply_topic is not None and requester is not None:
            why = f"reply topic outside the requester's subtree {self._topics.reply(requester, '')}"
        elif reply_topic is not None:
            why = "reply topic outside the reply subtree"
        elif problem is not None:
            # replyTo may be in the payload, but the payload could not be read.
            why = f"no reply topic ({codec.name} payload unreadable: {problem})"
        else:
            why = "no reply topic (no MQTT 5 response topic, no replyTo key)"
        log.warning("dropped request on %s: %s", topic, why)

    def _decode(self, payload: bytes, codec: Codec) -> tuple[Any, str | None]:
        """The decoded map, or the reason it is not one."""
        if len(payload) > self._max_payload:
            return None, f"payload of {len(payload)} bytes exceeds the limit of {self._max_payload}"
        try:
            doc = codec.decode(payload)
        except DecodeError as exc:
            return None, str(exc)
        if not isinstance(doc, dict):
            return doc, f"payload must be a map, not {type(doc).__name__}"
        return doc, None

    def _daemon_command(self, name: str, doc: dict[str, Any], reply: Reply) -> None:
        if name == "cancel":
            try:
                params = msgspec.convert(doc, CancelParams)
            except msgspec.ValidationError as exc:
                self._lifecycle.complete(reply, CompletionCode.INVALID_DATA, str(exc))
                return
            canceled = self._lifecycle.cancel(reply.client_id, params.request_ids)
            self._lifecycle.complete(
                reply, CompletionCode.SUCCESS, result=CancelResult(canceled=canceled)
            )
            return
        command = self._param_commands.get(name)
        if command is not None:
            self._param_command(command, doc, reply)
            return
        answer = self._answers.get(name)
        if answer is None:
            known = ", ".join([*DAEMON_COMMANDS, *self._param_commands])
            self._lifecycle.complete(
                reply,
                CompletionCode.UNSUPPORTED_COMMAND,
                f"unknown daemon command {name!r} (known: {known})",
            )
            return
        self._lifecycle.complete(reply, CompletionCode.SUCCESS, result=answer())

    def _param_command(self, command: ParamCommand, doc: dict[str, Any], reply: Reply) -> None:
        try:
            params = msgspec.convert(doc, command.params)
            result = command.run(params)
        except (msgspec.ValidationError, ValueError) as exc:
            self._lifecycle.complete(reply, CompletionCode.INVALID_DATA, str(exc))
            return
        self._lifecycle.complete(reply, CompletionCode.SUCCESS, result=result)

    def _device_command(
        self,
        addressed: Addressed,
        doc: dict[str, Any],
        envelope: Envelope,
        expiry: int | None,
        reply: Reply,
    ) -> None:
        device = self._devices.get(addressed.device or "")
        run = device.command(addressed.name) if device is not None else None
        if device is None:
            self._lifecycle.complete(
                reply,
                CompletionCode.INVALID_DATA,
                f"no device {addressed.device!r} on this board",
            )
            return
        spec = device.commands.get(addressed.name)
        if spec is None or run is None:
            self._lifecycle.complete(
                reply,
                CompletionCode.UNSUPPORTED_COMMAND,
                f"{device.device_class} {device.id!r} has no command {addressed.name!r}",
            )
            return
        if spec.staff and not reply.staff:
            refused = Forbidden(
                f"{addressed.name} is a staff operation: it needs the technician role "
                "(a request on req/{c}/... from a user in [api] staff_users)"
            )
            log.warning(
                "refused staff operation %s %s of %r: not a staff user",
                device.id,
                addressed.name,
                reply.client_id,
            )
            self._lifecycle.complete(reply, completion_code(refused), str(refused))
            return
        try:
            params = msgspec.convert(doc, spec.params)
        except msgspec.ValidationError as exc:
            self._lifecycle.complete(reply, CompletionCode.INVALID_DATA, str(exc))
            return
        now = asyncio.get_running_loop().time()
        timeout_ms = min(envelope.timeout_ms or spec.default_timeout_ms, spec.max_timeout_ms)
        deadline = now + timeout_ms / 1000
        if expiry is not None:
            deadline = min(deadline, now + expiry)
        self._lifecycle.submit(Request(reply, device, addressed.name, spec, run, params, deadline))

    def _sim_action(self, addressed: Addressed, doc: Any, reply: Reply | None) -> None:
        device_id = addressed.device or ""
        control = self._sim_controls.get(device_id)
        action = control.sim_actions.get(addressed.name) if control is not None else None
        run = control.sim_action(addressed.name) if control is not None else None
        if action is None or run is None:
            if reply is not None:
                what = "is not simulated" if device_id in self._devices else "does not exist"
                self._lifecycle.complete(
                    reply,
                    CompletionCode.UNSUPPORTED_COMMAND,
                    f"device {addressed.device!r} {what} or has no sim action {addressed.name!r}",
                )
            return
        try:
            params: Params = msgspec.convert(doc, action.params)
        except msgspec.ValidationError as exc:
            if reply is not None:
                self._lifecycle.complete(reply, CompletionCode.INVALID_DATA, str(exc))
            return
        task = asyncio.get_running_loop().create_task(
            self._run_sim(device_id, addressed.name, run, params, reply),
            name=f"sim-{device_id}-{addressed.name}",
        )
        self._sim_tasks.add(task)
        task.add_done_callback(self._sim_tasks.discard)

    async def _run_sim(
        self,
        device_id: str,
        name: str,
        run: RunSimAction,
        params: Params,
        reply: Reply | None,
    ) -> None:
        try:
            async with asyncio.timeout(SIM_ACTION_TIMEOUT_S):
                result: Message = await run(params)
        except Exception as exc:
            code = completion_code(exc)
            if code is CompletionCode.INTERNAL_ERROR:
                log.exception("sim action %s on %s failed", name, device_id)
                if reply is not None:
                    self._lifecycle.complete(reply, code, "sim action failed")
            elif reply is not None:
                self._lifecycle.complete(reply, code, str(exc) or "sim action timed out")
            return
        if reply is not None:
            self._lifecycle.complete(reply, CompletionCode.SUCCESS, result=result or NoResult())
