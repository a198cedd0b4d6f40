"""A reconnecting subscriber to the fleet broker that hands every message to a callback.

Full-jitter backoff (:mod:`devices.runtime.backoff`) from :data:`FIRST_RETRY_S`
capped at ``reconnect_max_s``, starting over once subscribed; TLS with a pinned CA and a
client certificate like the boards' uplink (:mod:`daemon.uplink.transport`).
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import aiomqtt

from daemon.mqtt.link import NODELAY
from daemon.uplink.transport import TransportError, parse_url, read_password, tls_context
from devices.runtime.backoff import Backoff

log = logging.getLogger(__name__)
#: First reconnect ceiling (s); it doubles per failed attempt up to ``reconnect_max_s``.
FIRST_RETRY_S = 0.5

#: Called with (topic, payload, content type) on the loop; must not block.
MessageSink = Callable[[str, bytes, str | None], None]


@dataclass(frozen=True, slots=True)
class FleetBroker:
    """How a fleet tool reaches the broker (``url`` is ``mqtts://host[:port]`` or ``mqtt://``)."""

    url: str
    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None
    username: str | None = None
    password_file: str | None = None
    client_id: str | None = None
    connect_timeout: float = 10.0
    reconnect_max_s: float = 30.0


#: Makes an unopened client for the fleet broker, with the given client id.
ClientMaker = Callable[[str], aiomqtt.Client]


async def client_maker(broker: FleetBroker) -> ClientMaker:
    """Read the TLS files and the password once; return a maker of clients for ``broker``.

    Each client is MQTT 5 with a clean start, TCP_NODELAY and ``connect_timeout``.

    Raises:
        TransportError: the URL or the TLS files are unusable.

    """
    endpoint = parse_url(broker.url)
    tls = None
    if endpoint.tls:
        tls = await asyncio.to_thread(
            tls_context, broker.ca_file, broker.cert_file, broker.key_file
        )
    password = await asyncio.to_thread(read_password, broker.password_file)

    def make(client_id: str) -> aiomqtt.Client:
        return aiomqtt.Client(
            endpoint.host,
            endpoint.port,
            identifier=client_id,
            protocol=aiomqtt.ProtocolVersion.V5,
            clean_start=True,
            username=broker.username,
            password=password,
            timeout=broker.connect_timeout,
            tls_context=tls,
            socket_options=[NODELAY],
        )

    return make


def new_client_id() -> str:
    """A client id of its own for one fleet tool's connection."""
    return f"kioskd-fleet-{secrets.token_hex(4)}"


async def feed(
    broker: FleetBroker,
    filters: Sequence[str],
    sink: MessageSink,
    connected: asyncio.Event | None = None,
) -> None:
    """Subscribe to ``filters`` (QoS 1) and deliver every message to ``sink``, reconnecting forever.

    Raises:
        TransportError: the URL or the TLS files are unusable (not retried).

    """
    make = await client_maker(broker)
    client_id = broker.client_id or new_client_id()
    cap = broker.reconnect_max_s
    backoff = Backoff(first_s=min(FIRST_RETRY_S, cap), max_s=cap)
    while True:
        try:
            async with make(client_id) as client:
                await client.subscribe([(f, 1) for f in filters])
                backoff.up()
                log.info("fleet broker %s: subscribed to %s", broker.url, ", ".join(filters))
                if connected is not None:
                    connected.set()
                async for message in client.messages:
                    payload = message.payload if isinstance(message.payload, bytes) else b""
                    content_type = getattr(message.properties, "ContentType", None)
                    sink(str(message.topic), payload, content_type)
        except aiomqtt.MqttError as exc:
            if connected is not None:
                connected.clear()
            delay = backoff.failed()
            log.warning("fleet broker %s: %s; retrying in %.1f s", broker.url, exc, delay)
            await asyncio.sleep(delay)


__all__ = [
    "ClientMaker",
    "FleetBroker",
    "MessageSink",
    "TransportError",
    "client_maker",
    "feed",
    "new_client_id",
]
