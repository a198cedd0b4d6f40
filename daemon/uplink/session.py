"""One connection to the fleet broker: birth, live and replay lanes, PUBACK-driven deletes.

Two lanes share the connection.  The **replay lane** sends, oldest first, every
row that was already in the outbox when the connection came up (queued while
offline, left unacknowledged by the previous connection or by a previous daemon
run), marked ``replay: true`` and rate-limited, so the **live lane** — rows
written after the connection came up — is never starved behind a day of
backlog.  Both hand messages to paho in the order they take a ``seq``, and up
to ``inflight`` publishes await their PUBACK at once (aiomqtt's ``publish()``
waits for its PUBACK, so one at a time would cost one round trip per message).
Acknowledged rows are deleted in batches; a row whose PUBACK never came stays
and is replayed by the next connection (consumers drop the duplicate by
``msgId``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

import aiomqtt
import msgspec
from paho.mqtt.properties import Properties

from .outbox import Outbox, Row
from .schema import SEQ_MODULO

log = logging.getLogger(__name__)

#: Rows read from the outbox per query.
READ_BATCH = 512
#: Acknowledged rows deleted per transaction at most, and how long an ack may wait (s).
DELETE_BATCH = 512
DELETE_DELAY_S = 0.2
#: Seconds a publish may wait for its PUBACK before the connection is deemed dead.
PUBLISH_TIMEOUT_S = 30.0

_decode = msgspec.msgpack.Decoder().decode
_encoder = msgspec.msgpack.Encoder()


def restamp(payload: bytes, seq: int, replay: bool) -> bytes:
    """The stored payload with this send's ``seq`` and ``replay`` flag."""
    message = _decode(payload)
    message["seq"] = seq
    message["replay"] = replay
    return _encoder.encode(message)


class RateLimit:
    """At most ``rate`` calls of :meth:`wait` per second on average (0: no limit).

    Sleeps only once the caller is 20 ms ahead, so a high rate costs few timers.
    """

    def __init__(self, rate: int) -> None:
        self._interval = 1.0 / rate if rate > 0 else 0.0
        self._next = 0.0

    async def wait(self) -> None:
        """Return when the next call is allowed."""
        if not self._interval:
            return
        now = asyncio.get_running_loop().time()
        self._next = max(self._next + self._interval, now)
        ahead = self._next - now
        if ahead > 0.02:  # noqa: PLR2004 - timer granularity, seconds
            await asyncio.sleep(ahead)


