"""Issue 16's attacks, played against a provisioned board: every one fails.

The image is installed by ``kioskd provision --simulate`` with two UI users
(``ui``, ``ui2``) and the technician; its mosquitto and a daemon run from it
with exactly the files provisioning wrote.  ``ui`` is the intruder, ``ui2`` the
victim.  What each attack did before this suite is in its docstring.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import re
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiomqtt
import msgspec
import pytest
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from tests.provisioning import support
from tests.uiclient import UiClient, connect

BOARD = "hcm-q6-0016"
ROOT = f"kiosk/v1/{BOARD}"
#: What the victim's requests carry that nobody else may see.
ACCESS_KEY = {
    "documentNumber": "079099000123",
    "dateOfBirth": "1990-01-15",
    "dateOfExpiry": "2030-01-15",
}
NAME = "Nguyễn Văn Thử"
SLIP = {
    "template": "appointment",
    "fields": {
        "citizenName": NAME,
        "dossierCode": "HS-16",
        "office": "UBND Phường 6",
        "procedure": "Đăng ký thường trú",
        "qr": "HS-16",
        "submittedAt": "2026-12-05 09:00",
        "appointmentDate": "2026-12-12",
    },
}


@dataclass
class Board:
    root: Path
    port: int
    log: Path

    def secret(self, user: str) -> str:
        return support.secret(self.root, user)

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")


async def _wait_ready(board: Board) -> None:
    async with asyncio.timeout(30):
        while True:
            try:
                async with connect(
                    board.port,
                    BOARD,
                    "technician",
                    "127.0.0.1",
                    "technician",
                    board.secret("technician"),
                ) as tech:
                    if (await tech.daemon("getStatus", timeout=3))["completionCode"] == "success":
                        return
            except (aiomqtt.MqttError, TimeoutError):
                pass
            await asyncio.sleep(0.3)


@pytest.fixture(scope="module")
def board(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Board]:
    image = support.provisioned(
        tmp_path_factory.mktemp("image"),
        BOARD,
        *("--ui", "ui", "--ui", "ui2", "--kioskd-bin", support.KIOSKD_BIN),
    )
    root, port = image.root, image.port
    state = tmp_path_factory.mktemp("state")
    log = state / "run.log"
    with support.installed(
        root,
        "mosquitto -c /etc/mosquitto/conf.d/kioskd.conf &",
        f"exec {support.KIOSKD_BIN} run --config /etc/kioskd/kioskd.toml --state-dir {state}",
        log=log,
    ) as proc:
        running = Board(root, port, log)
        asyncio.run(_wait_ready(running))
        assert proc.poll() is None, log.read_text()
        yield running


#: Request ids of one user must not repeat across connections (idempotency keys).
SESSIONS = itertools.count(1)


@contextlib.asynccontextmanager
async def user(board: Board, name: str) -> AsyncIterator[UiClient]:
    """A well-behaved client of broker user ``name`` (client id = user name)."""
    async with connect(board.port, BOARD, name, "127.0.0.1", name, board.secret(name)) as client:
        client._ids = itertools.count(1000 * next(SESSIONS))
        yield client


@contextlib.asynccontextmanager
async def intruder(
    board: Board, client_id: str, name: str = "ui"
) -> AsyncIterator[tuple[aiomqtt.Client, list[aiomqtt.Message]]]:
    """User ``name`` connecting with whatever ``client_id`` it likes; records what it receives."""
    seen: list[aiomqtt.Message] = []
    async with aiomqtt.Client(
        "127.0.0.1",
        board.port,
        identifier=client_id,
        username=name,
        password=board.secret(name),
        protocol=aiomqtt.ProtocolVersion.V5,
        timeout=5,
    ) as client:

        async def pump() -> None:
            async for message in client.messages:
                seen.append(message)  # noqa: PERF401 - recorded while the client runs

        task = asyncio.create_task(pump())
        try:
            yield client, seen
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, aiomqtt.MqttError):
                await task


def props(response_topic: str, correlation: bytes = b"x") -> Properties:
    p = Properties(PacketTypes.PUBLISH)
    p.ResponseTopic = response_topic
    p.CorrelationData = correlation
    p.ContentType = "application/msgpack"
    return p


async def publish(
    client: aiomqtt.Client, topic: str, body: dict[str, Any], reply: str, **kw: Any
) -> None:
    """Publish a request; an ACL refusal is silent on the wire (mosquitto drops it)."""
    await client.publish(topic, msgspec.msgpack.encode(body), qos=1, properties=props(reply), **kw)


def payloads(seen: list[aiomqtt.Message]) -> list[bytes]:
    return [m.payload for m in seen if isinstance(m.payload, bytes)]


async def test_a_client_id_naming_the_victims_subtree_reads_nothing(board: Board) -> None:
    """Before: client id ``ui2/r`` made the ACL's ``reply/%c/#`` grant ``reply/ui2/r/#``."""
    async with user(board, "ui2") as victim, intruder(board, "ui2/r") as (spy, seen):
        for topic in (f"{ROOT}/reply/ui2/r/#", f"{ROOT}/reply/ui2/#", "kiosk/v1/+/reply/#"):
            await spy.subscribe(topic, qos=1)
        assert (await victim.daemon("resync"))["completionCode"] == "success"
        assert (await victim.daemon("getStatus"))["completionCode"] == "success"
        await asyncio.sleep(0.3)
    assert seen == []


