"""coinAcceptor contract: deposits end to end, coins credited or given back, never lost."""

from __future__ import annotations

import asyncio

import pytest

from daemon.config import Config
from tests.conftest import Broker, run_daemon
from tests.contract.support import (
    acked,
    check_description,
    device_info,
    drain,
    events,
    failed,
    ok,
    outputs,
    start,
    state,
    wait_status,
)
from tests.uiclient import UiClient, connect

CONTRACT_CLASSES = ("coinAcceptor",)
DEV = "coinAcceptor"
BOARD = "sim-0001"


async def coin_table(ui: UiClient) -> tuple[str, list[int]]:
    capabilities = (await device_info(ui, DEV))["capabilities"]
    return capabilities["currency"], sorted(capabilities["coins"])


async def test_description_lists_the_contract(ui: UiClient, drivers: dict[str, str]) -> None:
    info = await check_description(
        ui,
        DEV,
        "coinAcceptor",
        drivers["coinAcceptor"],
        {"depositStart", "depositEnd", "depositStatus"},
        {"coinAccepted", "coinRejected", "depositEnded", "depositRecovered", "fraudAttempt"},
    )
    assert info["capabilities"]["currency"] == "VND"
    assert info["capabilities"]["coins"]
    idle = await state(ui, DEV)
    assert idle["state"] == "online"
    assert idle["detail"]["inhibited"] is True, "no deposit: the acceptor refuses coins"
    assert idle["detail"]["cashBox"] == "ok"
    assert idle["detail"].get("transactionId") is None


async def test_full_deposit_reaches_the_amount_due(ui: UiClient) -> None:
    currency, coins = await coin_table(ui)
    small, big = coins[0], coins[-1]
    due = small + big
    async with events(ui, DEV) as evt, outputs(ui, DEV, "returned") as returned:
        started = ok(
            await ui.device(
                DEV, "depositStart", {"currency": currency, "amountDue": due, "timeoutMs": 5000}
            )
        )
        tx = started["transactionId"]
        assert started["timeoutMs"] == 5000
        assert isinstance(started["deadlineTs"], int)
        enabled = await state(ui, DEV, lambda s: s["detail"]["inhibited"] is False)
        assert enabled["detail"]["transactionId"] == tx
        assert enabled["detail"]["amountDue"] == due
        assert enabled["detail"]["total"] == 0

        await ui.sim(DEV, "insertCoin", {"value": small})
        first = (await evt.next("coinAccepted"))["data"]
        assert first["transactionId"] == tx
        assert (first["index"], first["value"], first["total"]) == (1, small, small)
        await state(ui, DEV, lambda s: s["detail"]["total"] == small)

        # depositStatus is answered while the deposit runs.
        running = ok(await ui.device(DEV, "depositStatus", {}))["transactions"]
        assert [t["transactionId"] for t in running] == [tx]
        assert running[0]["state"] == "active"
        assert running[0]["total"] == small

        await ui.sim(DEV, "insertCoin", {"value": big})
        second = (await evt.next("coinAccepted"))["data"]
        assert (second["index"], second["value"], second["total"]) == (2, big, due)
        ended = (await evt.next("depositEnded"))["data"]
        assert ended["transactionId"] == tx
        assert ended["total"] == due
        assert ended["reason"] == "amountReached"
        assert ended["overpaymentAmount"] == ended["overpayment"] == 0

        after = await state(ui, DEV, lambda s: s["detail"]["inhibited"] is True)
        assert after["detail"].get("transactionId") is None

        # A coin inserted now comes back out and is credited nowhere.
        await ui.sim(DEV, "insertCoin", {"value": small})
        assert (await asyncio.wait_for(returned.get(), 2)).payload == {"value": small}
        assert "coinAccepted" not in await evt.none(0.2)

    record = ok(await ui.device(DEV, "depositStatus", {"transactionId": tx}))["transactions"]
    assert len(record) == 1
    assert record[0]["state"] == "ended"
    assert record[0]["reason"] == "amountReached"
    assert record[0]["total"] == due
    assert [(c["index"], c["value"]) for c in record[0]["coins"]] == [(1, small), (2, big)]
    assert ok(await ui.device(DEV, "depositStatus", {}))["transactions"] == []


