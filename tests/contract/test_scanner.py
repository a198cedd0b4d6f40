"""scanner contract: ``read`` waits for the first code; continuous mode sends codes to its requester."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import msgspec
import pytest

from tests.contract.support import (
    Payload,
    acked,
    check_description,
    events,
    failed,
    ok,
    published_by_a_ui,
    start,
    state,
)
from tests.identity_search import TEST_CARD_QR, IdentitySearch
from tests.uiclient import JSON, Request, UiClient

CONTRACT_CLASSES = ("scanner",)
DEV = "scanner"
DOSSIER = "HS-2026-000123"


async def test_description_lists_the_contract(ui: UiClient, drivers: dict[str, str]) -> None:
    info = await check_description(
        ui, DEV, "scanner", drivers["scanner"], {"read", "setMode"}, {"rejected"}
    )
    assert "scanned" not in info["events"], "codes are never broadcast"
    current = await state(ui, DEV)
    assert current["state"] == "online"
    assert current["detail"]["continuous"] is False, "continuous mode is off by default"


async def test_read_waits_for_a_scan_and_returns_it(ui: UiClient) -> None:
    read = await acked(await start(ui, DEV, "read", {"timeoutMs": 2000}))
    await state(ui, DEV, lambda s: s["state"] == "busy")
    await asyncio.sleep(0.1)
    assert read.replies.empty(), "a read completes only on a code"
    await ui.sim(DEV, "scan", {"text": DOSSIER, "symbology": "qr"})
    result = ok(await read.completion(2))
    assert result == {"text": DOSSIER, "symbology": "qr"}
    await state(ui, DEV, lambda s: s["state"] == "online")


async def test_read_gets_only_the_first_code(ui: UiClient) -> None:
    read = await acked(await start(ui, DEV, "read", {"timeoutMs": 2000}))
    await ui.sim(DEV, "scan", {"text": "first"})
    await ui.sim(DEV, "scan", {"text": "second"})
    assert ok(await read.completion(2))["text"] == "first"
    # The second code came with nobody waiting: it is dropped, not kept for the next read.
    late = await ui.device(DEV, "read", {"timeoutMs": 300})
    failed(late, "timeOut")


async def test_code_scanned_before_a_read_is_not_buffered(ui: UiClient) -> None:
    await ui.sim(DEV, "scan", {"text": "079099000123|Nguyễn Văn Thử"})
    failed(await ui.device(DEV, "read", {"timeoutMs": 300}), "timeOut")


async def test_read_ends_at_its_deadline(ui: UiClient) -> None:
    loop = asyncio.get_running_loop()
    began = loop.time()
    failed(await ui.device(DEV, "read", {"timeoutMs": 250}), "timeOut")
    assert 0.2 <= loop.time() - began < 1.5


async def test_read_is_canceled_by_its_requester(ui: UiClient) -> None:
    read = await acked(await start(ui, DEV, "read", {"timeoutMs": 5000}))
    canceled = ok(await ui.daemon("cancel", {"requestIds": [read.request_id]}))
    assert canceled["canceled"] == [read.request_id]
    failed(await read.completion(2), "canceled")
    # The scanner serves the next read normally.
    again = await acked(await start(ui, DEV, "read", {"timeoutMs": 2000}))
    await ui.sim(DEV, "scan", {"text": "after cancel"})
    assert ok(await again.completion(2))["text"] == "after cancel"


async def scanned(mode: Request, timeout: float = 2.0) -> Payload:
    """The next event reply ``scanned`` of a ``setMode`` request (other replies skipped)."""
    async with asyncio.timeout(timeout):
        while True:
            reply = await mode.next(timeout)
            if reply["type"] == "event" and reply["event"] == "scanned":
                assert reply["requestId"] == mode.request_id
                return reply


async def continuous(ui: UiClient, on: bool = True) -> Request:
    """Send ``setMode {continuous: on}``, wait for its success; return its request handle."""
    mode = await start(ui, DEV, "setMode", {"continuous": on})
    assert ok(await mode.completion(2)) == {"continuous": on}
    return mode


async def test_continuous_mode_sends_codes_to_its_requester_alone(ui: UiClient) -> None:
    async with events(ui, DEV) as evt:
        mode = await continuous(ui)
        await state(ui, DEV, lambda s: s["detail"]["continuous"] is True)
        await ui.sim(DEV, "scan", {"text": DOSSIER, "symbology": "code128"})
        reply = await scanned(mode)
        assert reply["data"] == {"text": DOSSIER, "symbology": "code128"}
        # A read still gets the code too.
        read = await acked(await start(ui, DEV, "read", {"timeoutMs": 2000}))
        await ui.sim(DEV, "scan", {"text": "both"})
        assert ok(await read.completion(2))["text"] == "both"
        assert (await scanned(mode))["data"]["text"] == "both"

        off = await continuous(ui, on=False)
        ended = await mode.next()
        assert ended == {
            "type": "event",
            "requestId": mode.request_id,
            "event": "continuousEnded",
            "data": {"reason": "turnedOff"},
        }
        await state(ui, DEV, lambda s: s["detail"]["continuous"] is False)
        await ui.sim(DEV, "scan", {"text": "not delivered"})
        await asyncio.sleep(0.2)
        assert mode.replies.empty(), "turning the mode off stops delivery"
        assert off.replies.empty()
        assert "scanned" not in await evt.none(), "codes are never broadcast"


async def test_continuous_mode_answers_in_the_encoding_and_correlation_of_its_request(
    ui: UiClient,
) -> None:
    mode = await start(ui, DEV, "setMode", {"continuous": True}, content_type=JSON)
    assert ok(await mode.completion(2)) == {"continuous": True}
    async with ui.subscription(ui.reply_topic()) as raw:
        await ui.sim(DEV, "scan", {"text": DOSSIER})
        assert (await scanned(mode))["data"]["text"] == DOSSIER
        sent = await asyncio.wait_for(raw.get(), 2)
    assert sent.content_type == JSON
    assert sent.correlation is not None
    await continuous(ui, on=False)


async def test_continuous_mode_is_taken_over_by_a_later_set_mode(
    ui: UiClient, technician: UiClient
) -> None:
    mine = await continuous(ui)
    theirs = await continuous(technician)
    ended = await mine.next()
    assert (ended["event"], ended["data"]) == ("continuousEnded", {"reason": "takenOver"})
    await ui.sim(DEV, "scan", {"text": "for the technician"})
    assert (await scanned(theirs))["data"]["text"] == "for the technician"
    await asyncio.sleep(0.1)
    assert mine.replies.empty(), "the code went to the later requester alone"
    # Another requester may turn it off; the one it was bound to hears so.
    await continuous(ui, on=False)
    ended = await theirs.next()
    assert (ended["event"], ended["data"]) == ("continuousEnded", {"reason": "turnedOff"})


async def test_continuous_mode_leaks_no_code_to_other_clients(
    ui: UiClient, ui_factory: Callable[..., Any], technician: UiClient
) -> None:
    """A second UI and the technician, reading everything, see the code only in ui1's replies.

    The test broker has no ACL, so they do see ``reply/ui1/``; the provisioned
    broker keeps that subtree from them (tests/provisioning/test_broker.py).
    """
    async with (
        ui_factory("ui2") as other,
        other.subscription(f"{ui.root}/#") as seen_by_ui2,
        technician.subscription(f"{ui.root}/#") as seen_by_technician,
    ):
        mode = await continuous(ui)
        await ui.sim(DEV, "scan", {"text": TEST_CARD_QR, "symbology": "qr"})
        assert (await scanned(mode))["data"]["text"] == TEST_CARD_QR
        await continuous(ui, on=False)
        await asyncio.sleep(0.2)
    search = IdentitySearch()
    for who, seen in (("ui2", seen_by_ui2), ("technician", seen_by_technician)):
        messages = [seen.get_nowait() for _ in range(seen.qsize())]
        assert any(m.topic.startswith(ui.reply_topic("")) for m in messages), "spies see all"
        for m in messages:
            if not m.topic.startswith(ui.reply_topic("")) and not published_by_a_ui(m.topic):
                search.scan(f"{who} {m.topic}", m.topic.encode() + msgspec.json.encode(m.payload))
    search.assert_clean()


async def test_no_scanned_event_when_continuous_is_off(ui: UiClient) -> None:
    async with events(ui, DEV) as evt:
        read = await acked(await start(ui, DEV, "read", {"timeoutMs": 2000}))
        await ui.sim(DEV, "scan", {"text": "private"})
        assert ok(await read.completion(2))["text"] == "private"
        await ui.sim(DEV, "scan", {"text": "unread"})
        assert await evt.none() == []


async def test_set_mode_validates_its_params(ui: UiClient) -> None:
    failed(await ui.device(DEV, "setMode", {}), "invalidData")
    failed(await ui.device(DEV, "setMode", {"continuous": "yes"}), "invalidData")
    failed(await ui.device(DEV, "unknownCommand"), "unsupportedCommand")


async def test_faulted_scanner_is_not_ready(ui: UiClient) -> None:
    await ui.sim(DEV, "fault", {"kind": "disconnect"})
    await state(ui, DEV, lambda s: s["state"] == "offline")
    failed(await ui.device(DEV, "read", {"timeoutMs": 500}), "deviceNotReady")
    await ui.sim(DEV, "fault", {"kind": "clear"})
    await state(ui, DEV, lambda s: s["state"] == "online")


async def test_reads_are_served_in_order(ui: UiClient, ui_factory) -> None:
    async with ui_factory("ui2") as other:
        first = await acked(await start(ui, DEV, "read", {"timeoutMs": 3000}))
        second = await acked(await start(other, DEV, "read", {"timeoutMs": 3000}))
        await ui.sim(DEV, "scan", {"text": "one"})
        assert ok(await first.completion(2))["text"] == "one"
        await asyncio.sleep(0.05)
        assert second.replies.empty(), "the code went to the first read only"
        await ui.sim(DEV, "scan", {"text": "two"})
        assert ok(await second.completion(2))["text"] == "two"


async def test_read_on_a_faulted_scanner_fails_at_once(ui: UiClient) -> None:
    await ui.sim(DEV, "fault", {"kind": "hardwareError"})
    await state(ui, DEV, lambda s: s["state"] == "hardwareError")
    loop = asyncio.get_running_loop()
    began = loop.time()
    failed(await ui.device(DEV, "read", {"timeoutMs": 600}), "hardwareError")
    assert loop.time() - began < 0.5


@pytest.mark.parametrize(
    ("fault", "code"), [("disconnect", "deviceNotReady"), ("hardwareError", "hardwareError")]
)
async def test_waiting_read_ends_when_the_scanner_fails(
    ui: UiClient, fault: str, code: str
) -> None:
    read = await acked(await start(ui, DEV, "read", {"timeoutMs": 600}))
    await state(ui, DEV, lambda s: s["state"] == "busy")
    loop = asyncio.get_running_loop()
    began = loop.time()
    await ui.sim(DEV, "fault", {"kind": fault})
    failed(await read.completion(2), code)
    assert loop.time() - began < 0.5
