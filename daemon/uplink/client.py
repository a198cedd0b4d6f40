"""The fleet uplink: a second MQTT client, independent of the local one, with store-and-forward.

Every fleet message except birth and death is written to the outbox first and
sent from there (:mod:`.session`).  On every connection the uplink increments
``bdSeq`` (persisted), sets the ``death`` last will with it and publishes a
``birth``; it reconnects with full-jitter backoff capped at ``reconnect_max_s``
and sleeps, not spins, while the broker is unreachable.  It reads the daemon
only through :class:`DaemonView` and hears devices through
:meth:`Uplink.device_state` / :meth:`Uplink.device_event` (the daemon's device
observer seam); identity data never reaches it: it forwards a fixed list of
facts (:data:`.schema.FACT_KEYS`), never event payloads as such.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import hashlib
import json
import logging
import ssl
import time
from pathlib import Path
from typing import Literal, Protocol, TypedDict

import aiomqtt
import msgspec

from daemon import __version__
from daemon.api.schema import Description, Status
from daemon.config import Config
from daemon.fleet_topics import FleetKind, FleetTopics, parse
from daemon.mqtt.codec import MSGPACK_CODEC, DecodeError, for_content_type
from daemon.mqtt.link import NODELAY, publish_properties
from daemon.update import updater
from daemon.update.updater import BIRTH_FILE
from devices.base import DeviceState, Message
from devices.runtime.backoff import Backoff
from devices.runtime.clock import now_ms

from .observe import DeviceWatch, Occurrence
from .outbox import Outbox, Row
from .schema import (
    BD_SEQ_MODULO,
    Birth,
    CommandReply,
    Death,
    DeviceInventory,
    FleetRequest,
    Health,
    OperationalEvent,
    OutboxHealth,
    Stamped,
    UpdateStatus,
)
from .session import Session
from .sysinfo import SystemProbe
from .transport import (
    TransportError,
    certificate_not_after,
    parse_url,
    read_password,
    tls_context,
)

log = logging.getLogger(__name__)
#: paho reports socket and TLS errors only through its logger.
paho_log = logging.getLogger(__name__ + ".paho")

#: First backoff ceiling (s); it doubles per failed attempt up to ``reconnect_max_s``
#: and starts over once a connection was made (:mod:`devices.runtime.backoff`).
BACKOFF_BASE_S = 0.5
#: Seconds to wait for in-flight PUBACKs and the clean death at shutdown.
STOP_DRAIN_S = 2.0
_DAY_S = 86_400


class DaemonView(Protocol):
    """What the uplink reads from the daemon (the App implements it)."""

    session: str

    def status(self) -> Status:
        """The daemon's current status."""
        ...

    def description(self) -> Description:
        """Every device with its commands, events and capabilities."""
        ...

    async def restart_device(self, device_id: str) -> None:
        """Stop a device's driver and start it again.

        Raises:
            KeyError: no such device.

        """
        ...


def config_hash(config: Config) -> str:
    """A short SHA-256 of the effective configuration, with secrets left out."""
    clean = config.replace(mqtt=msgspec.structs.replace(config.mqtt, password=None))
    return hashlib.sha256(msgspec.json.encode(clean)).hexdigest()[:16]


class _StampKw(TypedDict):
    msg_id: int
    ts: int
    board: str
    tenant: str


