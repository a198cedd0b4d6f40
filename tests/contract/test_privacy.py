"""Privacy rules of wire API v1: identity data goes to the requester's reply subtree only.

After a full identity read, a scan in single mode, a scan in continuous mode and
a face picture, the test identity appears in no retained message, no broadcast
message (state, events, status, description, simulator outputs), nothing another
UI or the technician receives outside the requester's reply subtree, no file in
the daemon's directories and no log record.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import unicodedata
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass
from pathlib import Path

import aiomqtt
import pytest

from daemon.config import Config
from tests.conftest import Broker, run_daemon
from tests.contract.support import acked, ok, published_by_a_ui, start
from tests.identity_search import TEST_CARD_QR, TEST_IDENTITY, IdentitySearch
from tests.uiclient import NODELAY, connect

CONTRACT_CLASSES = ("cardReader", "scanner", "camera")
BOARD = "sim-0001"
ROOT = f"kiosk/v1/{BOARD}"
REQUESTER = "kiosk-ui"
FULL_NAME = TEST_IDENTITY.full_name
ACCESS_KEY = {
    "documentNumber": "079099000123",
    "dateOfBirth": "1990-01-15",
    "dateOfExpiry": "2030-01-15",
}


@dataclass
class Searches:
    """One identity search per picture of the holder (chip portrait, camera), sharing findings."""

    searches: list[IdentitySearch]

    @property
    def leaks(self) -> list[str]:
        return [leak for s in self.searches for leak in s.leaks]

    def find(self, blob: bytes) -> list[str]:
        return [name for s in self.searches for name in s.find(blob)]

    def scan(self, where: str, blob: bytes) -> None:
        for search in self.searches:
            search.scan(where, blob)

    def scan_messages(self, where: str, messages: Iterable[Seen]) -> None:
        for search in self.searches:
            search.scan_messages(where, ((m.topic, m.payload) for m in messages))

    def scan_files(self, *roots: Path) -> list[Path]:
        return [p for s in self.searches for p in s.scan_files(*roots)]

    def assert_clean(self) -> None:
        assert not self.leaks, "identity data found:\n" + "\n".join(self.leaks)


@dataclass
class Seen:
    topic: str
    payload: bytes
    retain: bool


@contextlib.asynccontextmanager
async def spy(port: int, topic_filter: str, client_id: str) -> AsyncIterator[list[Seen]]:
    """Record every message matching ``topic_filter`` as raw bytes, with a client of its own."""
    seen: list[Seen] = []
    async with aiomqtt.Client(
        "127.0.0.1",
        port,
        identifier=client_id,
        protocol=aiomqtt.ProtocolVersion.V5,
        clean_start=True,
        socket_options=[NODELAY],
    ) as client:
        await client.subscribe(topic_filter, qos=1)

        async def pump() -> None:
            async for message in client.messages:
                payload = message.payload if isinstance(message.payload, bytes) else b""
                seen.append(Seen(str(message.topic), payload, message.retain))

        task = asyncio.create_task(pump(), name=f"spy-{client_id}")
        try:
            yield seen
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, aiomqtt.MqttError):
                await task


async def identity_session(port: int) -> Searches:
    """Read the card, scan a code and take a face picture as one UI; return the searches."""
    async with connect(port, BOARD, REQUESTER) as ui:
        await ui.sim("cardReader", "presentCard")
        read = await acked(await start(ui, "cardReader", "readIdentity", {"accessKey": ACCESS_KEY}))
        replies = await read.all_until_completion(5)
        assert any(r["type"] == "event" and r["event"] == "readProgress" for r in replies)
        identity = ok(replies[-1])
        assert unicodedata.normalize("NFC", identity["dg13"]["fullName"]) == FULL_NAME
        await ui.sim("cardReader", "removeCard")

        scan = await acked(await start(ui, "scanner", "read", {"timeoutMs": 3000}))
        await ui.sim("scanner", "scan", {"text": TEST_CARD_QR, "symbology": "qr"})
        assert ok(await scan.completion(3))["text"] == TEST_CARD_QR

        # Continuous mode: the code comes as an event reply to the setMode's requester.
        mode = await start(ui, "scanner", "setMode", {"continuous": True})
        assert ok(await mode.completion(3)) == {"continuous": True}
        await ui.sim("scanner", "scan", {"text": TEST_CARD_QR, "symbology": "qr"})
        event = await mode.next(3)
        assert (event["event"], event["data"]["text"]) == ("scanned", TEST_CARD_QR)
        ok(await ui.device("scanner", "setMode", {"continuous": False}))

        picture = ok(
            await ui.device("camera", "takePicture", {"purpose": "face", "width": 320}, timeout=5)
        )
        await asyncio.sleep(0.2)  # let every broadcast the session caused reach the spies
    return Searches(
        [
            IdentitySearch().with_face(identity["face"]["data"]),
            IdentitySearch().with_face(picture["data"]),
        ]
    )


async def test_identity_data_reaches_only_the_requester(
    broker: Broker, config: Config, caplog: pytest.LogCaptureFixture, tmp_path: Path
) -> None:
    caplog.set_level(logging.DEBUG)
    state_dir = Path(config.daemon.state_dir)
    runtime_dir = Path(config.daemon.runtime_dir)
    async with run_daemon(config):
        async with (
            spy(broker.port, f"{ROOT}/#", "bystander") as seen,
            spy(broker.port, f"{ROOT}/#", "technician") as seen_by_technician,
        ):
            searches = await identity_session(broker.port)
        for search in searches.searches:
            search.prove(tmp_path)

        # The bystander saw the requester's replies (this test broker has no ACL), so
        # the scan below would find a leak if one happened.
        replies = [m for m in seen if m.topic.startswith(f"{ROOT}/reply/{REQUESTER}/")]
        assert any(searches.find(m.payload) for m in replies)
        broadcast = [
            m
            for m in seen
            if not m.topic.startswith(f"{ROOT}/reply/{REQUESTER}/")
            and not published_by_a_ui(m.topic)
        ]
        topics = {m.topic for m in broadcast}
        assert f"{ROOT}/dev/cardReader/evt/cardPresented" in topics
        assert f"{ROOT}/dev/cardReader/state" in topics
        assert f"{ROOT}/dev/scanner/evt/scanned" not in topics
        searches.scan_messages("broadcast", broadcast)
        searches.scan_messages(
            "seen by the technician",
            (
                m
                for m in seen_by_technician
                if not m.topic.startswith(f"{ROOT}/reply/{REQUESTER}/")
                and not published_by_a_ui(m.topic)
            ),
        )

        async with spy(broker.port, "kiosk/#", "auditor") as retained:
            await asyncio.sleep(0.3)
        assert {f"{ROOT}/status", f"{ROOT}/description"} <= {m.topic for m in retained}
        assert all(m.retain for m in retained)
        searches.scan_messages("retained", retained)

        assert searches.scan_files(state_dir, runtime_dir), (
            "the daemon keeps its databases in the state directory"
        )

    searches.scan_files(state_dir, runtime_dir)
    assert caplog.records, "log records are captured"
    for record in caplog.records:
        text = record.getMessage() + (record.exc_text or "") + str(record.__dict__.get("args"))
        searches.scan(f"log {record.name}", text.encode())
    searches.scan("log text", caplog.text.encode())
    searches.assert_clean()
