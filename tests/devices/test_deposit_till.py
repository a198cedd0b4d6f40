"""One deposit across two acceptors of a board: a coin acceptor and a note validator.

Two :class:`DepositService` owners (``coin`` and ``notes``) join one
:class:`Till`, on a real ledger file: one transaction takes money from both,
each credit goes to the cash box of the acceptor that took it, one end is
reported (by the acceptor that opened it), and what is each acceptor's (offline,
fraud, crash recovery of its buffer) stays its own.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from devices.base import DeviceState
from devices.cash.deposit import DepositService, Till
from devices.cash.ledger import LEDGER_FILE, EndReason, Ledger, TransactionState
from devices.errors import FraudAttempt, Offline, SequenceError

from .test_deposit_service import Owner, read_ledger, until_ended


@dataclass
class Board:
    """The two acceptors of one board, joined to one till."""

    coin: DepositService
    coins: Owner
    note: DepositService
    notes: Owner

    async def aclose(self) -> None:
        await self.coin.aclose()
        await self.note.aclose()


class Unplugged(Owner):
    """An owner whose hardware does not answer while ``condition`` is offline."""

    async def set_inhibit(self, inhibited: bool) -> None:
        if self.condition is DeviceState.OFFLINE:
            raise Offline("the validator does not answer")
        await super().set_inhibit(inhibited)


async def open_board(tmp_path: Path, *, ready: bool = True) -> Board:
    path = tmp_path / LEDGER_FILE
    coins, notes = Owner(path, cash_box_capacity=100), Unplugged(path, cash_box_capacity=100)
    coin = DepositService(coins, "coin", item="coin")
    note = DepositService(notes, "notes", item="note")
    till = Till()
    coin.join(till)
    note.join(till)
    assert till.members == [coin, note]
    await coin.open(path)
    await note.open(path)
    if ready:
        await coin.hardware_ready()
        await note.hardware_ready()
    return Board(coin, coins, note, notes)


@pytest.fixture
async def board(tmp_path: Path) -> AsyncIterator[Board]:
    opened = await open_board(tmp_path)
    try:
        yield opened
    finally:
        await opened.aclose()


async def test_coins_and_notes_pay_one_fee_in_one_transaction_with_one_end(
    board: Board, tmp_path: Path
) -> None:
    assert board.coins.inhibited
    assert board.notes.inhibited
    record = await board.coin.start("VND", 25_000, 60_000, "kiosk-ui")
    assert not board.coins.inhibited, "both take money"
    assert not board.notes.inhibited
    assert board.notes.status.transaction_id == record.id
    with pytest.raises(SequenceError):
        await board.note.start("VND", 5000, 60_000, "kiosk-ui")
    await board.coin.credit(5000, event_counter=1)
    await board.note.credit(20_000, event_counter=77)
    assert board.coins.credits_on_disk == board.notes.credits_on_disk == [1]
    assert [c.total for c in (*board.coins.credits, *board.notes.credits)] == [5000, 25_000]
    await until_ended(board.coins)
    assert board.notes.ended == [], "one depositEnded, by the acceptor that opened it"
    ended, reason = board.coins.ended[0]
    assert (ended.id, ended.total, reason) == (record.id, 25_000, EndReason.AMOUNT_REACHED)
    assert [(c.device_id, c.value) for c in ended.credits] == [("coin", 5000), ("notes", 20_000)]
    assert [(s.device_id, s.items, s.total) for s in ended.shares] == [
        ("coin", 1, 5000),
        ("notes", 1, 20_000),
    ]
    assert board.coins.inhibited
    assert board.notes.inhibited
    assert board.notes.status.transaction_id is None
    assert (board.coins.status.box_items, board.notes.status.box_items) == (1, 1)
    # Either acceptor answers for the transaction.
    assert await board.note.transactions(record.id) == [ended]
    assert await board.note.end(record.id, "kiosk-ui", staff=False) == ended
    ledger = Ledger.open(tmp_path / LEDGER_FILE)
    try:
        assert (ledger.cash_box("coin").total, ledger.cash_box("notes").total) == (5000, 20_000)
        assert ledger.box_by_value("notes") == [(20_000, 1)]
        assert (ledger.last_event_counter("coin"), ledger.last_event_counter("notes")) == (1, 77)
    finally:
        ledger.close()


async def test_the_note_acceptor_opens_it_and_ends_it_through_the_coin_acceptor(
    board: Board,
) -> None:
    record = await board.note.start("VND", None, 60_000, "kiosk-ui")
    await board.coin.credit(2000)
    (active,) = await board.coin.transactions(None)
    assert (active.id, active.state, active.total) == (record.id, TransactionState.ACTIVE, 2000)
    ended = await board.coin.end(record.id, "kiosk-ui", staff=False)
    assert (ended.reason, ended.total) == (EndReason.ENDED, 2000)
    assert [e[0].id for e in board.notes.ended] == [record.id]
    assert board.coins.ended == []


async def test_an_acceptor_offline_mid_deposit_stays_inhibited_and_joins_when_back(
    board: Board,
) -> None:
    board.notes.condition = DeviceState.OFFLINE
    record = await board.coin.start("VND", 30_000, 60_000, "kiosk-ui")
    assert not board.coins.inhibited
    assert board.notes.status.inhibited, "the unplugged validator was not enabled"
    await board.coin.credit(10_000)
    board.notes.condition = DeviceState.ONLINE
    await board.note.hardware_ready()
    assert not board.notes.inhibited, "back in time for the deposit: enabled"
    await board.note.credit(20_000)
    await until_ended(board.coins)
    ended = read_ledger(board.notes.path.parent, record.id)
    assert (ended.state, ended.total) == (TransactionState.ENDED, 30_000)
    # Gone again while a deposit ends: the end is recorded all the same.
    second = await board.coin.start("VND", None, 60_000, "kiosk-ui")
    board.notes.condition = DeviceState.OFFLINE
    assert (await board.coin.end(second.id, "kiosk-ui", staff=False)).state is (
        TransactionState.ENDED
    )
    assert board.coins.inhibited


async def test_fraud_on_one_acceptor_inhibits_it_alone(board: Board) -> None:
    record = await board.coin.start("VND", 20_000, 60_000, "kiosk-ui")
    await board.note.fraud()
    assert board.note.condition is DeviceState.FRAUD_ATTEMPT
    assert board.notes.inhibited
    assert not board.coins.inhibited, "the coin acceptor still takes the fee"
    assert board.coin.condition is DeviceState.ONLINE
    await board.coin.credit(20_000)
    await until_ended(board.coins)
    assert board.coins.ended[0][0].id == record.id
    with pytest.raises(FraudAttempt):
        await board.note.start("VND", None, 60_000, "kiosk-ui")
    await board.coin.start("VND", None, 60_000, "kiosk-ui")
    assert board.notes.inhibited, "still in fraud: not enabled by the next deposit"
    assert not board.coins.inhibited


async def test_a_crash_mid_deposit_recovers_the_credits_of_both_acceptors(
    tmp_path: Path,
) -> None:
    first = await open_board(tmp_path)
    record = await first.coin.start("VND", 100_000, 60_000, "kiosk-ui")
    await first.coin.credit(5000, event_counter=1)
    await first.note.credit(10_000, event_counter=40)
    await first.aclose()  # the process is gone: the deposit stays active on disk

    again = await open_board(tmp_path, ready=False)
    try:
        assert again.coins.status.unsettled == again.notes.status.unsettled == 1
        # Each acceptor's buffer, read at start, joins the deposit the crash left open.
        await again.note.credit(20_000, event_counter=41)
        await again.coin.credit(1000, event_counter=2)
        assert [c.record.transaction_id for c in again.notes.credits] == [record.id]
        assert [c.record.transaction_id for c in again.coins.credits] == [record.id]
        await again.note.hardware_ready()
        await again.coin.hardware_ready()
        assert again.notes.recovered == [], "reported once, by the acceptor that opened it"
        (recovered,) = again.coins.recovered
        assert (recovered.id, recovered.state, recovered.total) == (
            record.id,
            TransactionState.UNKNOWN,
            36_000,
        )
        assert [(c.device_id, c.value) for c in recovered.credits] == [
            ("coin", 5000),
            ("notes", 10_000),
            ("notes", 20_000),
            ("coin", 1000),
        ]
        assert [r.id for r in await again.note.transactions(None)] == [record.id]
        settled = await again.note.end(record.id, "kiosk-ui", staff=False)
        assert settled.state is TransactionState.SETTLED
        assert again.coins.status.unsettled == again.notes.status.unsettled == 0
    finally:
        await again.aclose()


async def test_a_buffered_note_after_the_recovered_deposit_was_settled_is_kept_as_an_orphan(
    tmp_path: Path,
) -> None:
    """The coin acceptor's recovery ends first and a UI settles; the late note is not lost."""
    first = await open_board(tmp_path)
    record = await first.coin.start("VND", None, 60_000, "kiosk-ui")
    await first.coin.credit(5000)
    await first.aclose()

    again = await open_board(tmp_path, ready=False)
    try:
        await again.coin.hardware_ready()
        await again.coin.end(record.id, "kiosk-ui", staff=False)
        await again.note.credit(50_000, event_counter=9)
        (credit,) = again.notes.credits
        orphan = read_ledger(tmp_path, credit.record.transaction_id)
        assert credit.record.transaction_id != record.id
        assert (orphan.state, orphan.orphan, orphan.device_id, orphan.total) == (
            TransactionState.UNKNOWN,
            True,
            "notes",
            50_000,
        )
        assert read_ledger(tmp_path, record.id).total == 5000
    finally:
        await again.aclose()


