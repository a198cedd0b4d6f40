"""The request lifecycle: queues, deadlines, cancel, idempotency, exactly one completion.

One FIFO queue and one worker task per device.  A queued request is acked when
it enters the queue; a request decided before any queue gets only a completion.
Deadlines are ``loop.time()`` values (monotonic).  A request still queued at
its deadline completes ``timeOut`` without running; a running interruptible
command is stopped at its deadline; a non-interruptible one (a print) finishes.
At shutdown (:meth:`Lifecycle.close`, then cancelling :meth:`Lifecycle.serve`)
every command task has ended and its requester has a completion before
``serve`` returns: no command outlives the driver, thread or port it uses.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import msgspec

from daemon.mqtt.codec import Codec
from devices.base import (
    AnyDevice,
    Command,
    CommandContext,
    EventSink,
    Message,
    Params,
    RunCommand,
)
from devices.errors import CompletionCode, DeviceError, completion_code

from .idempotency import IdempotencyStore
from .schema import Ack, Completion, EventReply

log = logging.getLogger(__name__)

#: A queued command running longer than this (seconds) publishes state ``busy``.
BUSY_AFTER_S = 0.1

#: Longest ``errorDescription`` sent or remembered, in characters.  A description may
#: quote client input (a validation error names the offending key, a device error the
#: transaction asked for); what is longer is cut, so neither a reply nor an idempotency
#: record ever holds more than this of what a client sent.
MAX_DESCRIPTION = 300

#: ``send(topic, payload, content_type, correlation)``: publish one reply.
Send = Callable[[str, bytes, str, bytes | None], None]


def _bounded(description: str | None) -> str | None:
    """``description`` cut to :data:`MAX_DESCRIPTION` characters (``…`` marks a cut)."""
    if description is None or len(description) <= MAX_DESCRIPTION:
        return description
    return description[: MAX_DESCRIPTION - 1] + "…"


@dataclass(eq=False, slots=True)
class Reply:
    """Where and how to answer one request, and who asked (``staff``: the technician role)."""

    client_id: str
    request_id: str | None
    topic: str
    correlation: bytes | None
    codec: Codec
    staff: bool = False


@dataclass(eq=False, slots=True)
class Request:
    """A device command on its way through the lifecycle."""

    reply: Reply
    device: AnyDevice
    name: str
    spec: Command
    run: RunCommand
    params: Params
    deadline: float
    recorded: asyncio.Future[None] | None = None
    expiry: asyncio.TimerHandle | None = None
    task: asyncio.Task[Message] | None = None
    canceled: bool = False
    #: Its method never started: refused by :meth:`Device.check_ready`, or its
    #: idempotency record was not written.
    refused: bool = False
    finished: bool = False

    @property
    def key(self) -> tuple[str, str]:
        """``(clientId, requestId)``."""
        return (self.reply.client_id, self.reply.request_id or "")


@dataclass(eq=False, slots=True)
class _Queue:
    device: AnyDevice
    items: deque[Request] = field(default_factory=deque)
    wake: asyncio.Event = field(default_factory=asyncio.Event)


class Lifecycle:
    """Runs device commands for the MQTT API.

    What one client can make it hold is bounded: at most ``max_per_client`` of its
    requests are queued or running on one device (each holding at most one payload's
    worth of parameters), so a client can neither fill a device's queue for the
    others nor grow the daemon's memory with requests.

    Args:
        send: publishes a reply (non-blocking).
        store: idempotency records of side-effect commands.
        max_queue: requests waiting per device before new ones are refused.
        max_per_client: requests of one client queued or running on one device
            before its new ones there are refused.

    """

    def __init__(
        self, send: Send, store: IdempotencyStore, *, max_queue: int, max_per_client: int
    ) -> None:
        self._send = send
        self._store = store
        self._max_queue = max_queue
        self._max_per_client = max_per_client
        self._queues: dict[str, _Queue] = {}
        self._inflight: dict[tuple[str, str], Request] = {}
        #: Requests admitted and not finished, per ``(clientId, device)``.
        self._held: dict[tuple[str, str], int] = {}
        self._background: set[asyncio.Future[Any]] = set()
        #: Running commands that bypass the queues (``queued=False``).
        self._direct: set[asyncio.Task[Message]] = set()
        self._closed = False

    # -- replies ---------------------------------------------------------------

    def _publish(self, reply: Reply, message: Message) -> None:
        self._send(
            reply.topic, reply.codec.encode(message), reply.codec.content_type, reply.correlation
        )

    def _event_sink(self, reply: Reply) -> EventSink:
        """Event replies to one request: its topic, correlation data, codec and ``requestId``.

        Bound to the reply alone, not to the running command, so it stays valid after
        the completion: a standing mode (scanner continuous mode) delivers through it.
        """
        request_id = reply.request_id or ""
        return lambda event, data: self._publish(
            reply, EventReply(request_id=request_id, event=event, data=data)
        )

    def complete(
        self,
        reply: Reply,
        code: CompletionCode,
        description: str | None = None,
        result: Message | None = None,
    ) -> None:
        """Send a completion for a request decided without a queue."""
        self._publish(
            reply,
            Completion(
                request_id=reply.request_id,
                completion_code=code,
                error_description=_bounded(description),
                result=result,
            ),
        )

    def _finish(
        self,
        req: Request,
        code: CompletionCode,
        description: str | None = None,
        result: Message | None = None,
        *,
        ran: bool = True,
    ) -> None:
        """Complete a queued request exactly once and settle its idempotency record."""
        if req.finished:
            return
        req.finished = True
        if self._inflight.get(req.key) is req:
            del self._inflight[req.key]
        self._release(req)
        self.complete(req.reply, code, description, result)
        if req.spec.staff:
            # The audit of staff operations: who did what, and how it ended (no parameters).
            log.info(
                "staff operation %s %s by %s (requestId %r): %s",
                req.device.id,
                req.name,
                req.reply.client_id,
                req.reply.request_id,
                code.value,
            )
        if req.spec.side_effect and req.reply.request_id is not None:
            if ran:
                stored = {
                    "completionCode": code.value,
                    "errorDescription": _bounded(description),
                    "result": msgspec.to_builtins(result) if result is not None else None,
                }
                self._track(self._store.finish(req.reply.client_id, req.reply.request_id, stored))
            else:
                self._track(self._store.forget(req.reply.client_id, req.reply.request_id))

    def _track(self, fut: asyncio.Future[Any]) -> None:
        self._background.add(fut)
        fut.add_done_callback(self._done_background)

    def _done_background(self, fut: asyncio.Future[Any]) -> None:
        self._background.discard(fut)
        if not fut.cancelled() and fut.exception() is not None:
            log.error("idempotency store write failed: %s", fut.exception())

    # -- submission ------------------------------------------------------------

    def add_device(self, device: AnyDevice) -> None:
        """Give a device its queue (its worker runs in :meth:`serve`)."""
        self._queues[device.id] = _Queue(device)

    def close(self) -> None:
        """Refuse every new request from now on (``deviceNotReady``): the daemon is stopping."""
        self._closed = True

    def submit(self, req: Request) -> None:
        """Take a validated device command: replay, run directly, or queue and ack."""
        if self._closed:
            self.complete(req.reply, CompletionCode.DEVICE_NOT_READY, "the daemon is stopping")
            return
        if req.spec.side_effect and req.reply.request_id is not None and self._replayed(req):
            return
        held = self._held.get((req.reply.client_id, req.device.id), 0)
        if held >= self._max_per_client:
            self.complete(
                req.reply,
                CompletionCode.DEVICE_NOT_READY,
                f"{req.device.id}: this client already has {held} requests queued or running "
                f"(at most {self._max_per_client} per client)",
            )
            return
        if not req.spec.queued:
            self._hold(req)
            self._inflight[req.key] = req
            req.task = asyncio.get_running_loop().create_task(
                self._call(req),
                name=f"{req.device.id}:{req.name}",
            )
            self._direct.add(req.task)
            req.task.add_done_callback(self._direct.discard)
            req.task.add_done_callback(lambda _t: self._settle(req))
            return
        queue = self._queues[req.device.id]
        if len(queue.items) >= self._max_queue:
            self.complete(
                req.reply,
                CompletionCode.DEVICE_NOT_READY,
                f"{req.device.id}: {len(queue.items)} requests already queued",
            )
            return
        if req.spec.side_effect and req.reply.request_id is not None:
            req.recorded = self._store.begin(
                req.reply.client_id,
                req.reply.request_id,
                req.device.id,
                req.name,
            )
        self._hold(req)
        self._inflight[req.key] = req
        queue.items.append(req)
        queue.wake.set()
        req.expiry = asyncio.get_running_loop().call_at(req.deadline, self._expire, req)
        self._publish(req.reply, Ack(request_id=req.reply.request_id or ""))

    def _hold(self, req: Request) -> None:
        """Count an admitted request against its client's share of its device."""
        key = (req.reply.client_id, req.device.id)
        self._held[key] = self._held.get(key, 0) + 1

    def _release(self, req: Request) -> None:
        """Uncount a finished request (every admitted request finishes exactly once)."""
        key = (req.reply.client_id, req.device.id)
        left = self._held.get(key, 0) - 1
        if left > 0:
            self._held[key] = left
        else:
            self._held.pop(key, None)

    def _expire(self, req: Request) -> None:
        """A request still queued at its deadline completes ``timeOut`` without running."""
        if req.task is None:
            self._finish(req, CompletionCode.TIME_OUT, "deadline passed while queued", ran=False)

    def _reused(self, req: Request, device: str, command: str) -> None:
        """A requestId reused for another command: refuse rather than replay a wrong answer."""
        self.complete(
            req.reply,
            CompletionCode.INVALID_DATA,
            f"requestId {req.reply.request_id!r} was already used for {command} on {device} "
            "within the idempotency window",
        )

    def _replayed(self, req: Request) -> bool:
        """Answer a repeated side-effect request without running it again."""
        live = self._inflight.get(req.key)
        if live is not None and live.spec.side_effect:
            if (live.device.id, live.name) != (req.device.id, req.name):
                self._reused(req, live.device.id, live.name)
            else:
                self._publish(req.reply, Ack(request_id=req.reply.request_id or ""))
            return True
        record = self._store.lookup(*req.key)
        if record is None:
            return False
        if (record.device, record.command) != (req.device.id, req.name):
            self._reused(req, record.device, record.command)
            return True
        if record.completion is None:
            self.complete(
                req.reply,
                CompletionCode.INTERNAL_ERROR,
                "outcome unknown: the daemon stopped while this request ran; it is not run again",
            )
        else:
            done = record.completion
            self._publish(
                req.reply,
                Completion(
                    request_id=req.reply.request_id,
                    completion_code=CompletionCode(done["completionCode"]),
                    error_description=done.get("errorDescription"),
                    result=done.get("result"),
                ),
            )
        return True

    # -- execution -------------------------------------------------------------

    async def serve(self) -> None:
        """Run every device's queue worker until cancelled.

        Cancelled, it returns once every command it started has ended and been
        completed (a running command is cancelled; waiting ones complete
        ``deviceNotReady``).
        """
        try:
            async with asyncio.TaskGroup() as group:
                for queue in self._queues.values():
                    group.create_task(self._worker(queue), name=f"queue-{queue.device.id}")
        finally:
            for task in self._direct:
                task.cancel()
            if self._direct:
                await asyncio.wait(set(self._direct))

    async def _worker(self, queue: _Queue) -> None:
        loop = asyncio.get_running_loop()
        try:
            while True:
                while not queue.items:
                    queue.wake.clear()
                    await queue.wake.wait()
                req = queue.items.popleft()
                if req.finished:
                    continue
                if loop.time() >= req.deadline:
                    self._finish(
                        req, CompletionCode.TIME_OUT, "deadline passed while queued", ran=False
                    )
                    continue
                if req.expiry is not None:
                    req.expiry.cancel()
                # Only a command that takes a while shows as busy: publishing busy and
                # online around every quick command doubled the messages per request.
                busy = loop.call_later(
                    BUSY_AFTER_S, functools.partial(queue.device.set_busy, busy=True)
                )
                req.task = loop.create_task(self._call(req), name=f"{req.device.id}:{req.name}")
                try:
                    await asyncio.wait({req.task})
                finally:
                    # Cancelled (the daemon stops): the command ends before this worker,
                    # so it never outlives its driver, and its requester hears why.
                    if not req.task.done():
                        req.task.cancel()
                        await asyncio.wait({req.task})
                    busy.cancel()
                    queue.device.set_busy(False)
                    self._settle(req)
        finally:
            self._drain(queue)

    async def _call(self, req: Request) -> Message:
        ctx = CommandContext(
            request_id=req.reply.request_id or "",
            client_id=req.reply.client_id,
            deadline=req.deadline,
            emit=self._event_sink(req.reply),
            staff=req.reply.staff,
        )
        # A print that has started is never interrupted: no deadline around it.
        deadline = req.deadline if req.spec.interruptible else None
        async with asyncio.timeout_at(deadline):
            try:
                await req.device.check_ready(req.spec)
            except DeviceError:
                req.refused = True
                raise
            if req.recorded is not None:
                # The record's fsync overlapped check_ready (which moves nothing); the
                # side effect starts only once the record is on disk.  Until then the
                # request counts as not run: a failed write is forgotten, not replayed.
                req.refused = True
                await req.recorded
                req.refused = False
            result: Message = await req.run(req.params, ctx)
        return result

    def _settle(self, req: Request) -> None:
        """Turn a finished command task into its completion."""
        task = req.task
        assert task is not None
        ran = not req.refused
        if task.cancelled():
            if req.canceled:
                self._finish(req, CompletionCode.CANCELED, "canceled by the requester", ran=ran)
            else:
                self._finish(req, CompletionCode.INTERNAL_ERROR, "the daemon is stopping", ran=ran)
            return
        exc = task.exception()
        if exc is None:
            self._finish(req, CompletionCode.SUCCESS, result=task.result())
            return
        code = completion_code(exc)
        if code is CompletionCode.INTERNAL_ERROR:
            log.error("%s %s failed", req.device.id, req.name, exc_info=exc)
            self._finish(req, code, f"internal error: {type(exc).__name__}", ran=ran)
        elif code is CompletionCode.TIME_OUT and not str(exc):
            # The deadline's own TimeoutError (asyncio.timeout_at) says nothing itself.
            self._finish(req, code, f"{req.name} did not finish before its deadline", ran=ran)
        else:
            self._finish(req, code, str(exc), ran=ran)

    def _drain(self, queue: _Queue) -> None:
        """Complete what is still queued when the worker stops (daemon shutdown)."""
        while queue.items:
            req = queue.items.popleft()
            self._finish(req, CompletionCode.DEVICE_NOT_READY, "the daemon is stopping", ran=False)

    # -- cancel ----------------------------------------------------------------

    def cancel(self, client_id: str, request_ids: list[str] | None) -> list[str]:
        """End a requester's queued or running long commands; return their ids."""
        wanted = None if request_ids is None else set(request_ids)
        canceled: list[str] = []
        for (owner, request_id), req in list(self._inflight.items()):
            if owner != client_id or (wanted is not None and request_id not in wanted):
                continue
            running = req.task is not None and not req.task.done()
            if running and req.spec.long:
                req.canceled = True
                assert req.task is not None
                req.task.cancel()
                canceled.append(request_id)
            elif not running and req.spec.queued:
                self._finish(req, CompletionCode.CANCELED, "canceled by the requester", ran=False)
                canceled.append(request_id)
        return canceled