async def test_second_deposit_start_is_a_sequence_error(ui: UiClient) -> None:
    currency, _ = await coin_table(ui)
    tx = ok(await ui.device(DEV, "depositStart", {"currency": currency, "timeoutMs": 5000}))[
        "transactionId"
    ]
    failed(
        await ui.device(DEV, "depositStart", {"currency": currency, "timeoutMs": 5000}),
        "sequenceError",
    )
    ok(await ui.device(DEV, "depositEnd", {"transactionId": tx}))


async def test_deposit_end_ends_the_deposit(ui: UiClient) -> None:
    currency, coins = await coin_table(ui)
    async with events(ui, DEV) as evt:
        tx = ok(
            await ui.device(
                DEV, "depositStart", {"currency": currency, "amountDue": 10 * coins[-1]}
            )
        )["transactionId"]
        await ui.sim(DEV, "insertCoin", {"value": coins[0]})
        await evt.next("coinAccepted")
        record = ok(await ui.device(DEV, "depositEnd", {"transactionId": tx}))
        assert record["transactionId"] == tx
        assert record["state"] == "ended"
        assert record["reason"] == "ended"
        assert record["total"] == coins[0]
        assert record["currency"] == currency
        assert len(record["coins"]) == 1
        ended = (await evt.next("depositEnded"))["data"]
        assert (ended["transactionId"], ended["reason"], ended["total"]) == (tx, "ended", coins[0])
    await state(ui, DEV, lambda s: s["detail"]["inhibited"] is True)
    # Ending it again returns the final record unchanged.
    assert ok(await ui.device(DEV, "depositEnd", {"transactionId": tx})) == record


async def test_deposit_ends_at_its_timeout(ui: UiClient) -> None:
    currency, _ = await coin_table(ui)
    async with events(ui, DEV) as evt:
        started = ok(await ui.device(DEV, "depositStart", {"currency": currency, "timeoutMs": 300}))
        ended = (await evt.next("depositEnded", timeout=2))["data"]
    assert ended["transactionId"] == started["transactionId"]
    assert ended["reason"] == "timeout"
    assert ended["total"] == 0
    await state(ui, DEV, lambda s: s["detail"]["inhibited"] is True)


async def test_deposit_start_does_not_block_status_or_end(ui: UiClient) -> None:
    currency, _ = await coin_table(ui)
    start_req = await acked(
        await start(ui, DEV, "depositStart", {"currency": currency, "timeoutMs": 60_000})
    )
    tx = ok(await start_req.completion(2))["transactionId"]
    status = await asyncio.wait_for(ui.device(DEV, "depositStatus", {"transactionId": tx}), 1)
    assert ok(status)["transactions"][0]["state"] == "active"
    ended = await asyncio.wait_for(ui.device(DEV, "depositEnd", {"transactionId": tx}), 1)
    assert ok(ended)["state"] == "ended"


async def test_unknown_coin_is_rejected_and_returned(ui: UiClient) -> None:
    currency, coins = await coin_table(ui)
    if not (await device_info(ui, DEV))["capabilities"].get("reportsRejects", True):
        pytest.skip("this acceptor cannot report the coins it returns (pulse output)")
    foreign = next(v for v in (3, 777, 1234, 99_999) if v not in coins)
    async with events(ui, DEV) as evt, outputs(ui, DEV, "returned") as returned:
        tx = ok(await ui.device(DEV, "depositStart", {"currency": currency, "timeoutMs": 5000}))[
            "transactionId"
        ]
        await state(ui, DEV, lambda s: s["detail"]["inhibited"] is False)
        await ui.sim(DEV, "insertCoin", {"value": foreign})
        rejected = (await evt.next("coinRejected"))["data"]
        assert rejected["reason"] == "unknownCoin"
        assert (await asyncio.wait_for(returned.get(), 2)).payload == {"value": foreign}
        record = ok(await ui.device(DEV, "depositEnd", {"transactionId": tx}))
        assert record["total"] == 0
        assert record["coins"] == []
        assert "coinAccepted" not in evt.names()


