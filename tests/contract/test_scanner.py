"""scanner contract: ``read`` waits for the first code; continuous mode broadcasts ``scanned``."""

from __future__ import annotations

import asyncio

import pytest

from tests.contract.support import (
    acked,
    check_description,
    events,
    failed,
    ok,
    start,
    state,
)
from tests.uiclient import UiClient

CONTRACT_CLASSES = ("scanner",)
DEV = "scanner"
DOSSIER = "HS-2026-000123"


async def test_description_lists_the_contract(ui: UiClient, drivers: dict[str, str]) -> None:
    await check_description(
        ui, DEV, "scanner", drivers["scanner"], {"read", "setMode"}, {"scanned"}
    )
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


async def test_continuous_mode_broadcasts_scanned(ui: UiClient) -> None:
    async with events(ui, DEV) as evt:
        assert ok(await ui.device(DEV, "setMode", {"continuous": True})) == {"continuous": True}
        await state(ui, DEV, lambda s: s["detail"]["continuous"] is True)
        await ui.sim(DEV, "scan", {"text": DOSSIER, "symbology": "code128"})
        scanned = await evt.next("scanned")
        assert scanned["data"] == {"text": DOSSIER, "symbology": "code128"}
        # A read still gets the code too.
        read = await acked(await start(ui, DEV, "read", {"timeoutMs": 2000}))
        await ui.sim(DEV, "scan", {"text": "both"})
        assert ok(await read.completion(2))["text"] == "both"
        assert (await evt.next("scanned"))["data"]["text"] == "both"

        assert ok(await ui.device(DEV, "setMode", {"continuous": False})) == {"continuous": False}
        await state(ui, DEV, lambda s: s["detail"]["continuous"] is False)
        await ui.sim(DEV, "scan", {"text": "not broadcast"})
        assert await evt.none() == []


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
