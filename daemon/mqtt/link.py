"""The daemon's connection to the local broker: reconnects, ordered non-blocking publish.

aiomqtt drives paho's socket on the event loop (no paho thread).  aiomqtt v2
has no reconnect, so :meth:`Link.run` loops with full-jitter backoff
(:mod:`devices.runtime.backoff`: first ceiling :data:`FIRST_RETRY_S`, doubling to
``reconnect_max``, back to the first once connected).  Every
socket gets TCP_NODELAY: at QoS 1 Nagle plus delayed ACK otherwise costs
40-90 ms per round trip.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

import aiomqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.subscribeoptions import SubscribeOptions

from devices.runtime.backoff import Backoff

log = logging.getLogger(__name__)

NODELAY = (socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
#: First reconnect ceiling (s): the local broker is usually back at once.
FIRST_RETRY_S = 0.1


@dataclass(frozen=True, slots=True)
class Will:
    """Last will: retained ``status`` offline."""

    topic: str
    payload: bytes
    content_type: str


def publish_properties(content_type: str, correlation: bytes | None = None) -> Properties:
    """MQTT 5 PUBLISH properties carrying the content type (and correlation data)."""
    props = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
    props.ContentType = content_type
    if correlation is not None:
        props.CorrelationData = correlation
    return props


class Link:
    """A reconnecting MQTT 5 client.

    Args:
        host, port: the broker (loopback in production).
        client_id: this daemon's client id.
        will: last will, published by the broker if the daemon dies.
        subscriptions: filters (re)subscribed at QoS 1 on every connect, retain as
            published (a retained request is seen as one even when delivered live).
        on_connect: coroutine run after subscribing, on every connect (publish retained state).
        on_message: called on the loop for each message; must not block or raise.
        keepalive: MQTT keepalive in seconds.
        connect_timeout: seconds to wait for CONNACK.
        reconnect_max: cap of the jittered backoff in seconds.

    """

    def __init__(
        self,
        *,
        host: str,
        port: int,
        client_id: str,
        will: Will,
        subscriptions: Sequence[str],
        on_connect: Callable[[], Awaitable[None]],
        on_message: Callable[[aiomqtt.Message], None],
        username: str | None = None,
        password: str | None = None,
        keepalive: int = 30,
        connect_timeout: float = 5.0,
        reconnect_max: float = 10.0,
    ) -> None:
        self._host = host
        self._port = port
        self._client_id = client_id
        self._will = will
        self.subscriptions = list(subscriptions)
        self._on_connect = on_connect
        self._on_message = on_message
        self._username = username
        self._password = password
        self._keepalive = keepalive
        self._connect_timeout = connect_timeout
        self._reconnect_max = reconnect_max
        self._client: aiomqtt.Client | None = None
        self._pending: set[asyncio.Task[None]] = set()
        self.connected = asyncio.Event()
        #: Publishes dropped (disconnected, refused).
        self.dropped = 0
        #: Connections made so far; more than one means the link was lost and rejoined.
        self.connects = 0

    def _make_client(self) -> aiomqtt.Client:
        will = aiomqtt.Will(
            self._will.topic,
            self._will.payload,
            qos=1,
            retain=True,
            properties=publish_properties(self._will.content_type),
        )
        client = aiomqtt.Client(
            self._host,
            self._port,
            identifier=self._client_id,
            protocol=aiomqtt.ProtocolVersion.V5,
            clean_start=True,
            will=will,
            username=self._username,
            password=self._password,
            keepalive=self._keepalive,
            timeout=self._connect_timeout,
            socket_options=[NODELAY],
        )
        # Start-up publishes every retained state at once; that many in flight is normal.
        client.pending_calls_threshold = 1000
        return client

    async def run(self) -> None:
        """Connect, serve and reconnect forever (until cancelled)."""
        cap = self._reconnect_max
        backoff = Backoff(first_s=min(FIRST_RETRY_S, cap), max_s=cap)
        failures = 0
        while True:
            try:
                async with self._make_client() as client:
                    self._client = client
                    # Retain as published: a request published retained shows as such even
                    # live, so the router ignores and clears it instead of running it.
                    options = SubscribeOptions(qos=1, retainAsPublished=True)
                    await client.subscribe([(f, options) for f in self.subscriptions])
                    await self._on_connect()
                    self.connects += 1
                    self.connected.set()
                    backoff.up()
                    log.info(
                        "connected to broker %s:%d%s",
                        self._host,
                        self._port,
                        f" after {failures} failed attempts" if failures else "",
                    )
                    failures = 0
                    async for message in client.messages:
                        self._on_message(message)
            except aiomqtt.MqttError as exc:
                # The first failure of an outage is a warning; the retries that follow
                # say nothing new until the link is back (then one INFO line counts them).
                level = logging.WARNING if failures == 0 else logging.DEBUG
                failures += 1
                log.log(level, "broker %s:%d: %s", self._host, self._port, exc)
            finally:
                self._client = None
                self.connected.clear()
            await asyncio.sleep(backoff.failed())

    def publish(
        self,
        topic: str,
        payload: bytes,
        *,
        content_type: str,
        retain: bool = False,
        correlation: bytes | None = None,
    ) -> None:
        """Queue a QoS 1 publish without waiting for its PUBACK.

        Publishes leave in call order: aiomqtt hands the message to paho before
        its first await, and tasks start in creation order.  While disconnected
        the message is dropped and counted (retained state is republished on
        reconnect; UIs detect the gap by ``seq``).
        """
        client = self._client
        if client is None:
            self.dropped += 1
            return
        task = asyncio.get_running_loop().create_task(
            self._publish(
                client, topic, payload, publish_properties(content_type, correlation), retain
            ),
            name="mqtt-publish",
        )
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def _publish(
        self,
        client: aiomqtt.Client,
        topic: str,
        payload: bytes,
        props: Properties,
        retain: bool,
    ) -> None:
        try:
            await client.publish(topic, payload, qos=1, retain=retain, properties=props, timeout=10)
        except aiomqtt.MqttError as exc:
            self.dropped += 1
            log.debug("publish to %s failed: %s", topic, exc)
        except ValueError:
            # paho refuses a topic it cannot send (too long, invalid UTF-8); callers
            # validate reply topics first (Topics.reply_client), so this is a bug.
            self.dropped += 1
            log.exception("publish to %.80r refused by paho", topic)

    async def subscribe(self, topic_filter: str) -> None:
        """Subscribe now (if connected) at QoS 1."""
        if self._client is not None:
            await self._client.subscribe(topic_filter, qos=1)

    async def unsubscribe(self, topic_filter: str) -> None:
        """Unsubscribe now (if connected)."""
        if self._client is not None:
            await self._client.unsubscribe(topic_filter)

    async def flush(self, timeout: float = 2.0) -> None:
        """Wait (bounded, seconds) for queued publishes to be acknowledged."""
        if self._pending:
            await asyncio.wait(set(self._pending), timeout=timeout)