async def test_deposit_start_validates(ui: UiClient) -> None:
    failed(await ui.device(DEV, "depositStart", {"currency": "USD"}), "invalidData")
    failed(await ui.device(DEV, "depositStart", {"currency": "vnd"}), "invalidData")
    failed(await ui.device(DEV, "depositStart", {"currency": "VND", "amountDue": 0}), "invalidData")
    failed(await ui.device(DEV, "depositEnd", {"transactionId": "no-such-tx"}), "invalidData")
    failed(await ui.device(DEV, "depositStatus", {"transactionId": "no-such-tx"}), "invalidData")
    await state(ui, DEV, lambda s: s["detail"]["inhibited"] is True)


async def test_repeated_deposit_start_is_not_run_twice(ui: UiClient) -> None:
    currency, _ = await coin_table(ui)
    params = {"currency": currency, "timeoutMs": 5000}
    first = await ui.device(DEV, "depositStart", params, request_id="pay-7")
    again = await ui.device(DEV, "depositStart", params, request_id="pay-7")
    assert again == first
    tx = ok(first)["transactionId"]
    active = ok(await ui.device(DEV, "depositStatus", {}))["transactions"]
    assert [t["transactionId"] for t in active] == [tx]


async def test_coins_while_faulted_are_returned_not_credited(ui: UiClient) -> None:
    currency, coins = await coin_table(ui)
    async with events(ui, DEV) as evt, outputs(ui, DEV, "returned") as returned:
        tx = ok(await ui.device(DEV, "depositStart", {"currency": currency, "timeoutMs": 5000}))[
            "transactionId"
        ]
        await ui.sim(DEV, "fault", {"kind": "hardwareError"})
        await state(ui, DEV, lambda s: s["state"] == "hardwareError")
        await ui.call(f"{ui.root}/sim/{DEV}/insertCoin", {"value": coins[0]})
        assert (await asyncio.wait_for(returned.get(), 2)).payload == {"value": coins[0]}
        await ui.sim(DEV, "fault", {"kind": "clear"})
        await state(ui, DEV, lambda s: s["state"] == "online")
        assert "coinAccepted" not in evt.names()

        # The deposit survived the fault: the next coin is its first.
        await ui.sim(DEV, "insertCoin", {"value": coins[-1]})
        accepted = (await evt.next("coinAccepted"))["data"]
        assert (accepted["transactionId"], accepted["index"]) == (tx, 1)
        assert accepted["total"] == coins[-1]
        assert drain(returned) == []
        record = ok(await ui.device(DEV, "depositEnd", {"transactionId": tx}))
        assert record["total"] == coins[-1]


async def test_overpayment_is_reported(ui: UiClient) -> None:
    currency, coins = await coin_table(ui)
    small, big = coins[0], coins[-1]
    async with events(ui, DEV) as evt:
        tx = ok(
            await ui.device(
                DEV, "depositStart", {"currency": currency, "amountDue": small, "timeoutMs": 5000}
            )
        )["transactionId"]
        await ui.sim(DEV, "insertCoin", {"value": big})
        accepted = (await evt.next("coinAccepted"))["data"]
        assert accepted["total"] == big
        assert accepted["overpaid"] is (big > small)
        ended = (await evt.next("depositEnded"))["data"]
    assert ended["transactionId"] == tx
    assert ended["reason"] == "amountReached"
    assert ended["amountDue"] == small
    assert ended["overpaymentAmount"] == big - small
    # v1's deprecated names are still sent, with the same values.
    assert accepted["overpayment"] is accepted["overpaid"]
    assert ended["overpayment"] == ended["overpaymentAmount"]
    record = ok(await ui.device(DEV, "depositEnd", {"transactionId": tx}))
    assert record["overpaymentAmount"] == record["overpayment"] == big - small
    assert [c["overpaid"] for c in record["coins"]] == [big > small]
    assert [c["overpayment"] for c in record["coins"]] == [big > small]


