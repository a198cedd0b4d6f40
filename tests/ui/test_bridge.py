"""The UI server's ``/mqtt`` bridge at its edges, driven by the ``websockets`` client library.

The bridge must refuse what is not MQTT over websockets (no ``mqtt`` subprotocol,
text frames), say when the broker cannot be reached, and relay a large message
both ways intact whatever the frame boundaries (a real mosquitto on loopback).
"""

from __future__ import annotations

import asyncio
import os

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.typing import Subprotocol

from daemon.broker import free_port
from daemon.ui.server import BrokerAddress, UiSite, serve_ui
from tests.conftest import Broker

SITE = UiSite(board="test-0001")
MQTT = [Subprotocol("mqtt")]


def _packet(first: int, body: bytes) -> bytes:
    length, n = bytearray(), len(body)
    while True:
        n, digit = divmod(n, 128)
        length.append(digit | (128 if n else 0))
        if not n:
            return bytes([first]) + bytes(length) + body


def _str(text: str) -> bytes:
    return len(text).to_bytes(2, "big") + text.encode()


def _connect_packet(client_id: str) -> bytes:
    return _packet(0x10, _str("MQTT") + bytes([4, 2, 0, 60]) + _str(client_id))


async def test_no_broker_gets_502() -> None:
    closed = BrokerAddress("127.0.0.1", free_port())
    async with serve_ui(SITE, 0, broker=closed) as url:
        bridge = "ws" + url.removeprefix("http") + "mqtt"
        with pytest.raises(InvalidStatus) as refused:
            await connect(bridge, subprotocols=MQTT)
    assert refused.value.response.status_code == 502  # Bad Gateway


async def test_a_client_without_the_mqtt_subprotocol_is_refused(broker: Broker) -> None:
    async with serve_ui(SITE, 0, broker=BrokerAddress("127.0.0.1", broker.port)) as url:
        bridge = "ws" + url.removeprefix("http") + "mqtt"
        with pytest.raises(InvalidStatus) as refused:
            await connect(bridge)
    assert refused.value.response.status_code == 400  # Bad Request


async def test_a_text_frame_closes_the_connection(broker: Broker) -> None:
    async with serve_ui(SITE, 0, broker=BrokerAddress("127.0.0.1", broker.port)) as url:
        bridge = "ws" + url.removeprefix("http") + "mqtt"
        async with connect(bridge, subprotocols=MQTT) as ws:
            await ws.send("CONNECT")
            with pytest.raises(ConnectionClosed) as closed:
                async with asyncio.timeout(5):
                    await ws.recv()
    assert closed.value.rcvd is not None
    assert closed.value.rcvd.code == 1003  # unsupported data


async def test_a_large_message_crosses_both_ways_in_pieces(broker: Broker) -> None:
    """600 kB published in 1 kB websocket messages arrives whole at a second client."""
    payload = os.urandom(600_000)
    publish = _packet(0x30, _str("t/big") + payload)
    async with serve_ui(SITE, 0, broker=BrokerAddress("127.0.0.1", broker.port)) as url:
        bridge = "ws" + url.removeprefix("http") + "mqtt"
        async with (
            connect(bridge, subprotocols=MQTT, max_size=None) as reader,
            connect(bridge, subprotocols=MQTT) as writer,
        ):
            for ws, name in ((reader, "reader"), (writer, "writer")):
                await ws.send(_connect_packet(name))
                assert await ws.recv() == b"\x20\x02\x00\x00"  # CONNACK, accepted
            await reader.send(_packet(0x82, b"\x00\x01" + _str("t/big") + b"\x00"))
            assert await reader.recv() == b"\x90\x03\x00\x01\x00"  # SUBACK, QoS 0
            for start in range(0, len(publish), 1000):
                await writer.send(publish[start : start + 1000])
            received = b""
            async with asyncio.timeout(10):
                while len(received) < len(publish):
                    chunk = await reader.recv()
                    assert isinstance(chunk, bytes)
                    received += chunk
    assert received == publish
