"""The echo peer of the floor measurement, in its own process like the daemon.

``python -m bench.echo PORT TOPIC``: answers every request on TOPIC with a
MessagePack completion on the request's response topic, with its correlation
data, at QoS 1, over an aiomqtt client with TCP_NODELAY.  Prints ``ready``
once subscribed.

``python -m bench.echo PORT TOPIC BYTES``: the picture peer of the browser bench;
a message on TOPIC carries a reply topic (UTF-8, any MQTT version), answered with
BYTES random bytes on it at QoS 1.
"""

from __future__ import annotations

import asyncio
import os
import socket
import sys

import aiomqtt
import msgspec
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

NODELAY = (socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
MSGPACK = "application/msgpack"


async def serve(port: int, topic: str) -> None:
    decoder = msgspec.msgpack.Decoder()
    encoder = msgspec.msgpack.Encoder()
    async with aiomqtt.Client(
        "127.0.0.1",
        port,
        identifier="bench-echo",
        protocol=aiomqtt.ProtocolVersion.V5,
        clean_start=True,
        socket_options=[NODELAY],
    ) as client:
        await client.subscribe(topic, qos=1)
        print("ready", flush=True)
        async for message in client.messages:
            request = message.properties
            response_topic = getattr(request, "ResponseTopic", None)
            if response_topic is None or not isinstance(message.payload, bytes):
                continue
            payload = decoder.decode(message.payload)
            props = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
            props.ContentType = MSGPACK
            props.CorrelationData = getattr(request, "CorrelationData", b"")
            reply = {
                "type": "completion",
                "requestId": payload["requestId"],
                "completionCode": "success",
            }
            await client.publish(response_topic, encoder.encode(reply), qos=1, properties=props)


async def serve_blob(port: int, topic: str, size: int) -> None:
    blob = os.urandom(size)
    async with aiomqtt.Client(
        "127.0.0.1", port, identifier="bench-blob", socket_options=[NODELAY]
    ) as client:
        await client.subscribe(topic, qos=1)
        print("ready", flush=True)
        async for message in client.messages:
            if isinstance(message.payload, bytes):
                await client.publish(message.payload.decode(), blob, qos=1)


def main() -> None:
    if len(sys.argv) > 3:
        asyncio.run(serve_blob(int(sys.argv[1]), sys.argv[2], int(sys.argv[3])))
    else:
        asyncio.run(serve(int(sys.argv[1]), sys.argv[2]))


if __name__ == "__main__":
    main()