async def test_another_users_client_id_does_not_kick_the_victim(board: Board) -> None:
    """Before: user ``ui`` connecting with ``ui2``'s client id kicked it and took its replies."""
    async with user(board, "ui2") as victim:
        waiting = await victim.start(
            victim.request_topic("waitForCard", "cardReader"), {"timeoutMs": 20_000}
        )
        async with intruder(board, "ui2") as (thief, seen):
            await thief.subscribe(f"{ROOT}/reply/ui2/#", qos=1)
            # Still connected: its running request is still its own to cancel.
            done = await victim.daemon("cancel", {"requestIds": [waiting.request_id]})
            assert done["result"]["canceled"] == [waiting.request_id]
            assert (await waiting.completion(5))["completionCode"] == "canceled"
            await asyncio.sleep(0.2)
        assert seen == []


async def test_the_technician_sees_no_request_and_no_reply(board: Board) -> None:
    """Before: the technician's ``dev/#`` showed every request (access keys, names on slips)."""
    async with user(board, "ui2") as victim:
        async with intruder(board, "technician-spy", "technician") as (spy, seen):
            for topic in ("#", "kiosk/v1/+/#", f"{ROOT}/dev/#", f"{ROOT}/req/#", f"{ROOT}/reply/#"):
                await spy.subscribe(topic, qos=1)
            await asyncio.sleep(0.2)
            await victim.device(
                "cardReader", "readIdentity", {"accessKey": ACCESS_KEY, "timeoutMs": 500}
            )
            printed = await victim.device("printer", "printSlip", SLIP, timeout=15)
            assert printed["completionCode"] == "success", printed
            await asyncio.sleep(0.3)
    topics = {str(m.topic) for m in seen}
    assert topics, "the technician does see broadcasts"
    assert all(t.split("/")[3] in {"status", "description", "dev"} for t in topics), topics
    assert not any("/cmd/" in t or "/req/" in t or "/reply/" in t for t in topics), topics
    blob = b"".join(payloads(seen))
    for secret in (ACCESS_KEY["documentNumber"].encode(), NAME.encode(), b"1990-01-15"):
        assert secret not in blob