class _LastError(logging.Handler):
    """Keeps paho's last error message: a TLS alert from the broker only shows there."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.text: str | None = None

    def emit(self, record: logging.LogRecord) -> None:
        self.text = record.getMessage()


class _Stop(Exception):
    """Raised inside a connection to end it cleanly."""


class Uplink:
    """Health telemetry, operational events and fleet commands over the fleet broker.

    Args:
        config: the daemon's validated configuration (``[uplink]`` enabled).
        view: the daemon, read through :class:`DaemonView`.

    """

    def __init__(self, config: Config, view: DaemonView) -> None:
        self._config = config
        self._settings = config.uplink
        self._view = view
        self.board = config.board.id
        self.tenant = config.board.tenant
        self.topics = FleetTopics(self.tenant, self.board)
        self._endpoint = parse_url(self._settings.url)
        self._client_id = self._settings.client_id or f"kioskd-{self.tenant}-{self.board}"
        self._hash = config_hash(config)
        state_dir = Path(config.daemon.state_dir)
        self.outbox = Outbox(
            state_dir / "uplink-outbox.sqlite3",
            max_bytes=self._settings.outbox_max_bytes,
            max_age_s=self._settings.outbox_max_age_s,
        )
        self._probe = SystemProbe(state_dir)
        self._started = time.monotonic()
        self._opened = False
        self._early: list[Row] = []
        self._writes: set[asyncio.Future[None]] = set()
        self._new_rows = asyncio.Event()
        self._stop = asyncio.Event()
        self._session: Session | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._properties = publish_properties(MSGPACK_CODEC.content_type)
        self.watch = DeviceWatch(
            {d.id: d.device_class for d in config.devices}, self._operational_event
        )
        self.connected = asyncio.Event()
        self.connect_failures = 0
        self._paho_error = _LastError()
        self.last_error: str | None = None
        self.bd_seq: int | None = None
        #: The root updater's outcome file, reported in birth and health (world-readable).
        self.update_status = updater.STATUS

    # -- device observer ------------------------------------------------------------------------

    def device_state(self, device_id: str, state: DeviceState, detail: Message) -> None:
        """A device state changed (called by the daemon on the loop)."""
        self.watch.device_state(device_id, state, detail)

    def device_event(self, device_id: str, event: str, data: Message) -> None:
        """A device broadcast an event (called by the daemon on the loop)."""
        self.watch.device_event(device_id, event, data)

    # -- messages -------------------------------------------------------------------------------

    def _stamp(self) -> _StampKw:
        return {"msg_id": self.outbox.next_id(), "ts": now_ms(), "board": self.board,
                "tenant": self.tenant}  # fmt: skip

    def _operational_event(self, occurred: Occurrence) -> None:
        log.info("uplink: %s on %s (%s)", occurred.kind, occurred.device, occurred.state.value)
        event = OperationalEvent(
            **self._stamp(),
            kind=occurred.kind,
            device=occurred.device,
            device_class=occurred.device_class,
            state=occurred.state.value,
            previous=None if occurred.previous is None else occurred.previous.value,
            facts=occurred.facts,
        )
        self.submit(self.topics.event(occurred.kind), event)

    def submit(self, topic: str, message: Stamped) -> None:
        """Write ``message`` to the outbox now (in call order); it is sent from there."""
        row = Row(message.msg_id, message.ts, topic, MSGPACK_CODEC.encode(message))
        if not self._opened:
            self._early.append(row)
            return
        self._write(row)

    def _write(self, row: Row) -> None:
        future = self.outbox.append(row)
        self._writes.add(future)
        future.add_done_callback(self._written)

    def _written(self, future: asyncio.Future[None]) -> None:
        self._writes.discard(future)
        if future.cancelled():
            return
        if (exc := future.exception()) is not None:
            log.error("uplink outbox write failed: %s", exc)
            return
        self._new_rows.set()

    async def health(self) -> Health:
        """Build a health message now (reads /proc and the certificate on a worker thread)."""
        stats = await self.outbox.stats()
        system = await asyncio.to_thread(self._probe.sample)
        not_after = await self._cert_not_after()
        status = self._view.status()
        return Health(
            **self._stamp(),
            session=self._view.session,
            status=status.state.value,
            reasons=list(status.reasons),
            uptime_s=round(time.monotonic() - self._started, 1),
            clock_synced=status.clock_synced,
            devices=self.watch.health(),
            outbox=OutboxHealth(
                messages=stats.messages,
                bytes=stats.bytes,
                dropped=stats.dropped,
                oldest_ts=stats.oldest_ts,
            ),
            system=system,
            cert_not_after=None if not_after is None else int(not_after.timestamp() * 1000),
            cert_days_left=(
                None
                if not_after is None
                else round((not_after - dt.datetime.now(dt.UTC)).total_seconds() / _DAY_S, 2)
            ),
            update=await self._update_status(),
        )

    async def publish_health(self) -> None:
        """Queue a health message."""
        self.submit(self.topics.health, await self.health())

    async def _cert_not_after(self) -> dt.datetime | None:
        cert = self._settings.cert_file
        return None if cert is None else await asyncio.to_thread(certificate_not_after, cert)

    async def _birth(self, bd_seq: int) -> bytes:
        description = self._view.description()
        not_after = await self._cert_not_after()
        birth = Birth(
            **self._stamp(),
            bd_seq=bd_seq,
            session=self._view.session,
            version=__version__,
            config_hash=self._hash,
            health_interval_s=self._settings.health_interval_s,
            commands=list(self._settings.commands),
            devices=[
                DeviceInventory(
                    id=d.id,
                    device_class=d.device_class,
                    driver=d.driver,
                    simulated=d.simulated,
                    commands=sorted(d.commands),
                    events=list(d.events),
                    capabilities=d.capabilities,
                )
                for d in description.devices
            ],
            cert_not_after=None if not_after is None else int(not_after.timestamp() * 1000),
            update=await self._update_status(),
            site=self._config.board.site,
        )
        return MSGPACK_CODEC.encode(birth)

    # -- run ------------------------------------------------------------------------------------

    async def run(self) -> None:
        """Open the outbox, then send health and keep the connection until :meth:`stop`.

        Raises:
            sqlite3.Error: the outbox cannot be opened.

        """
        await self.outbox.open()
        self._opened = True
        for row in self._early:
            self._write(row)
        self._early.clear()
        try:
            async with asyncio.TaskGroup() as group:
                group.create_task(self._health_loop(), name="uplink-health")
                group.create_task(self._connection_loop(), name="uplink-connection")
        finally:
            for task in list(self._tasks):
                task.cancel()
            if self._writes:
                await asyncio.wait(set(self._writes), timeout=STOP_DRAIN_S)
            await self.outbox.close()

    def stop(self) -> None:
        """Ask :meth:`run` to send a clean death, disconnect, close the outbox and return."""
        self._stop.set()

    async def _sleep(self, seconds: float) -> bool:
        """Sleep unless stopping; True if :meth:`stop` was called."""
        # asyncio.timeout, not wait_for: on 3.11 wait_for loses a cancellation that
        # meets the event being set, and this task would outlive its TaskGroup.
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                await self._stop.wait()
        return self._stop.is_set()

    async def _health_loop(self) -> None:
        while True:
            await self.publish_health()
            if await self._sleep(self._settings.health_interval_s):
                return

    async def _connection_loop(self) -> None:
        cap = self._settings.reconnect_max_s
        backoff = Backoff(first_s=min(BACKOFF_BASE_S, cap), max_s=cap)
        while not self._stop.is_set():
            try:
                await self._connect_once()
            except* (aiomqtt.MqttError, TransportError, OSError, ssl.SSLError) as group:
                self.connect_failures += 1
                self.last_error = describe_failure(
                    group.exceptions[0],
                    self._paho_error.text,
                    client_certificate=self._settings.cert_file is not None,  # mqtts only
                )
            else:
                return
            if self.connected.is_set():
                backoff.up()
            self.connected.clear()
            delay = backoff.failed()
            log.warning(
                "uplink: fleet broker %s: %s; retrying in %.1f s",
                self._settings.url, self.last_error, delay,
            )  # fmt: skip
            if await self._sleep(delay):
                return

    async def _client(self, bd_seq: int) -> aiomqtt.Client:
        death = Death(
            board=self.board, tenant=self.tenant, bd_seq=bd_seq, session=self._view.session,
            ts=now_ms(),
        )  # fmt: skip
        will = aiomqtt.Will(
            self.topics.death, MSGPACK_CODEC.encode(death), qos=1, retain=True,
            properties=self._properties,
        )  # fmt: skip
        settings = self._settings
        tls = None
        if self._endpoint.tls:
            tls = await asyncio.to_thread(
                tls_context, settings.ca_file, settings.cert_file, settings.key_file
            )
        password = await asyncio.to_thread(read_password, settings.password_file)
        client = aiomqtt.Client(
            self._endpoint.host,
            self._endpoint.port,
            identifier=self._client_id,
            protocol=aiomqtt.ProtocolVersion.V5,
            clean_start=True,
            will=will,
            username=settings.username,
            password=password,
            keepalive=settings.keepalive,
            timeout=settings.connect_timeout,
            tls_context=tls,
            socket_options=[NODELAY],
            max_inflight_messages=settings.inflight,
            logger=paho_log,
        )
        client.pending_calls_threshold = settings.inflight + 16
        return client

    async def _connect_once(self) -> None:
        bd_seq = await self.outbox.next_bd_seq(BD_SEQ_MODULO)
        self._paho_error.text = None
        paho_log.addHandler(self._paho_error)
        try:
            await self._connected_session(bd_seq)
        finally:
            paho_log.removeHandler(self._paho_error)

    async def _connected_session(self, bd_seq: int) -> None:
        async with await self._client(bd_seq) as client:
            self.bd_seq = bd_seq
            self.connected.set()
            await client.subscribe(self.topics.commands, qos=1)
            session = Session(
                client, self.outbox, self._properties, inflight=self._settings.inflight,
                replay_rate=self._settings.replay_rate, new_rows=self._new_rows,
            )  # fmt: skip
            birth = await self._birth(bd_seq)
            await session.publish_birth(self.topics.birth, lambda _seq: birth)
            await self._record_birth(bd_seq)
            backlog = await self.outbox.last_id()
            log.info("uplink: connected to %s (bdSeq %d)", self._settings.url, bd_seq)
            self._session = session
            try:
                async with asyncio.TaskGroup() as group:
                    group.create_task(session.run(backlog), name="uplink-session")
                    group.create_task(self._commands(client, session), name="uplink-commands")
                    group.create_task(self._until_stop(client, session, bd_seq), name="uplink-stop")
            except* _Stop:
                log.info("uplink: disconnected cleanly from %s", self._settings.url)
            finally:
                self._session = None

    async def _until_stop(self, client: aiomqtt.Client, session: Session, bd_seq: int) -> None:
        await self._stop.wait()
        await session.drain(STOP_DRAIN_S)
        death = Death(
            board=self.board, tenant=self.tenant, bd_seq=bd_seq, session=self._view.session,
            ts=now_ms(), clean=True,
        )  # fmt: skip
        with contextlib.suppress(aiomqtt.MqttError):
            await client.publish(
                self.topics.death, MSGPACK_CODEC.encode(death), qos=1, retain=True,
                properties=self._properties, timeout=STOP_DRAIN_S,
            )  # fmt: skip
        raise _Stop

    # -- fleet commands -------------------------------------------------------------------------

    async def _commands(self, client: aiomqtt.Client, session: Session) -> None:
        async for message in client.messages:
            address = parse(str(message.topic))
            if address is None or address.kind is not FleetKind.COMMAND:
                continue
            payload = message.payload if isinstance(message.payload, bytes) else b""
            content_type = getattr(message.properties, "ContentType", None)
            try:
                data = for_content_type(content_type).decode(payload)
                request = msgspec.convert(data, FleetRequest)
            except (DecodeError, msgspec.ValidationError) as exc:
                log.warning("uplink: fleet command %s ignored: %s", address.name, exc)
                continue
            task = asyncio.get_running_loop().create_task(
                self._command(address.name, request, session), name=f"fleet-{address.name}"
            )
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        raise aiomqtt.MqttError("the fleet broker closed the connection")

    async def _command(self, name: str, request: FleetRequest, session: Session) -> None:
        error: str | None = None
        result: Literal["ok", "refused", "failed"] = "ok"
        if name not in self._settings.commands:
            result, error = "refused", f"command {name!r} is not enabled on this board"
        else:
            try:
                await self._run_command(name, request, session)
            except KeyError as exc:
                result, error = "failed", f"no such device: {exc.args[0]}"
            except (aiomqtt.MqttError, ValueError) as exc:
                result, error = "failed", str(exc)
            except OSError as exc:  # e.g. update's request file cannot be written
                result, error = "failed", f"{exc.strerror}: {exc.filename}"
        log.info("uplink: fleet command %s %s", name, result)
        reply = CommandReply(
            **self._stamp(), request_id=request.request_id, command=name, result=result,
            error=error,
        )  # fmt: skip
        self.submit(self.topics.reply, reply)

    async def _run_command(self, name: str, request: FleetRequest, session: Session) -> None:
        if name == "rebirth":
            birth = await self._birth(self.bd_seq or 0)
            await session.rebirth(self.topics.birth, lambda _seq: birth)
        elif name == "getHealth":
            await self.publish_health()
        elif name == "restartDevice":
            if request.device is None:
                raise ValueError("restartDevice needs a device")
            await self._view.restart_device(request.device)
        elif name == "update":
            # Only a version reaches the root updater (kioskd-update.path), which fetches it
            # from the signed repository; the outcome comes back in birth and health.
            if request.version is None or not updater.VERSION.fullmatch(request.version):
                raise ValueError(f"update needs a package version, not {request.version!r}")
            path = Path(self._config.daemon.runtime_dir) / updater.REQUEST
            await asyncio.to_thread(
                updater.write_request, path, request.version, request.request_id
            )

    async def _record_birth(self, bd_seq: int) -> None:
        """Note the acknowledged birth for the update gate (daemon/update/gate.py)."""
        record = {"version": __version__, "session": self._view.session, "bdSeq": bd_seq}
        path = Path(self._config.daemon.runtime_dir) / BIRTH_FILE
        try:
            await asyncio.to_thread(path.write_text, json.dumps(record), encoding="utf-8")
        except OSError as exc:
            log.warning("uplink: cannot record the birth in %s: %s", path, exc.strerror)

    async def _update_status(self) -> UpdateStatus | None:
        """The updater's last outcome (its world-readable status file), if any."""
        try:
            data = await asyncio.to_thread(self.update_status.read_bytes)
            return msgspec.json.decode(data, type=UpdateStatus)
        except (OSError, msgspec.DecodeError, msgspec.ValidationError):
            return None