async def test_the_ledger_closes_with_the_last_acceptor(board: Board) -> None:
    runner = board.coin.ledger
    assert runner is not None
    assert board.note.ledger is runner
    await board.coin.aclose()
    assert board.coin.ledger is None
    assert board.note.ledger is runner
    await board.note.start("VND", None, 60_000, "kiosk-ui")
    await asyncio.sleep(0)
    assert not board.notes.inhibited


async def test_a_buffered_coin_read_after_a_new_deposit_started_on_notes_is_not_its_money(
    tmp_path: Path,
) -> None:
    """A deposit opened on the note validator while the coin acceptor still reads its buffer.

    The validator comes up first and a UI starts the next citizen's payment on it;
    the coin acceptor, slower to connect, then reads a coin it buffered while the
    daemon was down.  That coin is the crashed deposit's, not the new citizen's;
    and the coin acceptor is not enabled for the new deposit before it has read
    its buffer (coins taken then could not be told from buffered ones).
    """
    first = await open_board(tmp_path)
    crashed = await first.coin.start("VND", None, 60_000, "kiosk-ui")
    await first.coin.credit(5000, event_counter=1)
    await first.aclose()

    again = await open_board(tmp_path, ready=False)
    try:
        await again.note.hardware_ready()
        new = await again.note.start("VND", None, 60_000, "kiosk-ui")
        assert not again.notes.inhibited
        assert again.coins.inhibited, "reading its buffer: not enabled yet"
        await again.coin.credit(2000, event_counter=2)
        (credit,) = again.coins.credits
        assert credit.record.transaction_id == crashed.id
        assert read_ledger(tmp_path, crashed.id).total == 7000
        await again.coin.hardware_ready()
        assert not again.coins.inhibited, "caught up: it takes the new deposit's coins"
        await again.coin.credit(1000, event_counter=3)
        assert again.coins.credits[-1].record.transaction_id == new.id
        (recovered,) = again.coins.recovered
        assert (recovered.id, recovered.total) == (crashed.id, 7000)
    finally:
        await again.aclose()


