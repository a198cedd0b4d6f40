"""The uplink against two real mosquittos: the local one and a fleet broker with mutual TLS."""

from __future__ import annotations

import asyncio
import ssl
import time
from pathlib import Path

import pytest

from daemon.uplink.client import Uplink, describe_failure
from daemon.uplink.outbox import Outbox, Row
from daemon.uplink.schema import Stamped
from tests.conftest import Broker, run_daemon
from tests.uiclient import connect
from tests.uplink.conftest import (
    BOARD,
    FLEET_ROOT,
    TENANT,
    FleetMessage,
    Pki,
    fleet_spy,
    uplink_config,
)


def seq_gaps(messages: list[FleetMessage]) -> list[tuple[int, int]]:
    """(previous, next) seq pairs that are not consecutive, per connection (a birth restarts at 0)."""
    gaps = []
    previous: int | None = None
    for m in messages:
        if m.kind == "death":
            continue
        seq = m.data["seq"]
        if m.kind == "birth":
            assert seq == 0
        elif previous is not None and seq != (previous + 1) % 256:
            gaps.append((previous, seq))
        previous = seq
    return gaps


def dedupe(messages: list[FleetMessage]) -> list[FleetMessage]:
    seen: set[int] = set()
    unique = []
    for m in messages:
        msg_id = m.data.get("msgId")
        if msg_id is not None and m.kind != "birth":
            if msg_id in seen:
                continue
            seen.add(msg_id)
        unique.append(m)
    return unique


async def test_birth_then_health_with_seq(
    broker: Broker, fleet_broker: Broker, pki: Pki, tmp_path: Path
) -> None:
    config = uplink_config(broker.port, fleet_broker.port, tmp_path, pki, health_interval_s=0.2)
    async with fleet_spy(fleet_broker.port, pki) as spy, run_daemon(config) as daemon:
        await spy.wait_for(lambda: len(spy.of("health")) >= 3)
        births = spy.of("birth")
        assert len(births) == 1
        birth = births[0].data
        assert births[0].topic == f"{FLEET_ROOT}/birth"
        assert birth["board"] == BOARD
        assert birth["tenant"] == TENANT
        assert birth["seq"] == 0
        assert birth["session"] == daemon.app.session
        assert {d["id"] for d in birth["devices"]} >= {"printer", "coinAcceptor", "cardReader"}
        assert birth["certNotAfter"] > 0
        health = spy.of("health")[-1].data
        assert health["devices"]["printer"]["state"] == "online"
        assert health["devices"]["printer"]["facts"]["paper"] == "full"
        assert health["system"]["memTotal"] > 0
        assert 25 < health["certDaysLeft"] < 31
        assert health["replay"] is False
        assert seq_gaps(spy.messages) == []
    # A clean stop publishes the death with the birth's bdSeq.
    await spy_death(fleet_broker, pki, birth["bdSeq"])


async def spy_death(fleet_broker: Broker, pki: Pki, bd_seq: int) -> None:
    async with fleet_spy(fleet_broker.port, pki, "late") as late:
        await late.wait_for(lambda: late.of("death") and late.of("birth"))
        death = late.of("death")[0]
        assert death.retain
        assert death.data["bdSeq"] == bd_seq
        assert death.data["clean"] is True


def record_submitted(uplink: Uplink) -> list[int]:
    """Instrument ``uplink.submit`` to remember the id of every message written to the outbox."""
    ids: list[int] = []
    submit = uplink.submit

    def recording(topic: str, message: Stamped) -> None:
        ids.append(message.msg_id)
        submit(topic, message)

    uplink.submit = recording  # type: ignore[method-assign]
    return ids


def exact_redeliveries_removed(messages: list[FleetMessage]) -> list[FleetMessage]:
    """Drop QoS 1 redeliveries by the broker; the board's replays stay.

    A redelivery repeats msgId and seq of a message since the same (live) birth.
    A replay on the next connection may repeat both too: seq restarts at each
    birth, so a message sent as seq 1 whose PUBACK the board had not read when
    the broker went down is replayed as seq 1 again.  The broker resends what it
    had in flight to the spy's session before what it queued later, so its
    redeliveries come before the next birth.
    """
    seen: set[tuple[int, int]] = set()
    kept = []
    for m in messages:
        if m.kind == "birth" and not m.retain:
            seen = set()
        elif m.kind != "death":
            key = (m.data["msgId"], m.data["seq"])
            if key in seen:
                continue
            seen.add(key)
        kept.append(m)
    return kept