class Session:
    """Publishing over one connected client until it fails or is told to stop.

    Args:
        client: the connected aiomqtt client.
        outbox: the outbox to drain.
        properties: PUBLISH properties (content type) of every message.
        inflight: publishes awaiting PUBACK at once.
        replay_rate: replayed messages per second (0: no limit).
        new_rows: set whenever a row is committed to the outbox.

    """

    def __init__(
        self,
        client: aiomqtt.Client,
        outbox: Outbox,
        properties: Properties,
        *,
        inflight: int,
        replay_rate: int,
        new_rows: asyncio.Event,
    ) -> None:
        self._client = client
        self._outbox = outbox
        self._properties = properties
        self._window = asyncio.Semaphore(inflight)
        self._inflight = inflight
        self._replay_rate = replay_rate
        self._new_rows = new_rows
        self._seq = 0
        self._acked: list[int] = []
        self._ack_event = asyncio.Event()
        self._ack_full = asyncio.Event()
        self._group: asyncio.TaskGroup | None = None
        self.replayed = 0
        self.sent = 0

    async def publish_birth(self, topic: str, payload: Callable[[int], bytes]) -> None:
        """Publish a birth (retained) as ``seq`` 0 and wait for its PUBACK; later messages follow.

        ``payload(seq)`` builds the birth for its sequence number.

        Raises:
            aiomqtt.MqttError: the broker did not acknowledge it in time.

        """
        async with self._window:
            self._seq = 1
            await self._client.publish(
                topic, payload(0), qos=1, retain=True, properties=self._properties,
                timeout=PUBLISH_TIMEOUT_S,
            )  # fmt: skip

    async def rebirth(self, topic: str, payload: Callable[[int], bytes]) -> None:
        """A new birth (``seq`` 0) after every message already handed to paho.

        Raises:
            aiomqtt.MqttError: the broker did not acknowledge it in time.

        """
        # Take the whole window: the birth goes out after every earlier message.
        for _ in range(self._inflight):
            await self._window.acquire()
        try:
            self._seq = 1
            await self._client.publish(
                topic, payload(0), qos=1, retain=True, properties=self._properties,
                timeout=PUBLISH_TIMEOUT_S,
            )  # fmt: skip
        finally:
            for _ in range(self._inflight):
                self._window.release()

    async def run(self, backlog_upto: int) -> None:
        """Send the backlog (ids up to ``backlog_upto``) and every new row until cancelled.

        Raises:
            aiomqtt.MqttError: a publish was not acknowledged in time.

        """
        try:
            async with asyncio.TaskGroup() as group:
                self._group = group
                group.create_task(self._deleter(), name="uplink-deleter")
                group.create_task(self._replay(backlog_upto), name="uplink-replay")
                group.create_task(self._live(backlog_upto), name="uplink-live")
        finally:
            self._group = None
            ids, self._acked = self._acked, []
            await asyncio.shield(self._finish(ids))

    async def _finish(self, acked: list[int]) -> None:
        """Delete the rows acknowledged last, then end this connection's claims."""
        await self._outbox.delete(acked)
        await self._outbox.release()

    async def drain(self, timeout: float) -> None:
        """Wait (at most ``timeout`` seconds) until no publish awaits its PUBACK."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                for _ in range(self._inflight):
                    await self._window.acquire()
                for _ in range(self._inflight):
                    self._window.release()

    async def _send(self, row: Row, replay: bool) -> None:
        await self._window.acquire()
        seq = self._seq
        self._seq = (seq + 1) % SEQ_MODULO
        payload = restamp(row.payload, seq, replay)
        assert self._group is not None
        # Tasks start in creation order and hand their message to paho before their
        # first await, so messages leave in seq order.
        self._group.create_task(self._publish(row.id, row.topic, payload), name="uplink-publish")

    async def _publish(self, row_id: int, topic: str, payload: bytes) -> None:
        try:
            await self._client.publish(
                topic, payload, qos=1, properties=self._properties, timeout=PUBLISH_TIMEOUT_S
            )
        finally:
            self._window.release()
        self.sent += 1
        self._acked.append(row_id)
        self._ack_event.set()
        if len(self._acked) >= DELETE_BATCH:
            self._ack_full.set()

    async def _replay(self, upto: int) -> None:
        limit = RateLimit(self._replay_rate)
        cursor = 0
        started = asyncio.get_running_loop().time()
        while rows := await self._outbox.batch(cursor, upto, READ_BATCH):
            for row in rows:
                await limit.wait()
                await self._send(row, replay=True)
                cursor = row.id
                self.replayed += 1
        if self.replayed:
            elapsed = asyncio.get_running_loop().time() - started
            log.info("uplink: replayed %d queued messages in %.1f s", self.replayed, elapsed)

    async def _live(self, after: int) -> None:
        cursor = after
        while True:
            self._new_rows.clear()
            rows = await self._outbox.batch(cursor, None, READ_BATCH)
            if not rows:
                await self._new_rows.wait()
                continue
            for row in rows:
                await self._send(row, replay=False)
                cursor = row.id

    async def _deleter(self) -> None:
        while True:
            await self._ack_event.wait()
            with contextlib.suppress(TimeoutError):  # asyncio.timeout keeps a cancellation
                async with asyncio.timeout(DELETE_DELAY_S):
                    await self._ack_full.wait()
            ids, self._acked = self._acked, []
            self._ack_event.clear()
            self._ack_full.clear()
            await self._outbox.delete(ids)