async def test_a_run_that_dies_reading_the_buffer_leaves_the_rest_to_the_same_deposit(
    tmp_path: Path,
) -> None:
    """The coin acceptor's reading of its buffer is cut short by a second crash.

    The first run dies in a citizen's deposit; coins go in while it is down.  The
    second starts the next citizen's deposit on the validator while the coin
    acceptor reads its buffer, credits one coin to the crashed deposit, and dies.
    The third finds the second's deposit left open too (the board's latest), but
    the coins it reads are the first citizen's: the second run never enabled the
    coin acceptor.  Found by the mixed chaos test (seed 637720198).
    """
    first = await open_board(tmp_path)
    crashed = await first.coin.start("VND", None, 60_000, "kiosk-ui")
    await first.coin.credit(5000, event_counter=1)
    await first.aclose()

    second = await open_board(tmp_path, ready=False)
    await second.note.hardware_ready()
    new = await second.note.start("VND", None, 60_000, "kiosk-ui")
    await second.coin.credit(2000, event_counter=2)
    assert second.coins.credits[-1].record.transaction_id == crashed.id
    await second.aclose()  # as a crash: the coin acceptor never came ready

    third = await open_board(tmp_path, ready=False)
    try:
        await third.coin.credit(1000, event_counter=3)
        assert third.coins.credits[-1].record.transaction_id == crashed.id
        assert read_ledger(tmp_path, crashed.id).total == 8000
        assert read_ledger(tmp_path, new.id).total == 0
        await third.coin.hardware_ready()
    finally:
        await third.aclose()
    ledger = Ledger.open(tmp_path / LEDGER_FILE)
    try:
        assert ledger.unfinished_catch_up("coin") is None, "the reading ended"
    finally:
        ledger.close()


async def test_a_buffered_coin_with_no_crashed_deposit_is_an_orphan_not_the_new_deposits(
    tmp_path: Path,
) -> None:
    """No deposit was open at the crash: a coin buffered then is kept apart, never the fee's."""
    first = await open_board(tmp_path)
    await first.aclose()

    again = await open_board(tmp_path, ready=False)
    try:
        await again.note.hardware_ready()
        new = await again.note.start("VND", None, 60_000, "kiosk-ui")
        await again.coin.credit(2000, event_counter=7)
        (credit,) = again.coins.credits
        assert credit.record.transaction_id != new.id
        orphan = read_ledger(tmp_path, credit.record.transaction_id)
        assert (orphan.state, orphan.orphan, orphan.total) == (TransactionState.UNKNOWN, True, 2000)
        assert read_ledger(tmp_path, new.id).total == 0
    finally:
        await again.aclose()