#: How a TLS connection the broker dropped before CONNACK shows, when its alert got lost.
_DROPPED = ("eof occurred in violation of protocol", "connection reset", "broken pipe")


def describe_failure(
    exc: BaseException, paho_error: str | None = None, *, client_certificate: bool = False
) -> str:
    """A clear, actionable sentence for a failed fleet connection.

    Args:
        exc: what the connection attempt raised.
        paho_error: paho's last logged error, where a TLS alert from the broker shows.
        client_certificate: the board presented a client certificate over TLS. Under
            TLS 1.3 the broker checks it only after the client's handshake is done; the
            broker's alert races its close, so a refusal may reach the board as a bare
            EOF or reset before CONNACK instead of an alert.

    """
    text = str(exc) or type(exc).__name__
    if isinstance(exc, TransportError):
        return text
    if paho_error is not None:
        text = f"{text}: {paho_error}"
    lowered = text.lower()
    if "certificate verify failed" in lowered:
        return f"the broker's certificate is not signed by ca_file ({text})"
    if any(s in lowered for s in ("certificate required", "unknown ca", "bad certificate")):
        return f"the broker refused this board's client certificate ({text})"
    if "not authorized" in lowered or "bad user name" in lowered:
        return f"the broker refused the credentials ({text})"
    if client_certificate and any(s in lowered for s in _DROPPED):
        return (
            "the broker dropped the TLS connection before CONNACK: most likely it refused "
            f"this board's client certificate (check cert_file against its CA) ({text})"
        )
    return text
