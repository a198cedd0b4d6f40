"""scanner: a ``read`` returns the next code; continuous mode sends codes to its requester alone."""

from __future__ import annotations

from hil.rig import SIM, Hands, Rig
from hil.wire import expect_state, in_state, ok, state_topic
from tests.uiclient import UiClient

CODE = "HIL-TEST-0001"


async def test_read_returns_the_scanned_code(rig: Rig, ui: UiClient, hands: Hands) -> None:
    scanner = rig.device("scanner")
    hands.need(scanner.id)
    patience = hands.patience(scanner.id, 10)
    async with ui.subscription(state_topic(ui, scanner.id)) as states:
        read = await ui.start(
            f"{ui.root}/dev/{scanner.id}/cmd/read", {"timeoutMs": int(patience * 1000)}
        )
        assert (await read.next())["type"] == "ack"
        # Codes nobody waits for are dropped (identity data): scan once the read runs.
        await expect_state(states, in_state("busy"), 5, f"{scanner.id} busy with the read")
        await hands.do(
            scanner.id,
            "scan",
            {"text": CODE, "symbology": "qr"},
            prompt=f"Scan the QR code {CODE} with the scanner (docs/hil.md shows how to make it)",
        )
        result = ok(await read.completion(patience + 5))
        await expect_state(states, in_state("online"), 5, f"{scanner.id} online again")
    assert result["text"] == CODE
    if hands.of(scanner.id) == SIM:
        assert result["symbology"] == "qr"


async def test_continuous_mode_sends_the_code_to_its_requester_alone(
    rig: Rig, ui: UiClient, hands: Hands
) -> None:
    scanner = rig.device("scanner")
    hands.need(scanner.id)
    patience = hands.patience(scanner.id, 10)
    async with ui.subscription(f"{ui.root}/dev/{scanner.id}/evt/+") as broadcast:
        mode = await ui.start(f"{ui.root}/dev/{scanner.id}/cmd/setMode", {"continuous": True})
        assert ok(await mode.completion()) == {"continuous": True}
        try:
            await hands.do(
                scanner.id,
                "scan",
                {"text": CODE, "symbology": "qr"},
                prompt=f"Scan the QR code {CODE} with the scanner (docs/hil.md shows how to make it)",
            )
            event = await mode.next(patience + 5)
        finally:
            off = await ui.start(f"{ui.root}/dev/{scanner.id}/cmd/setMode", {"continuous": False})
            assert ok(await off.completion()) == {"continuous": False}
        ended = await mode.next()
    assert (event["type"], event["event"], event["data"]["text"]) == ("event", "scanned", CODE)
    assert event["requestId"] == mode.request_id
    assert (ended["event"], ended["data"]) == ("continuousEnded", {"reason": "turnedOff"})
    published = [broadcast.get_nowait().topic for _ in range(broadcast.qsize())]
    assert not [t for t in published if t.endswith("/evt/scanned")], "codes are never broadcast"