def per_connection(stream: list[FleetMessage]) -> list[list[FleetMessage]]:
    """The stream cut at every live (not retained) birth."""
    connections: list[list[FleetMessage]] = [[]]
    for m in stream:
        if m.kind == "birth" and not m.retain:
            connections.append([])
        connections[-1].append(m)
    return connections


async def outbox_empty(uplink: Uplink, timeout: float = 20.0) -> None:
    async with asyncio.timeout(timeout):
        while (await uplink.outbox.stats()).messages:
            await asyncio.sleep(0.05)


async def test_broker_down_then_back_delivers_everything_in_order(
    broker: Broker, fleet_broker: Broker, pki: Pki, tmp_path: Path
) -> None:
    config = uplink_config(broker.port, fleet_broker.port, tmp_path, pki, health_interval_s=0.05)
    async with fleet_spy(fleet_broker.port, pki, persistent=True) as spy:
        async with run_daemon(config) as daemon, connect(broker.port, BOARD, "ui1") as ui:
            uplink = daemon.app.uplink
            assert uplink is not None
            submitted = record_submitted(uplink)
            await spy.wait_for(lambda: len(spy.of("health")) >= 3)
            fleet_broker.stop()
            await asyncio.sleep(0.3)
            await ui.sim("printer", "paper", {"level": "low"})  # an operational event while offline
            await asyncio.sleep(1.2)
            queued = await uplink.outbox.stats()
            assert queued.messages >= 10, queued
            offline_ids = set(submitted)
            reconnected_at = time.time() * 1000
            fleet_broker.start()
            await uplink.connected.wait()
            await outbox_empty(uplink)
            # Health goes on being submitted until the daemon stops; what is still in the
            # outbox then stays for the next run, so only what came before ``last`` must arrive.
            delivered_before = list(submitted)
            last = delivered_before[-1]
            await spy.wait_for(lambda: any(m.data.get("msgId") == last for m in spy.messages))
        stream = exact_redeliveries_removed(spy.messages)
        received = [m.data["msgId"] for m in dedupe(stream) if m.kind not in ("birth", "death")]
        assert set(delivered_before) <= set(received), "a message was lost"
        assert len(spy.of("birth")) >= 2
        # The spy re-subscribes after the broker restart and so gets the retained birth
        # again, at any point of the stream: retained copies are state, not the stream.
        assert seq_gaps([m for m in stream if not m.retain]) == []
        replayed = [m for m in stream if m.data.get("replay")]
        assert replayed, "the backlog is marked replay"
        for connection in per_connection(stream):
            replayed_ids = [m.data["msgId"] for m in connection if m.data.get("replay")]
            assert replayed_ids == sorted(replayed_ids), "replayed in order"
        queued_offline = [m for m in replayed if m.data["msgId"] in offline_ids]
        assert len(queued_offline) >= 10
        # Sent after the broker came back, yet stamped with when they were created.
        assert all(m.data["ts"] < reconnected_at for m in queued_offline), "original ts kept"
        paper = [m for m in dedupe(stream) if m.topic == f"{FLEET_ROOT}/event/paperLow"]
        assert len(paper) == 1
        assert paper[0].data["replay"] is True
        assert paper[0].data["device"] == "printer"
        assert paper[0].data["facts"]["paper"] == "low"
        assert paper[0].data["msgId"] in offline_ids


async def test_daemon_restarted_while_offline_loses_nothing(
    broker: Broker, fleet_broker: Broker, pki: Pki, tmp_path: Path
) -> None:
    config = uplink_config(broker.port, fleet_broker.port, tmp_path, pki, health_interval_s=0.05)
    fleet_broker.stop()
    async with run_daemon(config) as daemon:
        assert daemon.app.uplink is not None
        first_run = record_submitted(daemon.app.uplink)
        await asyncio.sleep(1.0)
    assert len(first_run) >= 10
    fleet_broker.start()
    async with fleet_spy(fleet_broker.port, pki) as spy, run_daemon(config) as daemon:
        assert daemon.app.uplink is not None
        await outbox_empty(daemon.app.uplink)
        await spy.wait_for(lambda: first_run[-1] in {m.data.get("msgId") for m in spy.messages})
    by_id = {m.data["msgId"]: m for m in spy.messages if "msgId" in m.data}
    assert set(first_run) <= set(by_id)
    assert all(by_id[i].data["replay"] is True for i in first_run)
    order = [m.data["msgId"] for m in spy.messages if m.data.get("msgId") in set(first_run)]
    assert order == sorted(first_run)


