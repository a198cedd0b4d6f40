"""Fixtures: a fleet mosquitto with TLS and client-certificate auth (test CA made per test), fleet spies."""

from __future__ import annotations

import asyncio
import contextlib
import os
import pwd
import shutil
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiomqtt
import msgspec
import pytest
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from daemon.broker import free_port
from daemon.config import Config, UplinkConfig
from daemon.uplink.transport import tls_context
from tests.conftest import Broker, make_config
from tests.uiclient import NODELAY
from tests.uplink.pki import Issued, TestCa

BOARD = "sim-0001"
TENANT = "demo"
OPERATOR = "fleet-ops"
FLEET_ROOT = f"fleet/v1/{TENANT}/{BOARD}"


@dataclass(frozen=True)
class Pki:
    ca: Path
    server: Issued
    board: Issued
    operator: Issued
    rogue: Issued  # the board's name, signed by another CA
    issuer: TestCa  # the fleet CA, for more boards


@pytest.fixture
def pki(tmp_path: Path) -> Pki:
    ca = TestCa(tmp_path / "pki")
    other = TestCa(tmp_path / "rogue-pki", name="somebody else's CA")
    return Pki(
        ca=ca.cert_path,
        server=ca.issue("localhost", server=True),
        board=ca.issue(BOARD),
        operator=ca.issue(OPERATOR),
        rogue=other.issue(BOARD),
        issuer=ca,
    )


def fleet_broker_config(port: int, pki: Pki, acl: Path, data: Path) -> str:
    """mosquitto.conf of a fleet broker: TLS only, a client certificate required, CN as user name.

    Persistent (in ``data``), as a fleet broker is: sessions and retained
    messages survive a restart, so a spy with a persistent session misses nothing.
    """
    return "\n".join(
        [
            # Run as whoever runs the tests, so the files in tmp_path stay readable.
            f"user {pwd.getpwuid(os.getuid()).pw_name}",
            "per_listener_settings false",
            "allow_anonymous false",
            "persistence true",
            f"persistence_location {data}/",
            "max_queued_messages 0",
            "set_tcp_nodelay true",
            "log_dest stderr",
            "log_type error",
            "log_type warning",
            f"listener {port} 127.0.0.1",
            f"cafile {pki.ca}",
            f"certfile {pki.server.cert}",
            f"keyfile {pki.server.key}",
            "require_certificate true",
            "use_identity_as_username true",
            f"acl_file {acl}",
            "",
        ]
    )


#: Boards write their own subtree and read their own commands; operators read and command all.
FLEET_ACL = f"""\
user {OPERATOR}
topic readwrite fleet/#

pattern write fleet/v1/+/%u/#
pattern read fleet/v1/+/%u/cmd/#
"""


@pytest.fixture
def fleet_broker(tmp_path: Path, pki: Pki) -> Iterator[Broker]:
    """A real mosquitto on a free loopback port with TLS and client-certificate auth."""
    if shutil.which("mosquitto") is None:
        pytest.fail("mosquitto is not installed: run ./dev test")
    port = free_port()
    acl = tmp_path / "fleet.acl"
    acl.write_text(FLEET_ACL, encoding="utf-8")
    conf = tmp_path / "fleet-mosquitto.conf"
    conf.write_text(fleet_broker_config(port, pki, acl, tmp_path), encoding="utf-8")
    broker = Broker(port, conf)
    broker.start()
    yield broker
    broker.stop()


def uplink_config(
    local_port: int, fleet_port: int, tmp_path: Path, pki: Pki, **overrides: Any
) -> Config:
    """The sim config on the local test broker, uplink enabled towards the fleet test broker."""
    config = make_config(local_port, tmp_path)
    settings: dict[str, Any] = {
        "enabled": True,
        "url": f"mqtts://127.0.0.1:{fleet_port}",
        "ca_file": str(pki.ca),
        "cert_file": str(pki.board.cert),
        "key_file": str(pki.board.key),
        "health_interval_s": 0.5,
        "reconnect_max_s": 0.5,
        "connect_timeout": 3.0,
    } | overrides
    return config.replace(uplink=msgspec.convert(settings, UplinkConfig))


@dataclass
class FleetMessage:
    topic: str
    data: dict[str, Any]
    retain: bool

    @property
    def kind(self) -> str:
        return self.topic.split("/")[4]


@dataclass
class FleetSpy:
    messages: list[FleetMessage] = field(default_factory=list)
    raw: list[bytes] = field(default_factory=list)
    changed: asyncio.Event = field(default_factory=asyncio.Event)
    client: aiomqtt.Client | None = None

    def of(self, kind: str) -> list[FleetMessage]:
        return [m for m in self.messages if m.kind == kind]

    async def wait_for(self, predicate: Any, timeout: float = 10.0) -> None:
        async with asyncio.timeout(timeout):
            while not predicate():
                self.changed.clear()
                await self.changed.wait()

    async def command(self, name: str, payload: dict[str, Any]) -> None:
        assert self.client is not None
        await self.client.publish(
            f"{FLEET_ROOT}/cmd/{name}", msgspec.msgpack.encode(payload), qos=1
        )


def operator_client(
    port: int, pki: Pki, client_id: str, *, persistent: bool = False
) -> aiomqtt.Client:
    properties = None
    if persistent:
        properties = Properties(PacketTypes.CONNECT)
        properties.SessionExpiryInterval = 600
    return aiomqtt.Client(
        "127.0.0.1",
        port,
        identifier=client_id,
        protocol=aiomqtt.ProtocolVersion.V5,
        clean_start=not persistent,
        properties=properties,
        tls_context=tls_context(str(pki.ca), str(pki.operator.cert), str(pki.operator.key)),
        socket_options=[NODELAY],
    )


@contextlib.asynccontextmanager
async def fleet_spy(
    port: int, pki: Pki, client_id: str = "spy", *, persistent: bool = False
) -> AsyncIterator[FleetSpy]:
    """Record (decoded) every fleet message, retained ones included, as the operator.

    ``persistent``: an MQTT 5 session that outlives the connection and a broker
    restart, reconnected every 50 ms while the broker is down, so the broker
    queues what arrives meanwhile.
    """
    spy = FleetSpy()
    connected = asyncio.Event()

    async def pump(client: aiomqtt.Client) -> None:
        async for message in client.messages:
            payload = message.payload if isinstance(message.payload, bytes) else b""
            spy.raw.append(payload)
            spy.messages.append(
                FleetMessage(str(message.topic), msgspec.msgpack.decode(payload), message.retain)
            )
            spy.changed.set()

    async def serve() -> None:
        while True:
            try:
                client = operator_client(port, pki, client_id, persistent=persistent)
                async with client:
                    spy.client = client
                    await client.subscribe("fleet/#", qos=1)
                    connected.set()
                    await pump(client)
            except aiomqtt.MqttError:
                if not persistent:
                    raise
            spy.client = None
            await asyncio.sleep(0.05)

    task = asyncio.create_task(serve(), name=f"fleet-spy-{client_id}")
    try:
        async with asyncio.timeout(10):
            await connected.wait()
        yield spy
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, aiomqtt.MqttError):
            await task
