"""Request lifecycle over a real broker: codecs, reply topics, errors, queues, deadlines, cancel."""

from __future__ import annotations

import asyncio
import subprocess

import msgspec

from tests.conftest import Broker, RunningDaemon
from tests.uiclient import JSON, MSGPACK, UiClient


async def test_get_status_with_mosquitto_rr_in_json(broker: Broker, daemon: RunningDaemon) -> None:
    """The acceptance command of the contract, as a UI developer types it."""
    board = daemon.board
    out = await asyncio.to_thread(
        subprocess.run,
        [
            "mosquitto_rr",
            "-V",
            "5",
            "-p",
            str(broker.port),
            "-i",
            "ui1",
            "-t",
            f"kiosk/v1/{board}/cmd/getStatus",
            "-e",
            f"kiosk/v1/{board}/reply/ui1/1",
            "-D",
            "PUBLISH",
            "content-type",
            "application/json",
            "-m",
            '{"requestId":"r1"}',
            "-W",
            "5",
        ],
        capture_output=True,
        check=True,
        timeout=10,
    )
    reply = msgspec.json.decode(out.stdout)
    assert reply["type"] == "completion"
    assert reply["requestId"] == "r1"
    assert reply["completionCode"] == "success"
    assert reply["result"]["state"] == "ready"
    assert reply["result"]["api"] == 1


async def test_msgpack_by_default_and_content_type_on_replies(ui: UiClient) -> None:
    req = await ui.start(f"{ui.root}/cmd/getStatus")
    received = await asyncio.wait_for(req.replies.get(), 5)
    assert received.content_type == MSGPACK
    assert received.correlation is not None
    assert received.payload["completionCode"] == "success"
    json_reply = await ui.daemon("getStatus", content_type=JSON)
    assert json_reply["result"]["session"] == received.payload["result"]["session"]


async def test_device_command_acks_then_completes(ui: UiClient) -> None:
    req = await ui.start(f"{ui.root}/dev/scanner/cmd/read", {"timeoutMs": 5000})
    ack = await req.next()
    assert ack == {"type": "ack", "requestId": req.request_id}
    await ui.sim("scanner", "scan", {"text": "Hồ sơ HS-2026-000123", "symbology": "qr"})
    done = await req.completion()
    assert done["completionCode"] == "success"
    assert done["result"] == {"text": "Hồ sơ HS-2026-000123", "symbology": "qr"}


async def test_malformed_requests_get_invalid_data_and_daemon_keeps_serving(ui: UiClient) -> None:
    topic = f"{ui.root}/dev/scanner/cmd/read"
    cases: list[tuple[bytes, str]] = [
        (b"\xc1\xc1garbage", MSGPACK),
        (b"{not json", JSON),
        (msgspec.msgpack.encode([1, 2, 3]), MSGPACK),
        (msgspec.msgpack.encode({"timeoutMs": 100}), MSGPACK),
        (msgspec.msgpack.encode({"requestId": 7}), MSGPACK),
        (msgspec.msgpack.encode({"requestId": "r", "timeoutMs": "soon"}), MSGPACK),
        (msgspec.msgpack.encode({"requestId": "r", "timeoutMs": -5}), MSGPACK),
        (msgspec.msgpack.encode({"requestId": "big", "pad": "x" * 300_000}), MSGPACK),
    ]
    for n, (raw, content_type) in enumerate(cases):
        correlation = f"bad{n}".encode()
        await ui.send(
            topic,
            None,
            raw=raw,
            content_type=content_type,
            response_topic=ui.reply_topic(),
            correlation=correlation,
        )
        reply = (await asyncio.wait_for(ui._reply_queue(correlation).get(), 5)).payload
        assert reply["type"] == "completion", (n, reply)
        assert reply["completionCode"] == "invalidData", (n, reply)
        assert reply["errorDescription"], n
    assert (await ui.device("nosuch", "read"))["completionCode"] == "invalidData"
    assert (await ui.device("scanner", "explode"))["completionCode"] == "unsupportedCommand"
    assert (await ui.daemon("reboot"))["completionCode"] == "unsupportedCommand"
    assert (await ui.device("scanner", "setMode", {"continuous": "yes"}))[
        "completionCode"
    ] == "invalidData"
    assert (await ui.daemon("getStatus"))["completionCode"] == "success"


async def test_reply_topic_outside_own_subtree_is_refused(
    ui: UiClient, daemon: RunningDaemon
) -> None:
    async with ui.subscription(f"{ui.root}/#") as seen:
        await ui.send(
            f"{ui.root}/cmd/getStatus",
            {"requestId": "x"},
            response_topic="elsewhere/topic",
            correlation=b"x",
        )
        await ui.send(
            f"{ui.root}/cmd/getStatus",
            {"requestId": "y"},
            response_topic=f"{ui.root}/reply/+/x",
            correlation=b"y",
        )
        await ui.send(f"{ui.root}/cmd/getStatus", {"requestId": "z"})
        await asyncio.sleep(0.3)
    replies = [m for m in _drain(seen) if "/reply/" in m.topic]
    assert replies == []
    assert daemon.app.router.dropped == 3