async def test_outbox_bound_drops_oldest_and_counts(
    broker: Broker,
    fleet_broker: Broker,
    pki: Pki,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    config = uplink_config(
        broker.port,
        fleet_broker.port,
        tmp_path,
        pki,
        health_interval_s=0.05,
        outbox_max_bytes=65_536,
    )
    written: list[int] = []  # every row the board ever wrote, from its first
    append = Outbox.append

    def recording(outbox: Outbox, row: Row) -> asyncio.Future[None]:
        written.append(row.id)
        return append(outbox, row)

    monkeypatch.setattr(Outbox, "append", recording)
    async with fleet_spy(fleet_broker.port, pki, persistent=True) as spy:
        fleet_broker.stop()
        async with run_daemon(config) as daemon:
            uplink = daemon.app.uplink
            assert uplink is not None
            async with asyncio.timeout(20):
                while (stats := await uplink.outbox.stats()).dropped < 5:
                    await asyncio.sleep(0.1)
            assert stats.bytes <= 65_536
            fleet_broker.start()
            await uplink.connected.wait()
            await spy.wait_for(
                lambda: any(
                    m.kind == "health" and not m.data["replay"] and m.data["outbox"]["dropped"] >= 5
                    for m in spy.messages
                )
            )
    # The live lane overtakes the replay lane, so rows the daemon had not sent yet when
    # it stopped stay in the outbox for its next run: they are not lost.
    left = Outbox(Path(config.daemon.state_dir) / "uplink-outbox.sqlite3", max_bytes=65_536,
                  max_age_s=3600)  # fmt: skip
    await left.open()
    kept = {row.id for row in await left.batch(0, None, len(written))}
    final = await left.stats()
    await left.close()
    received = {m.data["msgId"] for m in spy.messages if "msgId" in m.data}
    lost = [i for i in written if i not in received and i not in kept]
    assert lost, "the oldest messages were dropped"
    assert lost == written[: len(lost)], "only the oldest"
    # A row dropped by the bound after it was read for sending still arrives: not counted.
    assert final.dropped == len(lost)


async def test_wrong_client_certificate_is_reported_and_retried_with_backoff(
    broker: Broker, fleet_broker: Broker, pki: Pki, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    config = uplink_config(
        broker.port,
        fleet_broker.port,
        tmp_path,
        pki,
        cert_file=str(pki.rogue.cert),
        key_file=str(pki.rogue.key),
        reconnect_max_s=1.0,
        connect_timeout=0.5,
    )
    async with run_daemon(config) as daemon:
        uplink = daemon.app.uplink
        assert uplink is not None
        await asyncio.sleep(4.0)
        assert not uplink.connected.is_set()
        # Each try waits up to 0.5 s for a CONNACK, then full jitter capped at 1 s: a few
        # tries in 4 s, never a tight loop.
        assert 2 <= uplink.connect_failures <= 12, uplink.connect_failures
        assert uplink.last_error is not None
        assert "certificate" in uplink.last_error, uplink.last_error
        assert (await uplink.outbox.stats()).messages >= 1, "health is kept meanwhile"
    assert any("refused this board's client certificate" in r.getMessage() for r in caplog.records)


def test_a_refused_certificate_is_named_however_the_refusal_arrives() -> None:
    """TLS 1.3 checks the client certificate after the client's handshake: the broker's
    alert races its close, so the board sees the alert, a bare EOF or a reset."""
    timeout = TimeoutError("Operation timed out")
    alert = "failed to receive on socket: [SSL: TLSV1_ALERT_UNKNOWN_CA] tlsv1 alert unknown ca"
    eof = "failed to receive on socket: EOF occurred in violation of protocol (_ssl.c:2427)"
    reset = ConnectionResetError(104, "Connection reset by peer")
    assert "refused this board's client certificate" in describe_failure(timeout, alert)
    for exc, paho in ((timeout, eof), (reset, None)):
        text = describe_failure(exc, paho, client_certificate=True)
        assert text.startswith("the broker dropped the TLS connection before CONNACK"), text
        assert "client certificate" in text
        # Without a client certificate the drop has another cause: said as it is.
        assert "certificate" not in describe_failure(exc, paho, client_certificate=False)
    unknown_server = ssl.SSLCertVerificationError("certificate verify failed")
    assert describe_failure(unknown_server).startswith("the broker's certificate is not signed")
