"""cashAcceptor contract: notes held in escrow, credited only once stacked, never lost."""

from __future__ import annotations

import asyncio

from daemon.config import Config
from tests.conftest import Broker, run_daemon
from tests.contract.support import (
    check_description,
    device_info,
    drain,
    events,
    failed,
    ok,
    outputs,
    state,
    wait_status,
)
from tests.uiclient import UiClient, connect

CONTRACT_CLASSES = ("cashAcceptor",)
DEV = "cashAcceptor"
BOARD = "sim-0001"


async def returned_value(returned: asyncio.Queue[object]) -> object:
    message = await asyncio.wait_for(returned.get(), 2)
    return getattr(message, "payload", None)


async def test_description_lists_the_contract(ui: UiClient, drivers: dict[str, str]) -> None:
    info = await check_description(
        ui,
        DEV,
        "cashAcceptor",
        drivers["cashAcceptor"],
        {"depositStart", "depositEnd", "depositStatus"},
        {
            "noteEscrowed",
            "noteStacked",
            "noteReturned",
            "noteRejected",
            "depositEnded",
            "depositRecovered",
            "fraudAttempt",
            "stackerFull",
            "stackerRemoved",
        },
    )
    capabilities = info["capabilities"]
    assert capabilities["currency"] == "VND"
    assert capabilities["escrow"] is True
    assert set(capabilities["notes"]) <= {
        1_000,
        2_000,
        5_000,
        10_000,
        20_000,
        50_000,
        100_000,
        200_000,
        500_000,
    }
    idle = await state(ui, DEV)
    assert idle["state"] == "online"
    assert idle["detail"]["inhibited"] is True, "no deposit: the validator refuses notes"
    assert idle["detail"]["stacker"] == "ok"
    assert idle["detail"]["escrow"] is None


async def test_notes_are_escrowed_then_stacked_then_credited(ui: UiClient) -> None:
    async with events(ui, DEV) as evt, outputs(ui, DEV, "returned") as returned:
        tx = ok(
            await ui.device(
                DEV, "depositStart", {"currency": "VND", "amountDue": 30_000, "timeoutMs": 5000}
            )
        )["transactionId"]
        await state(ui, DEV, lambda s: s["detail"]["inhibited"] is False)

        await ui.sim(DEV, "insertNote", {"value": 10_000})
        escrowed = await evt.next("noteEscrowed")
        assert escrowed["data"] == {"value": 10_000, "transactionId": tx}
        # next() skips other events: a noteStacked before the noteEscrowed would time out here.
        stacked_event = await evt.next("noteStacked")
        assert stacked_event["seq"] > escrowed["seq"]
        stacked = stacked_event["data"]
        assert (stacked["transactionId"], stacked["index"], stacked["value"]) == (tx, 1, 10_000)
        assert stacked["total"] == 10_000

        await ui.sim(DEV, "insertNote", {"value": 20_000})
        await evt.next("noteEscrowed")
        second = (await evt.next("noteStacked"))["data"]
        assert (second["index"], second["total"]) == (2, 30_000)
        ended = (await evt.next("depositEnded"))["data"]
        assert (ended["transactionId"], ended["reason"], ended["total"]) == (
            tx,
            "amountReached",
            30_000,
        )
        after = await state(ui, DEV, lambda s: s["detail"]["inhibited"] is True)
        assert after["detail"]["stackerNotes"] == 2
        assert after["detail"]["escrow"] is None

        # Inhibited: the validator takes nothing in; no event, no credit.
        await ui.sim(DEV, "insertNote", {"value": 50_000})
        assert await returned_value(returned) == {"value": 50_000}
        assert not {"noteEscrowed", "noteStacked"} & set(await evt.none(0.2))

    record = ok(await ui.device(DEV, "depositStatus", {"transactionId": tx}))["transactions"]
    assert [(c["index"], c["value"]) for c in record[0]["coins"]] == [(1, 10_000), (2, 20_000)]


async def test_escrow_returns_what_the_deposit_must_not_take(ui: UiClient) -> None:
    info = (await device_info(ui, DEV))["capabilities"]
    limit = info["maxOverpayment"]
    big = next(v for v in (100_000, 200_000, 500_000) if v > 20_000 + limit)
    async with events(ui, DEV) as evt, outputs(ui, DEV, "returned") as returned:
        tx = ok(
            await ui.device(
                DEV, "depositStart", {"currency": "VND", "amountDue": 20_000, "timeoutMs": 5000}
            )
        )["transactionId"]
        await state(ui, DEV, lambda s: s["detail"]["inhibited"] is False)

        # A note paying more than maxOverpayment above amountDue goes back.
        await ui.sim(DEV, "insertNote", {"value": big})
        assert (await evt.next("noteEscrowed"))["data"] == {"value": big, "transactionId": None}
        back = (await evt.next("noteReturned"))["data"]
        assert back == {"reason": "overpayment", "value": big}
        assert await returned_value(returned) == {"value": big}

        # A note the validator knows, not in the kiosk's table: rejected or returned.
        if 1_000 not in info["notes"]:
            await ui.sim(DEV, "insertNote", {"value": 1_000})
            back = (await evt.next("noteReturned"))["data"]
            assert back == {"reason": "notAccepted", "value": 1_000}
            assert await returned_value(returned) == {"value": 1_000}

        # Not a VND note at all: the validator rejects it before escrow.
        await ui.sim(DEV, "insertNote", {"value": 3_000})
        assert (await evt.next("noteRejected"))["data"] == {"reason": "unknownNote"}
        assert await returned_value(returned) == {"value": 3_000}
        assert "noteStacked" not in evt.names()

        record = ok(await ui.device(DEV, "depositEnd", {"transactionId": tx}))
        assert (record["total"], record["coins"]) == (0, [])


