"""A kiosk-UI-like MQTT 5 client for tests, benchmarks and the HIL suite.

Talks to the daemon only through the broker, exactly as a UI would: requests
with a response topic in its own reply subtree and correlation data.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import aiomqtt
import msgspec
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

JSON = "application/json"
MSGPACK = "application/msgpack"
NODELAY = (socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


def decode(payload: bytes, content_type: str | None) -> Any:
    if not payload:
        return None
    if content_type == JSON:
        return msgspec.json.decode(payload)
    return msgspec.msgpack.decode(payload)


@dataclass
class Received:
    topic: str
    payload: Any
    retain: bool
    content_type: str | None
    correlation: bytes | None


@dataclass
class UiClient:
    """One connected UI. Use :func:`connect`."""

    client: aiomqtt.Client
    client_id: str
    board: str
    root: str = ""
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))
    _replies: dict[str, asyncio.Queue[Received]] = field(default_factory=dict)
    _subs: list[tuple[str, asyncio.Queue[Received]]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.root = f"kiosk/v1/{self.board}"

    def reply_topic(self, suffix: str = "r") -> str:
        return f"{self.root}/reply/{self.client_id}/{suffix}"

    async def send(
        self,
        topic: str,
        payload: Any,
        *,
        content_type: str = MSGPACK,
        response_topic: str | None = None,
        correlation: bytes | None = None,
        expiry: int | None = None,
        raw: bytes | None = None,
    ) -> None:
        props = Properties(PacketTypes.PUBLISH)
        props.ContentType = content_type
        if response_topic is not None:
            props.ResponseTopic = response_topic
        if correlation is not None:
            props.CorrelationData = correlation
        if expiry is not None:
            props.MessageExpiryInterval = expiry
        if raw is None:
            raw = (
                msgspec.json.encode(payload)
                if content_type == JSON
                else msgspec.msgpack.encode(payload)
            )
        await self.client.publish(topic, raw, qos=1, properties=props)

    def _reply_queue(self, correlation: bytes) -> asyncio.Queue[Received]:
        return self._replies.setdefault(correlation.decode(), asyncio.Queue())

    async def start(
        self,
        topic: str,
        params: dict[str, Any] | None = None,
        *,
        request_id: str | None = None,
        content_type: str = MSGPACK,
        expiry: int | None = None,
    ) -> Request:
        """Send a request; returns a handle whose replies can be awaited."""
        n = next(self._ids)
        rid = request_id or f"req-{n}"
        correlation = f"c{n}".encode()
        queue = self._reply_queue(correlation)
        payload = {"requestId": rid, **(params or {})}
        await self.send(
            topic,
            payload,
            content_type=content_type,
            response_topic=self.reply_topic(),
            correlation=correlation,
            expiry=expiry,
        )
        return Request(rid, queue)

    async def call(
        self,
        topic: str,
        params: dict[str, Any] | None = None,
        *,
        timeout: float = 10.0,
        **kwargs: Any,
    ) -> dict[str, Any]:
        """Send a request and return its completion (acks and events are skipped)."""
        req = await self.start(topic, params, **kwargs)
        return await req.completion(timeout)

    def request_topic(self, command: str, device: str | None = None) -> str:
        """Where this client's requests go: ``req/{clientId}/...`` (docs/api.md)."""
        where = f"dev/{device}/cmd" if device is not None else "cmd"
        return f"{self.root}/req/{self.client_id}/{where}/{command}"

    async def device(
        self, device: str, command: str, params: dict[str, Any] | None = None, **kwargs: Any
    ) -> dict[str, Any]:
        return await self.call(self.request_topic(command, device), params, **kwargs)

    async def daemon(
        self, command: str, params: dict[str, Any] | None = None, **kwargs: Any
    ) -> dict[str, Any]:
        return await self.call(self.request_topic(command), params, **kwargs)

    async def sim(
        self, device: str, action: str, params: dict[str, Any] | None = None, **kwargs: Any
    ) -> dict[str, Any]:
        result = await self.call(f"{self.root}/sim/{device}/{action}", params, **kwargs)
        assert result["completionCode"] == "success", result
        return result

    @contextlib.asynccontextmanager
    async def subscription(self, topic_filter: str) -> AsyncIterator[asyncio.Queue[Received]]:
        """Collect messages matching a filter while the context is open."""
        queue: asyncio.Queue[Received] = asyncio.Queue()
        entry = (topic_filter, queue)
        self._subs.append(entry)
        await self.client.subscribe(topic_filter, qos=1)
        try:
            yield queue
        finally:
            self._subs.remove(entry)
            with contextlib.suppress(aiomqtt.MqttError):
                await self.client.unsubscribe(topic_filter)

    def _dispatch(self, message: aiomqtt.Message) -> None:
        props = message.properties
        content_type = getattr(props, "ContentType", None)
        correlation = getattr(props, "CorrelationData", None)
        payload = message.payload if isinstance(message.payload, bytes) else b""
        received = Received(
            str(message.topic),
            decode(payload, content_type),
            message.retain,
            content_type,
            correlation,
        )
        if (
            str(message.topic).startswith(f"{self.root}/reply/{self.client_id}/")
            and correlation is not None
        ):
            self._reply_queue(correlation).put_nowait(received)
        for topic_filter, queue in self._subs:
            if message.topic.matches(topic_filter):
                queue.put_nowait(received)


@dataclass
class Request:
    request_id: str
    replies: asyncio.Queue[Received]

    async def next(self, timeout: float = 10.0) -> dict[str, Any]:
        received = await asyncio.wait_for(self.replies.get(), timeout)
        assert isinstance(received.payload, dict)
        return received.payload

    async def completion(self, timeout: float = 10.0) -> dict[str, Any]:
        async with asyncio.timeout(timeout):
            while True:
                reply = await self.next(timeout)
                if reply["type"] == "completion":
                    return reply

    async def all_until_completion(self, timeout: float = 10.0) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        async with asyncio.timeout(timeout):
            while True:
                reply = await self.next(timeout)
                out.append(reply)
                if reply["type"] == "completion":
                    return out


@contextlib.asynccontextmanager
async def connect(
    port: int,
    board: str,
    client_id: str = "ui1",
    host: str = "127.0.0.1",
    username: str | None = None,
    password: str | None = None,
) -> AsyncIterator[UiClient]:
    async with aiomqtt.Client(
        host,
        port,
        identifier=client_id,
        username=username,
        password=password,
        protocol=aiomqtt.ProtocolVersion.V5,
        clean_start=True,
        socket_options=[NODELAY],
    ) as client:
        ui = UiClient(client, client_id, board)
        await client.subscribe(f"kiosk/v1/{board}/reply/{client_id}/#", qos=1)

        async def pump() -> None:
            async for message in client.messages:
                ui._dispatch(message)

        task = asyncio.create_task(pump(), name=f"ui-{client_id}")
        try:
            yield ui
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, aiomqtt.MqttError):
                await task