async def test_reply_to_in_payload_for_mqtt311_clients(ui: UiClient) -> None:
    topic = f"{ui.root}/reply/{ui.client_id}/legacy"
    async with ui.subscription(topic) as seen:
        await ui.send(
            f"{ui.root}/cmd/getStatus", {"requestId": "old", "replyTo": topic}, content_type=JSON
        )
        reply = await asyncio.wait_for(seen.get(), 5)
    assert reply.payload["completionCode"] == "success"
    assert reply.content_type == JSON


async def test_deadline_while_queued_completes_timeout_without_running(ui: UiClient) -> None:
    first = await ui.start(f"{ui.root}/dev/scanner/cmd/read", {"timeoutMs": 3000})
    assert (await first.next())["type"] == "ack"
    second = await ui.start(f"{ui.root}/dev/scanner/cmd/read", {"timeoutMs": 200})
    assert (await second.next())["type"] == "ack"
    loop = asyncio.get_running_loop()
    started = loop.time()
    done = await second.completion(timeout=2)
    assert done["completionCode"] == "timeOut"
    assert "queued" in done["errorDescription"]
    assert loop.time() - started < 1.0, "a queued request must expire at its deadline"
    await ui.sim("scanner", "scan", {"text": "A1"})
    assert (await first.completion())["result"]["text"] == "A1"


async def test_running_long_command_stops_at_deadline(ui: UiClient) -> None:
    done = await ui.device("scanner", "read", {"timeoutMs": 150})
    assert done["completionCode"] == "timeOut"


async def test_message_expiry_shortens_the_deadline(ui: UiClient) -> None:
    loop = asyncio.get_running_loop()
    started = loop.time()
    done = await ui.device("scanner", "read", {"timeoutMs": 60_000}, expiry=1)
    assert done["completionCode"] == "timeOut"
    assert loop.time() - started < 3


async def test_cancel_running_and_queued_reads(ui: UiClient) -> None:
    running = await ui.start(f"{ui.root}/dev/scanner/cmd/read", {"timeoutMs": 10_000})
    queued = await ui.start(f"{ui.root}/dev/scanner/cmd/read", {"timeoutMs": 10_000})
    assert (await running.next())["type"] == "ack"
    assert (await queued.next())["type"] == "ack"
    result = await ui.daemon("cancel", {"requestIds": [running.request_id]})
    assert result["result"]["canceled"] == [running.request_id]
    assert (await running.completion())["completionCode"] == "canceled"
    result = await ui.daemon("cancel")
    assert result["result"]["canceled"] == [queued.request_id]
    assert (await queued.completion())["completionCode"] == "canceled"


async def test_cancel_touches_only_the_requesters_commands(ui: UiClient, ui_factory) -> None:
    mine = await ui.start(f"{ui.root}/dev/scanner/cmd/read", {"timeoutMs": 10_000})
    assert (await mine.next())["type"] == "ack"
    async with ui_factory("ui2") as other:
        result = await other.daemon("cancel")
        assert result["result"]["canceled"] == []
    await ui.sim("scanner", "scan", {"text": "still mine"})
    assert (await mine.completion())["completionCode"] == "success"


async def test_sim_action_without_reply_topic_still_acts(ui: UiClient) -> None:
    req = await ui.start(f"{ui.root}/dev/scanner/cmd/read", {"timeoutMs": 5000})
    await req.next()
    await ui.send(f"{ui.root}/sim/scanner/scan", {"text": "fire and forget"}, content_type=JSON)
    assert (await req.completion())["result"]["text"] == "fire and forget"


async def test_sim_action_on_unknown_device_is_unsupported(ui: UiClient) -> None:
    reply = await ui.call(f"{ui.root}/sim/nosuch/scan", {"text": "x"})
    assert reply["completionCode"] == "unsupportedCommand"
    reply = await ui.call(f"{ui.root}/sim/scanner/fault", {"kind": "meltdown"})
    assert reply["completionCode"] == "invalidData"


def _drain(queue: asyncio.Queue) -> list:
    out = []
    while not queue.empty():
        out.append(queue.get_nowait())
    return out


async def test_running_read_ends_when_the_scanner_goes_offline(ui: UiClient) -> None:
    req = await ui.start(f"{ui.root}/dev/scanner/cmd/read", {"timeoutMs": 30_000})
    assert (await req.next())["type"] == "ack"
    await ui.sim("scanner", "fault", {"kind": "disconnect"})
    done = await req.completion(timeout=3)
    assert done["completionCode"] == "deviceNotReady"
    await ui.sim("scanner", "fault", {"kind": "clear"})


async def test_a_side_effect_refused_before_it_ran_runs_when_sent_again(ui: UiClient) -> None:
    """The readiness check (Device.check_ready) refuses before the command runs: not replayed.

    A command that ran is answered from the idempotency store when repeated (the
    same completion, not run again); one the device refused before running it
    runs when the requester sends it again with the same requestId.
    """
    await ui.sim("printer", "cover", {"open": True})
    refused = await ui.device("printer", "cut", request_id="cut-1")
    assert refused["completionCode"] == "userError"
    assert refused["errorDescription"] == "the printer cover is open"
    await ui.sim("printer", "cover", {"open": False})
    ran = await ui.device("printer", "cut", request_id="cut-1")
    assert ran["completionCode"] == "success"
    repeated = await ui.device("printer", "cut", request_id="cut-1")
    assert repeated == ran