async def test_cancel_cannot_reach_another_clients_request(board: Board) -> None:
    """Before: ``cancel`` with a reply topic in ``reply/ui2/`` ended ``ui2``'s ``waitForCard``."""
    async with user(board, "ui2") as victim, intruder(board, "ui") as (attacker, _):
        waiting = await victim.start(
            victim.request_topic("waitForCard", "cardReader"), {"timeoutMs": 20_000}
        )
        assert (await waiting.next(5))["type"] == "ack"  # queued: it runs
        theirs = f"{ROOT}/reply/ui2/x"
        await publish(attacker, f"{ROOT}/req/ui/cmd/cancel", {"requestId": "c1"}, theirs)
        await publish(attacker, f"{ROOT}/req/ui2/cmd/cancel", {"requestId": "c2"}, theirs)
        await publish(attacker, f"{ROOT}/cmd/cancel", {"requestId": "c3"}, theirs)
        await asyncio.sleep(0.5)
        done = await victim.daemon("cancel", {"requestIds": [waiting.request_id]})
        assert done["result"]["canceled"] == [waiting.request_id], "it was still running"
    assert "reply topic outside the requester's subtree" in board.log_text()


async def test_a_request_id_cannot_be_preempted(board: Board) -> None:
    """Before: the intruder's ``printSlip`` with the victim's next requestId printed instead."""
    slip = SLIP
    async with user(board, "ui2") as victim, user(board, "ui") as attacker:
        rid = "ui2-next-7"
        # In the victim's reply subtree: dropped; in its own: its own request, under its name.
        await publish(
            attacker.client,
            attacker.request_topic("printSlip", "printer"),
            {"requestId": rid, **slip, "copies": 2},
            f"{ROOT}/reply/ui2/r",
        )
        mine = await attacker.call(
            attacker.request_topic("printSlip", "printer"),
            {**slip, "copies": 2},
            request_id=rid,
            timeout=15,
        )
        assert (mine.get("result") or {}).get("copies") == 2, mine
        done = await victim.call(
            victim.request_topic("printSlip", "printer"), slip, request_id=rid, timeout=15
        )
    assert done["completionCode"] == "success"
    assert done["result"]["copies"] == 1, (
        "the victim's own slip printed, not a replay of the attacker's"
    )


async def test_a_retained_request_is_never_run_nor_kept(board: Board) -> None:
    """Before: a retained ``lockers/cmd/open`` stayed in the broker and ran at every daemon start."""
    async with user(board, "ui") as ui:
        before = board.log_text().count("ignored a retained request")
        await publish(
            ui.client,
            ui.request_topic("resync"),
            {"requestId": "kept"},
            ui.reply_topic("retained"),
            retain=True,
        )
        await publish(
            ui.client,
            f"{ROOT}/dev/lockers/cmd/open",
            {"requestId": "kept2", "compartment": 1},
            ui.reply_topic(),
            retain=True,
        )
        await asyncio.sleep(0.5)
        assert ui._reply_queue(b"x").empty(), "never answered, so never run"
    # One seen (the legacy topic is not writable): ignored and cleared from the broker.
    assert board.log_text().count("ignored a retained request") == before + 1


STAFF = [
    ("sensors", "resetTamper", {}),
    ("printer", "printRaw", {"data": b"\x1b@staff\n"}),
    ("cardReader", "chipIO", {"apdu": bytes.fromhex("00a4040c07a0000002471001")}),
    ("lockers", "assign", {"compartment": 2, "timeoutMs": 300}),
]


async def test_staff_operations_are_refused_to_a_ui(board: Board) -> None:
    """Before: a UI's ``resetTamper``, ``assign``, ``printRaw``, ``chipIO`` all ran."""
    async with user(board, "ui") as ui:
        for device, command, params in STAFF:
            done = await ui.device(device, command, params)
            assert done["completionCode"] == "userError", (command, done)
            assert "technician role" in done["errorDescription"]


async def test_the_technician_may_and_is_audited(board: Board) -> None:
    async with user(board, "technician") as tech:
        for device, command, params in STAFF:
            done = await tech.device(device, command, params, timeout=10)
            assert "technician role" not in (done.get("errorDescription") or ""), (command, done)
        assert (await tech.device("sensors", "resetTamper"))["completionCode"] == "success"
    log = board.log_text()
    for device, command, _ in STAFF:
        assert re.search(
            rf"staff operation {device} {command} by technician \(requestId '[^']+'\): \w+", log
        )


