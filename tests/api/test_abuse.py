"""Hostile requests from one client never cost another client its answers.

Over a real mosquitto: reply topics the broker would refuse (U+0000, control
characters, longer than the limit) are never published, so the daemon keeps its
connection and every concurrent request of another client is answered.
"""

from __future__ import annotations

import asyncio

import msgspec

from daemon.api.requests import MAX_DESCRIPTION
from daemon.api.topics import MAX_REPLY_TOPIC_BYTES
from tests.conftest import Broker, RunningDaemon, make_config, run_daemon
from tests.uiclient import JSON, MSGPACK, UiClient


def _hostile_reply_topics(ui: UiClient) -> list[str]:
    base = f"{ui.root}/reply/{ui.client_id}"
    return [
        f"{base}/a\x00b",
        f"{base}/\x01",
        f"{base}/\x7f",
        f"{base}/\u0085",
        f"{base}/" + "x" * (MAX_REPLY_TOPIC_BYTES + 1),
        f"{base}/" + "y" * 70_000,
    ]


async def test_bad_reply_topics_never_disconnect_the_daemon(
    broker: Broker, daemon: RunningDaemon, ui: UiClient, ui_factory
) -> None:
    async with ui_factory("ui2") as victim:
        assert daemon.app.link.connects == 1
        calls = [victim.daemon("getStatus", timeout=15) for _ in range(100)]
        attacks = [
            ui.send(
                f"{ui.root}/cmd/getStatus",
                {"requestId": f"a{i}", "replyTo": topic},
                content_type=codec,
            )
            for i, topic in enumerate(_hostile_reply_topics(ui))
            for codec in (JSON, MSGPACK)
        ]
        results = await asyncio.gather(*calls, *attacks)
        completions = results[: len(calls)]
        assert [c["completionCode"] for c in completions] == ["success"] * 100
        # After the attacks: still the first connection, still serving.
        assert (await ui.daemon("getStatus"))["completionCode"] == "success"
        assert daemon.app.link.connects == 1
        assert daemon.app.link.dropped == 0
        assert daemon.app.router.dropped >= len(attacks)


async def test_a_reply_topic_at_the_limit_is_answered(ui: UiClient) -> None:
    head = f"{ui.root}/reply/{ui.client_id}/"
    topic = head + "z" * (MAX_REPLY_TOPIC_BYTES - len(head.encode()))
    async with ui.subscription(topic) as replies:
        await ui.send(f"{ui.root}/cmd/getStatus", {"requestId": "edge", "replyTo": topic})
        reply = (await asyncio.wait_for(replies.get(), 5)).payload
    assert reply["requestId"] == "edge"
    assert reply["completionCode"] == "success"


async def test_deeply_nested_payloads_get_invalid_data(ui: UiClient) -> None:
    """msgpack 200 000 deep and JSON 1 000 deep: one invalidData each, the daemon serves on."""
    cases = [
        (b"\x91" * 200_000 + b"\x90", MSGPACK),
        (b"[" * 1000 + b"]" * 1000, JSON),
        (b'{"requestId":"d","a":' + b"[" * 40 + b"]" * 40 + b"}", JSON),
    ]
    for raw, content_type in cases:
        correlation = f"deep{len(raw)}".encode()
        queue = ui._reply_queue(correlation)
        await ui.send(
            f"{ui.root}/cmd/getStatus",
            None,
            raw=raw,
            content_type=content_type,
            response_topic=ui.reply_topic(),
            correlation=correlation,
        )
        reply = (await asyncio.wait_for(queue.get(), 5)).payload
        assert reply["completionCode"] == "invalidData"
        assert "deeper than" in reply["errorDescription"]
    assert (await ui.daemon("getStatus"))["completionCode"] == "success"


async def test_retained_requests_are_never_run(broker: Broker, tmp_path, ui_factory) -> None:
    """A request published retained would run at every daemon start: it is ignored."""
    board = "sim-0001"
    async with ui_factory("ui1") as ui:
        async with ui.subscription(ui.reply_topic("retained")) as replies:
            await ui.client.publish(
                f"kiosk/v1/{board}/cmd/getStatus",
                msgspec.msgpack.encode({"requestId": "r", "replyTo": ui.reply_topic("retained")}),
                qos=1,
                retain=True,
            )
            async with run_daemon(make_config(broker.port, tmp_path)) as daemon:
                assert (await ui.daemon("getStatus"))["completionCode"] == "success"
                assert replies.empty()
                assert daemon.app.router.dropped == 1


async def test_errors_never_echo_more_than_a_short_prefix_of_client_input(
    daemon: RunningDaemon, ui: UiClient
) -> None:
    huge = "x" * 200_000
    end = await ui.device("coinAcceptor", "depositEnd", {"transactionId": huge})
    slip = await ui.device("printer", "printSlip", {"template": "appointment", "fields": {huge: 1}})
    long_id = await ui.call(f"{ui.root}/cmd/getStatus", request_id=huge)
    for reply in (end, slip, long_id):
        assert reply["completionCode"] == "invalidData"
        assert len(reply["errorDescription"]) <= MAX_DESCRIPTION
    assert long_id["requestId"] is None
    # A side-effect command that ran and failed is remembered with the bounded text.
    unknown = "0" * 64
    ran = await ui.device("coinAcceptor", "depositEnd", {"transactionId": unknown})
    assert unknown in ran["errorDescription"]
    record = daemon.app.store.lookup(ui.client_id, ran["requestId"])
    assert record is not None
    assert record.completion is not None
    assert unknown in record.completion["errorDescription"]
    assert len(record.completion["errorDescription"]) <= MAX_DESCRIPTION