async def test_full_cash_box_is_a_user_error(ui: UiClient) -> None:
    currency, coins = await coin_table(ui)
    capacity = (await device_info(ui, DEV))["capabilities"]["cashBoxCapacity"]
    if capacity > 20:
        pytest.skip("needs a small cash_box_capacity in DRIVER_SETTINGS")
    async with events(ui, DEV) as evt, outputs(ui, DEV, "returned") as returned:
        tx = ok(await ui.device(DEV, "depositStart", {"currency": currency, "timeoutMs": 5000}))[
            "transactionId"
        ]
        for _ in range(capacity):
            await ui.sim(DEV, "insertCoin", {"value": coins[0]})
            await evt.next("coinAccepted")
        full = await state(ui, DEV, lambda s: s["state"] == "userError")
        assert full["detail"]["cashBox"] == "full"
        await state(ui, DEV, lambda s: s["detail"]["inhibited"] is True)
        status = await wait_status(ui, lambda s: s["state"] == "degraded")
        assert "coinAcceptor:userError" in status["reasons"]

        # No more coins go in; the active deposit can still be ended.
        await ui.sim(DEV, "insertCoin", {"value": coins[0]})
        assert (await asyncio.wait_for(returned.get(), 2)).payload == {"value": coins[0]}
        record = ok(await ui.device(DEV, "depositEnd", {"transactionId": tx}))
        assert record["total"] == capacity * coins[0]
        failed(await ui.device(DEV, "depositStart", {"currency": currency}), "userError")


async def test_deposit_left_active_is_recovered_after_a_restart(
    broker: Broker, config: Config
) -> None:
    async with run_daemon(config), connect(broker.port, BOARD, "kiosk-ui") as ui:
        currency, coins = await coin_table(ui)
        async with events(ui, DEV) as evt:
            tx = ok(
                await ui.device(
                    DEV,
                    "depositStart",
                    {"currency": currency, "timeoutMs": 60_000},
                    request_id="start-before-restart",
                )
            )["transactionId"]
            await ui.sim(DEV, "insertCoin", {"value": coins[-1]})
            await evt.next("coinAccepted")

    async with connect(broker.port, BOARD, "kiosk-ui") as ui, events(ui, DEV) as evt:
        async with run_daemon(config):
            recovered = (await evt.next("depositRecovered", timeout=3))["data"]
            assert recovered["transactionId"] == tx
            assert recovered["state"] == "unknown"
            assert recovered["total"] == coins[-1]
            assert [c["value"] for c in recovered["coins"]] == [coins[-1]]
            restarted = await state(ui, DEV, lambda s: s["detail"].get("unsettled") == 1)
            assert restarted["detail"]["inhibited"] is True
            assert restarted["detail"].get("transactionId") is None

            pending = ok(await ui.device(DEV, "depositStatus", {}))["transactions"]
            assert [(t["transactionId"], t["state"]) for t in pending] == [(tx, "unknown")]
            # (A UI's request ids are unique across restarts: the idempotency key is
            # clientId + requestId, kept in SQLite.)
            settled = ok(
                await ui.device(
                    DEV, "depositEnd", {"transactionId": tx}, request_id="settle-after-restart"
                )
            )
            assert settled["state"] == "settled"
            assert settled["total"] == coins[-1]
            await state(ui, DEV, lambda s: s["detail"].get("unsettled") == 0)
            assert ok(await ui.device(DEV, "depositStatus", {}))["transactions"] == []