async def test_note_pulled_back_from_escrow_is_fraud_never_credit(ui: UiClient) -> None:
    async with events(ui, DEV) as evt:
        tx = ok(await ui.device(DEV, "depositStart", {"currency": "VND", "timeoutMs": 5000}))[
            "transactionId"
        ]
        await state(ui, DEV, lambda s: s["detail"]["inhibited"] is False)
        await ui.sim(DEV, "insertNote", {"value": 500_000, "pullBack": True})
        await evt.next("noteEscrowed")
        fraud = (await evt.next("fraudAttempt"))["data"]
        assert fraud["reason"] == "notePulledBack"
        shown = await state(
            ui, DEV, lambda s: s["state"] == "fraudAttempt" and s["detail"]["inhibited"]
        )
        assert shown["detail"]["escrow"] is None
        record = ok(await ui.device(DEV, "depositEnd", {"transactionId": tx}))
        assert (record["total"], record["coins"]) == (0, [])
        assert "noteStacked" not in evt.names()
        failed(await ui.device(DEV, "depositStart", {"currency": "VND"}), "fraudAttempt")


async def test_stacker_removed_or_full_stops_notes(ui: UiClient) -> None:
    async with events(ui, DEV) as evt, outputs(ui, DEV, "returned") as returned:
        tx = ok(await ui.device(DEV, "depositStart", {"currency": "VND", "timeoutMs": 5000}))[
            "transactionId"
        ]
        await state(ui, DEV, lambda s: s["detail"]["inhibited"] is False)
        await ui.sim(DEV, "stacker", {"state": "removed"})
        assert (await evt.next("stackerRemoved"))["data"] == {"notes": 0}
        removed = await state(
            ui, DEV, lambda s: s["state"] == "userError" and s["detail"]["inhibited"]
        )
        assert removed["detail"]["stacker"] == "removed"
        status = await wait_status(ui, lambda s: s["state"] == "degraded")
        assert "cashAcceptor:userError" in status["reasons"]
        await ui.sim(DEV, "insertNote", {"value": 10_000})
        assert await returned_value(returned) == {"value": 10_000}

        await ui.sim(DEV, "stacker", {"state": "ok"})
        await state(ui, DEV, lambda s: s["state"] == "online" and not s["detail"]["inhibited"])
        await ui.sim(DEV, "insertNote", {"value": 10_000})
        assert (await evt.next("noteStacked"))["data"]["transactionId"] == tx

        await ui.sim(DEV, "stacker", {"state": "full"})
        await evt.next("stackerFull")
        await state(
            ui, DEV, lambda s: s["detail"]["stacker"] == "full" and s["detail"]["inhibited"]
        )
        ok(await ui.device(DEV, "depositEnd", {"transactionId": tx}))
        failed(await ui.device(DEV, "depositStart", {"currency": "VND"}), "deviceNotReady")
        await ui.sim(DEV, "stacker", {"state": "ok"})
        await state(ui, DEV, lambda s: s["state"] == "online")
        assert drain(returned) == []


async def test_stacker_capacity_in_the_ledger_is_a_user_error(ui: UiClient) -> None:
    capacity = (await device_info(ui, DEV))["capabilities"]["stackerCapacity"]
    assert capacity <= 20, "needs a small stacker_capacity in DRIVER_SETTINGS"
    async with events(ui, DEV) as evt:
        tx = ok(await ui.device(DEV, "depositStart", {"currency": "VND", "timeoutMs": 5000}))[
            "transactionId"
        ]
        for _ in range(capacity):
            await ui.sim(DEV, "insertNote", {"value": 10_000})
            await evt.next("noteStacked")
        assert (await evt.next("stackerFull"))["data"] == {"notes": capacity}
        full = await state(ui, DEV, lambda s: s["state"] == "userError")
        assert full["detail"]["stacker"] == "full"
        assert full["detail"]["stackerNotes"] == capacity
        record = ok(await ui.device(DEV, "depositEnd", {"transactionId": tx}))
        assert record["total"] == capacity * 10_000


async def test_deposit_left_active_is_recovered_after_a_restart(
    broker: Broker, config: Config
) -> None:
    async with run_daemon(config), connect(broker.port, BOARD, "kiosk-ui") as ui:
        async with events(ui, DEV) as evt:
            tx = ok(
                await ui.device(
                    DEV,
                    "depositStart",
                    {"currency": "VND", "timeoutMs": 60_000},
                    request_id="note-start-before-restart",
                )
            )["transactionId"]
            await state(ui, DEV, lambda s: s["detail"]["inhibited"] is False)
            await ui.sim(DEV, "insertNote", {"value": 200_000})
            await evt.next("noteStacked")

    async with connect(broker.port, BOARD, "kiosk-ui") as ui, events(ui, DEV) as evt:
        async with run_daemon(config):
            recovered = (await evt.next("depositRecovered", timeout=3))["data"]
            assert (recovered["transactionId"], recovered["state"]) == (tx, "unknown")
            assert [c["value"] for c in recovered["coins"]] == [200_000]
            settled = ok(
                await ui.device(DEV, "depositEnd", {"transactionId": tx}, request_id="note-settle")
            )
            assert (settled["state"], settled["total"]) == ("settled", 200_000)
