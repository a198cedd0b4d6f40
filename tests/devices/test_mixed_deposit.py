"""One fee paid in coins and notes, over the real broker: one transaction, one ``depositEnded``.

The daemon runs the built-in sim board with the behavioural coin acceptor and the
real ``ssp`` driver against the SSP wire simulator (a validator emulated byte for
byte in its own process).  A deposit started on the coin acceptor takes a note on
the validator too; the fee is reached by their sum, the end is announced once, and
the ledger file holds each credit in its own acceptor's cash box.
"""

from __future__ import annotations

from pathlib import Path

from devices.cash.ledger import LEDGER_FILE, Ledger, TransactionState
from tests.conftest import Broker, run_daemon
from tests.contract.conftest import contract_config
from tests.contract.support import events, ok, state
from tests.uiclient import connect

COINS = "coinAcceptor"
NOTES = "cashAcceptor"


async def test_coins_and_a_note_pay_one_fee_in_one_deposit(broker: Broker, tmp_path: Path) -> None:
    config = contract_config(broker.port, tmp_path, {COINS: "sim", NOTES: "ssp"})
    async with (
        run_daemon(config) as daemon,
        connect(broker.port, daemon.board, "ui1") as ui,
        events(ui, COINS) as coin_events,
        events(ui, NOTES) as note_events,
    ):
        started = ok(
            await ui.device(
                COINS, "depositStart", {"currency": "VND", "amountDue": 27_000, "timeoutMs": 8000}
            )
        )
        tx = started["transactionId"]
        # Both acceptors take money for it.
        await state(ui, COINS, lambda s: s["detail"]["inhibited"] is False)
        await state(
            ui,
            NOTES,
            lambda s: s["detail"]["inhibited"] is False and s["detail"]["transactionId"] == tx,
        )
        # A deposit is the board's: the validator refuses a second one.
        second = await ui.device(NOTES, "depositStart", {"currency": "VND", "timeoutMs": 8000})
        assert second["completionCode"] == "sequenceError", second

        await ui.sim(COINS, "insertCoin", {"value": 2000})
        coin = (await coin_events.next("coinAccepted"))["data"]
        assert (coin["transactionId"], coin["index"], coin["total"]) == (tx, 1, 2000)
        await ui.sim(NOTES, "insertNote", {"value": 20_000})
        escrowed = (await note_events.next("noteEscrowed", timeout=5))["data"]
        assert escrowed == {"value": 20_000, "transactionId": tx}
        note = (await note_events.next("noteStacked", timeout=5))["data"]
        assert (note["transactionId"], note["index"], note["total"]) == (tx, 2, 22_000)
        # The validator's status answers for the same transaction.
        status = ok(await ui.device(NOTES, "depositStatus", {}))["transactions"]
        assert [(t["transactionId"], t["state"], t["total"]) for t in status] == [
            (tx, "active", 22_000)
        ]
        await ui.sim(COINS, "insertCoin", {"value": 5000})

        ended = (await coin_events.next("depositEnded", timeout=5))["data"]
        assert (ended["transactionId"], ended["reason"], ended["total"]) == (
            tx,
            "amountReached",
            27_000,
        )
        assert ended["devices"] == [
            {"deviceId": COINS, "items": 2, "total": 7000},
            {"deviceId": NOTES, "items": 1, "total": 20_000},
        ]
        assert "depositEnded" not in await note_events.none(0.5), "announced once"
        await state(ui, NOTES, lambda s: s["detail"]["inhibited"] is True, timeout=3)
        await state(ui, COINS, lambda s: s["detail"]["inhibited"] is True)
        record = ok(await ui.device(NOTES, "depositEnd", {"transactionId": tx}))
        assert [(c["deviceId"], c["value"]) for c in record["coins"]] == [
            (COINS, 2000),
            (NOTES, 20_000),
            (COINS, 5000),
        ]

    ledger = Ledger.open(Path(config.daemon.state_dir) / LEDGER_FILE)
    try:
        (saved,) = [t for t in ledger.transactions() if t.id == tx]
        assert (saved.device_id, saved.state, saved.total) == (
            COINS,
            TransactionState.ENDED,
            27_000,
        )
        assert (ledger.cash_box(COINS).total, ledger.cash_box(NOTES).total) == (7000, 20_000)
        assert ledger.box_by_value(NOTES) == [(20_000, 1)]
        assert ledger.box_by_value(COINS) == [(5000, 1), (2000, 1)]
    finally:
        ledger.close()