async def test_ending_another_uis_deposit_is_staff_only(board: Board) -> None:
    """Before: ``depositEnd`` of another UI's transaction (its id is in retained state) succeeded."""
    async with (
        user(board, "ui2") as victim,
        user(board, "ui") as attacker,
        user(board, "technician") as tech,
    ):
        started = await victim.device(
            "coinAcceptor", "depositStart", {"currency": "VND", "amountDue": 5000}
        )
        tx = started["result"]["transactionId"]
        refused = await attacker.device("coinAcceptor", "depositEnd", {"transactionId": tx})
        assert refused["completionCode"] == "userError"
        assert "technician role" in refused["errorDescription"]
        ended = await tech.device("coinAcceptor", "depositEnd", {"transactionId": tx})
        assert ended["completionCode"] == "success"
        assert ended["result"]["state"] != "active"
    assert f"staff operation: ending ui2's deposit {tx} by technician" in board.log_text()


async def test_invented_requesters_cannot_fill_the_card_reader_queue(board: Board) -> None:
    """Before: 34 ``waitForCard`` under invented client ids refused the real UI for 10 minutes.

    Now a requester is the broker user: other users' ``req/{c}/`` are refused by the
    ACL, and under its own the intruder's share of the queue is bounded, so the
    victim's request still gets in.
    """
    async with intruder(board, "x") as (client, _):
        for n in range(34):
            invented = f"ghost{n}"
            await publish(
                client,
                f"{ROOT}/req/{invented}/dev/cardReader/cmd/waitForCard",
                {"requestId": f"g{n}", "timeoutMs": 30_000},
                f"{ROOT}/reply/{invented}/r",
            )
    # (one connection per user: the intruder left before ``ui`` connects again)
    async with user(board, "ui") as attacker, user(board, "ui2") as victim:
        flood = [
            await attacker.start(
                attacker.request_topic("waitForCard", "cardReader"), {"timeoutMs": 30_000}
            )
            for _ in range(34)
        ]
        refused = 0
        for request in flood:
            reply = await request.next(10)
            refused += reply.get("completionCode") == "deviceNotReady"
        assert refused >= 34 - 16, "the intruder's own share is bounded"
        mine = await victim.start(
            victim.request_topic("waitForCard", "cardReader"), {"timeoutMs": 30_000}
        )
        assert (await mine.next(10))["type"] == "ack", "the victim's request gets in"
        await victim.daemon("cancel", {"requestIds": [mine.request_id]})
        await attacker.daemon("cancel", {"requestIds": [r.request_id for r in flood]})


async def test_a_citizen_cannot_open_a_locker_without_its_code(board: Board) -> None:
    """Before: ``lockers open 3`` from a UI released the compartment."""
    async with user(board, "ui") as ui:
        done = await ui.device("lockers", "open", {"compartment": 3, "timeoutMs": 500})
        assert done["completionCode"] == "invalidData", done
        wrong = await ui.device(
            "lockers", "open", {"compartment": 3, "code": "HS-GUESS", "timeoutMs": 500}
        )
        assert wrong["completionCode"] == "userError", wrong


async def test_a_payload_nested_200_000_deep_gets_invalid_data(board: Board) -> None:
    """Before: no reply and an ERROR with a traceback in the log."""
    async with user(board, "ui") as ui:
        correlation = b"deep"
        queue = ui._reply_queue(correlation)
        await ui.send(
            ui.request_topic("getStatus"),
            None,
            raw=b"\x91" * 200_000 + b"\x90",
            response_topic=ui.reply_topic(),
            correlation=correlation,
        )
        reply = (await asyncio.wait_for(queue.get(), 10)).payload
        assert reply["completionCode"] == "invalidData"
        assert reply["requestId"] is None
    assert "Traceback" not in board.log_text()
