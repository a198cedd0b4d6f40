"""MQTT 3.1.1 clients (no content type, no response topic) with a real paho client and broker.

Such a client names its reply topic in ``replyTo``; a payload that starts with ``{``
is JSON and is answered in JSON, anything else is MessagePack (docs/api.md, "Writing
a client").
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
import queue
import socket
import threading
from collections.abc import AsyncIterator
from typing import Any

import msgspec
import paho.mqtt.client as mqtt
import pytest

from daemon.mqtt.codec import JSON_CODEC, MSGPACK_CODEC, for_request
from tests.conftest import Broker, RunningDaemon


class Client311:
    """A blocking paho MQTT 3.1.1 client run on its own thread (``loop_start``)."""

    def __init__(self, port: int, client_id: str) -> None:
        self.port = port
        self.client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv311
        )
        # As docs/api.md tells client authors: without it a QoS 1 round trip waits ~40 ms.
        self.client.on_socket_open = lambda _c, _u, sock: sock.setsockopt(
            socket.IPPROTO_TCP, socket.TCP_NODELAY, 1
        )
        self.client.on_message = lambda _c, _u, msg: self.messages.put(msg)
        self.client.on_subscribe = lambda *_: self.subscribed.set()
        self.messages: queue.Queue[mqtt.MQTTMessage] = queue.Queue()
        self.subscribed = threading.Event()

    def start(self) -> None:
        self.client.connect("127.0.0.1", self.port)
        self.client.loop_start()

    def stop(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()

    async def subscribe(self, topic: str) -> None:
        self.subscribed.clear()
        self.client.subscribe(topic, qos=1)
        assert await asyncio.to_thread(self.subscribed.wait, 5), "no SUBACK"

    async def publish(self, topic: str, payload: bytes) -> None:
        info = self.client.publish(topic, payload, qos=1)
        await asyncio.to_thread(info.wait_for_publish, 5)

    async def next(self, timeout: float = 5) -> mqtt.MQTTMessage:
        return await asyncio.to_thread(self.messages.get, True, timeout)


@contextlib.asynccontextmanager
async def connect311(port: int, client_id: str) -> AsyncIterator[Client311]:
    client = Client311(port, client_id)
    await asyncio.to_thread(client.start)
    try:
        yield client
    finally:
        await asyncio.to_thread(client.stop)


def _json(payload: bytes) -> Any:
    return json.loads(payload.decode("utf-8"))


async def test_json_request_over_mqtt311_is_answered_in_json(
    broker: Broker, daemon: RunningDaemon
) -> None:
    root = f"kiosk/v1/{daemon.board}"
    reply_to = f"{root}/reply/legacy/status"
    async with connect311(broker.port, "legacy") as client:
        await client.subscribe(f"{root}/reply/legacy/#")
        request = {"requestId": "r1", "replyTo": reply_to}
        await client.publish(f"{root}/cmd/getStatus", json.dumps(request).encode())
        reply = await client.next()
    assert reply.topic == reply_to
    done = _json(reply.payload)
    assert done["type"] == "completion"
    assert done["requestId"] == "r1"
    assert done["completionCode"] == "success"
    assert done["result"]["api"] == 1


async def test_json_over_mqtt311_gets_ack_and_bytes_as_base64(
    broker: Broker, daemon: RunningDaemon
) -> None:
    root = f"kiosk/v1/{daemon.board}"
    reply_to = f"{root}/reply/legacy/picture"
    async with connect311(broker.port, "legacy") as client:
        await client.subscribe(f"{root}/reply/legacy/#")
        request = {"requestId": "p1", "replyTo": reply_to, "purpose": "face", "width": 160}
        # Leading whitespace is still JSON: the first non-blank byte decides.
        payload = b"\n " + json.dumps(request).encode()
        await client.publish(f"{root}/dev/camera/cmd/takePicture", payload)
        ack = _json((await client.next()).payload)
        done = _json((await client.next(timeout=15)).payload)
    assert ack == {"type": "ack", "requestId": "p1"}
    assert done["completionCode"] == "success", done
    jpeg = base64.b64decode(done["result"]["data"], validate=True)
    assert jpeg.startswith(b"\xff\xd8")
    assert len(jpeg) == done["result"]["size"]


async def test_msgpack_request_over_mqtt311_still_works(
    broker: Broker, daemon: RunningDaemon
) -> None:
    root = f"kiosk/v1/{daemon.board}"
    reply_to = f"{root}/reply/legacy/mp"
    async with connect311(broker.port, "legacy") as client:
        await client.subscribe(reply_to)
        payload = msgspec.msgpack.encode({"requestId": "m1", "replyTo": reply_to})
        await client.publish(f"{root}/cmd/getStatus", payload)
        done = msgspec.msgpack.decode((await client.next()).payload)
    assert (done["requestId"], done["completionCode"]) == ("m1", "success")


async def test_mqtt311_request_without_reply_to_is_dropped_with_a_reason(
    broker: Broker, daemon: RunningDaemon, caplog: pytest.LogCaptureFixture
) -> None:
    root = f"kiosk/v1/{daemon.board}"
    router = daemon.app.router
    caplog.set_level(logging.WARNING, logger="daemon.api.router")
    async with connect311(broker.port, "legacy") as client:
        await client.subscribe(f"{root}/reply/legacy/#")
        before = router.dropped
        await client.publish(f"{root}/cmd/getStatus", b'{"requestId": "lost"}')
        await client.publish(f"{root}/cmd/getStatus", b"\xc1 not a document")
        async with asyncio.timeout(5):
            while router.dropped < before + 2:
                await asyncio.sleep(0.01)
        with pytest.raises(queue.Empty):
            await client.next(timeout=0.2)
    reasons = [r.getMessage() for r in caplog.records if "dropped request" in r.getMessage()]
    assert any("no reply topic (no MQTT 5 response topic, no replyTo key)" in r for r in reasons)
    assert any("MessagePack payload unreadable" in r for r in reasons)
    assert not any("not a document" in r for r in reasons), "payloads are never logged"


def test_codec_is_chosen_by_content_type_then_by_the_first_byte() -> None:
    assert for_request(None, b'{"requestId": "a"}') is JSON_CODEC
    assert for_request(None, b' \r\n\t{"requestId": "a"}') is JSON_CODEC
    assert for_request(None, msgspec.msgpack.encode({"requestId": "a"})) is MSGPACK_CODEC
    assert for_request(None, b"") is MSGPACK_CODEC
    # An explicit content type wins over the first byte.
    assert for_request("application/msgpack", b"{") is MSGPACK_CODEC
    assert for_request("application/json; charset=utf-8", b"\x81") is JSON_CODEC


@pytest.mark.parametrize("size", [0, 1, 15, 16, 65_535, 65_536])
def test_no_msgpack_map_starts_like_json(size: int) -> None:
    """Every map header (fixmap, map16, map32) differs from ``{`` and JSON whitespace."""
    doc = {f"k{i}": i for i in range(size)}
    first = msgspec.msgpack.encode(doc)[0]
    assert first in (*range(0x80, 0x90), 0xDE, 0xDF)
    assert first not in b"{ \t\r\n"
