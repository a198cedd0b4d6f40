"""Device-level tests of the coinAcceptor class through its simulator: deposits, money safety."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import msgspec
import pytest

from devices.base import DeviceState, Message
from devices.cash.ledger import LEDGER_FILE, EndReason, Ledger, LedgerError
from devices.coin_acceptor.messages import (
    CashBoxState,
    CoinAccepted,
    CoinAcceptorDetail,
    CoinRejected,
    DepositEnded,
    DepositEndParams,
    DepositShare,
    DepositStartParams,
    DepositStatusParams,
    DepositTransaction,
    RejectReason,
)
from devices.errors import (
    FraudAttempt,
    HardwareError,
    InvalidData,
    MediaError,
    NotReady,
    Offline,
    ProtocolError,
    SequenceError,
)
from devices.runtime.clock import now_ms
from devices.sim.coin_acceptor.actions import InsertCoinParams
from devices.sim.coin_acceptor.behaviour import ReturnedCoin, SimCoinAcceptor
from devices.sim.support.faults import FaultKind, FaultParams
from tests.support import RecordingHost, build, ctx, running

REPO = Path(__file__).resolve().parents[2]


@contextlib.asynccontextmanager
async def started(
    tmp_path: Path,
    host: RecordingHost | None = None,
    **settings: Any,
) -> AsyncIterator[tuple[SimCoinAcceptor, RecordingHost]]:
    host = host if host is not None else RecordingHost()
    device = build("coinAcceptor", "sim", tmp_path, host, **settings)
    assert isinstance(device, SimCoinAcceptor)
    try:
        async with running(device, host):
            yield device, host
    finally:
        await device.aclose()


def detail(device: SimCoinAcceptor) -> CoinAcceptorDetail:
    d = device.detail
    assert isinstance(d, CoinAcceptorDetail)
    return d


def state(device: SimCoinAcceptor) -> DeviceState:
    """Read afresh each time (a plain attribute read would be narrowed by mypy)."""
    return device.state


def named(host: RecordingHost, name: str) -> list[Any]:
    return [data for _, event, data in host.events if event == name]


def returned(host: RecordingHost) -> list[int]:
    return [
        data.value
        for _, what, data in host.outputs
        if what == "returned" and isinstance(data, ReturnedCoin)
    ]


async def start(device: SimCoinAcceptor, **params: Any) -> str:
    params.setdefault("currency", "VND")
    result = await device.deposit_start(msgspec.convert(params, DepositStartParams), ctx())
    return result.transaction_id


async def insert(device: SimCoinAcceptor, value: int) -> None:
    await device.sim_insert_coin(InsertCoinParams(value=value))


async def status(
    device: SimCoinAcceptor, transaction_id: str | None = None
) -> list[DepositTransaction]:
    result = await device.deposit_status(DepositStatusParams(transaction_id=transaction_id), ctx())
    return result.transactions


def db_rows(tmp_path: Path, sql: str, *args: Any) -> list[tuple[Any, ...]]:
    """Read the ledger file through a fresh connection, as another process would."""
    conn = sqlite3.connect(tmp_path / "state" / LEDGER_FILE)
    try:
        return conn.execute(sql, args).fetchall()
    finally:
        conn.close()


async def test_starts_inhibited_and_publishes_capabilities(tmp_path: Path) -> None:
    async with started(tmp_path) as (device, _):
        assert state(device) is DeviceState.ONLINE
        assert detail(device).inhibited
        assert device.hardware_inhibited
        assert detail(device).transaction_id is None
        assert device.capabilities() == {
            "currency": "VND",
            "coins": [1000, 2000, 5000],
            "cashBoxCapacity": 500,
        }


async def test_deposit_reaches_amount_due(tmp_path: Path) -> None:
    async with started(tmp_path) as (device, host):
        tx = await start(device, amountDue=3000)
        assert not device.hardware_inhibited
        assert not detail(device).inhibited
        assert (detail(device).transaction_id, detail(device).total, detail(device).amount_due) == (
            tx,
            0,
            3000,
        )

        await insert(device, 1000)
        assert detail(device).total == 1000
        await insert(device, 2000)
        await host.wait_for(lambda: named(host, "depositEnded"))

        assert [(name, data) for _, name, data in host.events] == [
            ("coinAccepted", CoinAccepted(transaction_id=tx, index=1, value=1000, total=1000)),
            ("coinAccepted", CoinAccepted(transaction_id=tx, index=2, value=2000, total=3000)),
            (
                "depositEnded",
                DepositEnded(
                    transaction_id=tx,
                    total=3000,
                    reason=EndReason.AMOUNT_REACHED,
                    amount_due=3000,
                    devices=[DepositShare(device_id=device.id, items=2, total=3000)],
                ),
            ),
        ]
        assert device.hardware_inhibited
        assert detail(device).inhibited
        assert detail(device).transaction_id is None
        assert detail(device).cash_box_coins == 2

        # The next coin meets an inhibited acceptor: it comes back and nothing is credited.
        await insert(device, 5000)
        assert returned(host) == [5000]
        assert len(host.events) == 3
        (record,) = await status(device, tx)
        assert (record.state, record.reason, record.total) == ("ended", "amountReached", 3000)
        assert [(c.index, c.value, c.overpayment) for c in record.coins] == [
            (1, 1000, False),
            (2, 2000, False),
        ]
        assert await status(device) == []


async def test_concurrent_coins_are_each_credited_once_or_returned(tmp_path: Path) -> None:
    async with started(tmp_path) as (device, host):
        tx = await start(device, amountDue=5000)
        await asyncio.gather(*(insert(device, 1000) for _ in range(10)))
        # A UI ending the deposit as amountReached fires gets the final record.
        result = await device.deposit_end(DepositEndParams(transaction_id=tx), ctx())
        assert result.reason is EndReason.AMOUNT_REACHED
        accepted = named(host, "coinAccepted")
        assert [c.index for c in accepted] == list(range(1, len(accepted) + 1))
        assert [c.total for c in accepted] == [1000 * c.index for c in accepted]
        assert [c.overpayment for c in accepted] == [c.total > 5000 for c in accepted]
        (ended,) = named(host, "depositEnded")
        assert (
            ended.total
            == result.total
            == sum(c.value for c in result.coins)
            == 1000 * len(accepted)
        )
        assert ended.total + sum(returned(host)) == 10_000
        assert db_rows(tmp_path, "SELECT sum(value) FROM credits") == [(ended.total,)]


async def test_overpayment_is_recorded_and_flagged(tmp_path: Path) -> None:
    async with started(tmp_path) as (device, host):
        tx = await start(device, amountDue=2500)
        await insert(device, 2000)
        await insert(device, 1000)
        await host.wait_for(lambda: named(host, "depositEnded"))
        accepted = named(host, "coinAccepted")
        assert [c.overpaid for c in accepted] == [False, True]
        (ended,) = named(host, "depositEnded")
        assert (ended.total, ended.overpayment_amount, ended.reason) == (3000, 500, "amountReached")
        # v1's deprecated names carry the same values.
        assert [c.overpayment for c in accepted] == [False, True]
        assert ended.overpayment == 500
        (record,) = await status(device, tx)
        assert (record.overpayment_amount, record.overpayment) == (500, 500)
        assert [(c.overpaid, c.overpayment) for c in record.coins] == [(False, False), (True, True)]
        assert db_rows(
            tmp_path,
            "SELECT idx, value, overpayment FROM credits WHERE transaction_id = ? ORDER BY idx",
            tx,
        ) == [
            (1, 2000, 0),
            (2, 1000, 1),
        ]


async def test_timeout_ends_with_partial_payment(tmp_path: Path) -> None:
    async with started(tmp_path) as (device, host):
        loop = asyncio.get_running_loop()
        began = loop.time()
        tx = await start(device, amountDue=5000, timeoutMs=200)
        await insert(device, 1000)
        await host.wait_for(lambda: named(host, "depositEnded"), timeout=2)
        assert loop.time() - began >= 0.2
        assert named(host, "depositEnded") == [
            DepositEnded(
                transaction_id=tx,
                total=1000,
                reason=EndReason.TIMEOUT,
                amount_due=5000,
                devices=[DepositShare(device_id=device.id, items=1, total=1000)],
            ),
        ]
        assert device.hardware_inhibited
        assert detail(device).transaction_id is None
        (record,) = await status(device, tx)
        assert (record.state, record.reason, record.total, len(record.coins)) == (
            "ended",
            "timeout",
            1000,
            1,
        )
        assert record.deadline_ts is not None
        assert record.deadline_ts - record.started_ts == 200


async def test_deposit_end_on_request_is_repeatable(tmp_path: Path) -> None:
    async with started(tmp_path) as (device, host):
        tx = await start(device)
        await insert(device, 5000)
        await insert(device, 2000)
        result = await device.deposit_end(DepositEndParams(transaction_id=tx), ctx())
        assert (result.state, result.reason, result.total, result.amount_due) == (
            "ended",
            "ended",
            7000,
            None,
        )
        assert [c.value for c in result.coins] == [5000, 2000]
        assert named(host, "depositEnded") == [
            DepositEnded(
                transaction_id=tx,
                total=7000,
                reason=EndReason.ENDED,
                devices=[DepositShare(device_id=device.id, items=2, total=7000)],
            )
        ]
        assert device.hardware_inhibited
        assert detail(device).inhibited

        # A UI racing the end (or retrying) gets the final record, not an error.
        again = await device.deposit_end(DepositEndParams(transaction_id=tx), ctx())
        assert again == result
        assert len(named(host, "depositEnded")) == 1


async def test_sequence_and_invalid_requests(tmp_path: Path) -> None:
    async with started(tmp_path) as (device, _):
        tx = await start(device, amountDue=1000)
        with pytest.raises(SequenceError):
            await start(device, amountDue=1000)
        with pytest.raises(InvalidData):
            await device.deposit_end(DepositEndParams(transaction_id="no-such-id"), ctx())
        with pytest.raises(InvalidData):
            await status(device, "no-such-id")
        assert [t.transaction_id for t in await status(device)] == [tx]
        await device.deposit_end(DepositEndParams(transaction_id=tx), ctx())
        with pytest.raises(InvalidData):
            await start(device, currency="USD")
    bad: dict[str, Any]
    for bad in (
        {"currency": "VND", "amountDue": 0},
        {"currency": "VND", "timeoutMs": 600_001},
        {"currency": "vnd"},
        {"currency": "VND", "timeoutMs": 0},
    ):
        with pytest.raises(msgspec.ValidationError):
            msgspec.convert(bad, DepositStartParams)


async def test_coins_without_deposit_are_returned_not_credited(tmp_path: Path) -> None:
    async with started(tmp_path) as (device, host):
        await insert(device, 1000)
        await insert(device, 2000)
        assert returned(host) == [1000, 2000]
        assert host.events == []
        assert db_rows(tmp_path, "SELECT count(*) FROM credits") == [(0,)]
        assert detail(device).cash_box_coins == 0


async def test_unknown_coin_is_rejected_and_returned(tmp_path: Path) -> None:
    async with started(tmp_path) as (device, host):
        tx = await start(device)
        await insert(device, 3000)
        assert named(host, "coinRejected") == [CoinRejected(reason=RejectReason.UNKNOWN_COIN)]
        assert returned(host) == [3000]
        assert named(host, "coinAccepted") == []
        (record,) = await status(device, tx)
        assert record.total == 0


async def test_credit_is_committed_before_the_event(tmp_path: Path) -> None:
    seen: list[tuple[int, list[tuple[Any, ...]]]] = []

    class CheckingHost(RecordingHost):
        def device_event(self, device_id: str, event: str, data: Message) -> None:
            if isinstance(data, CoinAccepted):
                # Another connection sees the row as the event leaves: it is committed.
                rows = db_rows(
                    tmp_path,
                    "SELECT idx, value FROM credits WHERE transaction_id = ? AND idx = ?",
                    data.transaction_id,
                    data.index,
                )
                totals = db_rows(
                    tmp_path, "SELECT total FROM transactions WHERE id = ?", data.transaction_id
                )
                seen.append((data.index, rows + totals))
            super().device_event(device_id, event, data)

    async with started(tmp_path, CheckingHost()) as (device, _):
        await start(device)
        await insert(device, 2000)
        await insert(device, 5000)
    assert seen == [(1, [(1, 2000), (2000,)]), (2, [(2, 5000), (7000,)])]


CHILD = r"""
import asyncio, os, sys
from pathlib import Path
from devices.coin_acceptor.messages import DepositStartParams
from devices.sim.coin_acceptor.actions import InsertCoinParams
from tests.support import RecordingHost, build, ctx, running

async def main(tmp):
    host = RecordingHost()
    device = build("coinAcceptor", "sim", Path(tmp), host)
    async with running(device, host):
        started = await device.deposit_start(DepositStartParams(currency="VND", amount_due=9000), ctx())
        await device.sim_insert_coin(InsertCoinParams(value=2000))
        await device.sim_insert_coin(InsertCoinParams(value=5000))
        print(started.transaction_id, flush=True)
        os._exit(0)  # a crash: no deposit end, no ledger close

asyncio.run(main(sys.argv[1]))
"""


async def test_crash_recovery(tmp_path: Path) -> None:
    child = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        CHILD,
        str(tmp_path),
        cwd=REPO,
        stdout=asyncio.subprocess.PIPE,
    )
    async with asyncio.timeout(20):
        out, _ = await child.communicate()
    assert child.returncode == 0
    tx = out.decode().strip()

    async with started(tmp_path) as (device, host):
        (recovered,) = named(host, "depositRecovered")
        assert (
            recovered.transaction_id,
            recovered.state,
            recovered.total,
            recovered.amount_due,
        ) == (tx, "unknown", 7000, 9000)
        assert [(c.index, c.value) for c in recovered.coins] == [(1, 2000), (2, 5000)]
        assert recovered.recovered_ts is not None
        assert detail(device).unsettled == 1
        assert detail(device).transaction_id is None
        assert device.hardware_inhibited
        assert [(t.transaction_id, t.state) for t in await status(device)] == [(tx, "unknown")]

        # A new deposit is not blocked by the recovered one.
        new = await start(device, amountDue=1000)
        assert [(t.transaction_id, t.state) for t in await status(device)] == [
            (new, "active"),
            (tx, "unknown"),
        ]
        await device.deposit_end(DepositEndParams(transaction_id=new), ctx())

        settled = await device.deposit_end(DepositEndParams(transaction_id=tx), ctx())
        assert (settled.state, settled.total, len(settled.coins)) == ("settled", 7000, 2)
        assert settled.settled_ts is not None
        assert detail(device).unsettled == 0
        assert await status(device) == []

    # Announced once per start: a later start has nothing left to recover.
    async with started(tmp_path) as (_, host):
        assert named(host, "depositRecovered") == []


async def test_shutdown_mid_deposit_is_recovered_with_every_coin(tmp_path: Path) -> None:
    async with started(tmp_path) as (device, host):
        tx = await start(device)
        await insert(device, 1000)
    async with started(tmp_path) as (device, host):
        (recovered,) = named(host, "depositRecovered")
        assert (recovered.transaction_id, recovered.total) == (tx, 1000)
        # Unsettled transactions are announced again at every start until settled.
    async with started(tmp_path) as (device, host):
        assert [r.transaction_id for r in named(host, "depositRecovered")] == [tx]
        await device.deposit_end(DepositEndParams(transaction_id=tx), ctx())
        assert detail(device).unsettled == 0


async def test_coin_with_no_deposit_is_kept_in_an_orphan_transaction(tmp_path: Path) -> None:
    async with started(tmp_path) as (device, host):
        # The hardware took coins although it should have been inhibited.
        await device.coin_inserted(2000)
        await device.coin_inserted(1000)
        first, second = named(host, "coinAccepted")
        assert first.transaction_id == second.transaction_id
        assert (second.index, second.total) == (2, 3000)
        assert device.hardware_inhibited
        assert detail(device).unsettled == 1
        (orphan,) = await status(device)
        assert (orphan.state, orphan.orphan, orphan.total) == ("unknown", True, 3000)
        settled = await device.deposit_end(
            DepositEndParams(transaction_id=orphan.transaction_id), ctx()
        )
        assert settled.state == "settled"
        assert detail(device).unsettled == 0
        # The next stray coin opens a new orphan rather than joining a settled one.
        await device.coin_inserted(5000)
        (again,) = await status(device)
        assert again.transaction_id != orphan.transaction_id
        assert again.total == 5000


async def test_cash_box_full_stops_taking_coins_until_collected(tmp_path: Path) -> None:
    async with started(tmp_path, cash_box_capacity=2) as (device, host):
        tx = await start(device)
        await insert(device, 1000)
        assert detail(device).cash_box is CashBoxState.OK
        await insert(device, 2000)
        assert state(device) is DeviceState.USER_ERROR
        assert (detail(device).cash_box, detail(device).cash_box_coins) == (CashBoxState.FULL, 2)
        assert detail(device).inhibited
        assert device.hardware_inhibited
        await insert(device, 5000)
        assert returned(host) == [5000]
        # The deposit stays open for the UI to end.
        assert detail(device).transaction_id == tx
        ended = await device.deposit_end(DepositEndParams(transaction_id=tx), ctx())
        assert ended.total == 3000
        with pytest.raises(MediaError):
            await start(device)

        # A technician empties the box with the CLI (another process, its own connection).
        ledger = Ledger.open(tmp_path / "state" / LEDGER_FILE)
        try:
            collection = ledger.collect(device.id, now_ms(), note="seal 42")
        finally:
            ledger.close()
        assert (collection.coins, collection.total) == (2, 3000)

        await start(device)
        assert state(device) is DeviceState.ONLINE
        assert (detail(device).cash_box, detail(device).cash_box_coins) == (CashBoxState.OK, 0)
        assert not device.hardware_inhibited


async def test_ledger_is_wal_with_synchronous_full(tmp_path: Path) -> None:
    async with started(tmp_path) as (device, _):
        assert db_rows(tmp_path, "PRAGMA journal_mode") == [("wal",)]
        runner = device.deposits.ledger
        assert runner is not None
        # synchronous is per connection: read it on the device's own connection.
        sync = await runner.call(
            lambda ledger: ledger._conn.execute("PRAGMA synchronous").fetchone()[0]
        )
        assert sync == 2  # FULL


async def test_disconnect_and_reconnect_during_deposit(tmp_path: Path) -> None:
    async with started(tmp_path) as (device, host):
        tx = await start(device)
        await device.sim_fault(FaultParams(kind=FaultKind.DISCONNECT))
        await host.wait_for(lambda: state(device) is DeviceState.OFFLINE)
        with pytest.raises(Offline):
            await insert(device, 1000)
        assert returned(host) == [1000]
        await device.sim_fault(FaultParams(kind=FaultKind.CLEAR))
        await host.wait_for(lambda: state(device) is DeviceState.ONLINE)
        # The deposit survived the outage and the acceptor takes coins again.
        assert not device.hardware_inhibited
        await insert(device, 2000)
        assert named(host, "coinAccepted") == [
            CoinAccepted(transaction_id=tx, index=1, value=2000, total=2000)
        ]


async def test_jam_and_hardware_error(tmp_path: Path) -> None:
    async with started(tmp_path) as (device, host):
        tx = await start(device)
        await device.sim_fault(FaultParams(kind=FaultKind.JAM))
        assert state(device) is DeviceState.HARDWARE_ERROR
        with pytest.raises(HardwareError):
            await insert(device, 1000)
        assert returned(host) == [1000]
        ended = await device.deposit_end(DepositEndParams(transaction_id=tx), ctx())
        assert ended.total == 0
        assert device.hardware_inhibited  # inhibiting works on a faulty acceptor
        with pytest.raises(HardwareError):
            await start(device)
        await device.sim_fault(FaultParams(kind=FaultKind.CLEAR))
        assert state(device) is DeviceState.ONLINE
        await start(device)
        assert not device.hardware_inhibited


async def test_garbage_rejects_the_coin(tmp_path: Path) -> None:
    async with started(tmp_path) as (device, host):
        tx = await start(device)
        await device.sim_fault(FaultParams(kind=FaultKind.GARBAGE))
        await insert(device, 2000)
        assert named(host, "coinRejected") == [CoinRejected(reason=RejectReason.VALIDATION_FAILED)]
        assert returned(host) == [2000]
        assert state(device) is DeviceState.HARDWARE_ERROR  # garbage lasts until clear
        await device.sim_fault(FaultParams(kind=FaultKind.CLEAR))
        await insert(device, 2000)  # the citizen tries again
        assert named(host, "coinAccepted") == [
            CoinAccepted(transaction_id=tx, index=1, value=2000, total=2000)
        ]


async def test_failed_enable_ends_the_new_deposit(tmp_path: Path) -> None:
    async with started(tmp_path) as (device, host):
        inhibit = device.set_inhibit

        async def garbled_enable(inhibited: bool) -> None:
            if not inhibited:
                raise ProtocolError("a garbled answer to the enable")
            await inhibit(inhibited)

        device.set_inhibit = garbled_enable  # type: ignore[method-assign]
        with pytest.raises(HardwareError):
            await start(device)
        await host.wait_for(lambda: named(host, "depositEnded"))
        (ended,) = named(host, "depositEnded")
        assert (ended.reason, ended.total) == ("ended", 0)
        assert detail(device).transaction_id is None
        assert device.hardware_inhibited
        device.set_inhibit = inhibit  # type: ignore[method-assign]
        await start(device)  # nothing left behind blocks the next deposit


async def test_fraud_attempt(tmp_path: Path) -> None:
    async with started(tmp_path) as (device, host):
        await start(device)
        await device.fraud_detected("coinOnString")
        assert named(host, "fraudAttempt")[0].reason == "coinOnString"
        assert state(device) is DeviceState.FRAUD_ATTEMPT
        assert device.hardware_inhibited
        await insert(device, 1000)
        assert returned(host) == [1000]


async def test_fraud_blocks_new_deposits(tmp_path: Path) -> None:
    async with started(tmp_path) as (device, _):
        await device.fraud_detected("coinOnString")
        with pytest.raises(FraudAttempt):
            await start(device)


async def test_unrecorded_coin_stops_the_acceptor(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*_: Any, **__: Any) -> Any:
        raise LedgerError("disk full")

    async with started(tmp_path) as (device, host):
        tx = await start(device)
        monkeypatch.setattr(Ledger, "credit", broken)
        with pytest.raises(LedgerError):
            await insert(device, 1000)
        assert named(host, "coinAccepted") == []
        assert device.hardware_inhibited
        assert state(device) is DeviceState.HARDWARE_ERROR
        await device.sim_fault(FaultParams(kind=FaultKind.CLEAR))
        assert state(device) is DeviceState.HARDWARE_ERROR  # latched until restart
        await device.deposit_end(DepositEndParams(transaction_id=tx), ctx())
        with pytest.raises(HardwareError):
            await start(device)


async def test_event_counter_is_stored(tmp_path: Path) -> None:
    async with started(tmp_path) as (device, _):
        await start(device)
        await device.coin_inserted(1000, event_counter=41)
        await device.coin_inserted(2000, event_counter=42)
        await device.coin_inserted(5000)
        assert await device.last_event_counter() == 42
    # A restarted daemon resumes from the stored counter.
    async with started(tmp_path) as (device, _):
        assert await device.last_event_counter() == 42


async def test_safe_state_without_run(tmp_path: Path) -> None:
    device = build("coinAcceptor", "sim", tmp_path, RecordingHost())
    assert isinstance(device, SimCoinAcceptor)
    device._hw_inhibited = False
    await device.safe_state()
    assert device.hardware_inhibited
    assert detail(device).inhibited


async def test_status_before_the_ledger_opens_is_not_ready(tmp_path: Path) -> None:
    device = build("coinAcceptor", "sim", tmp_path, RecordingHost())
    assert isinstance(device, SimCoinAcceptor)
    with pytest.raises(NotReady):
        await status(device)


def test_settings_are_validated() -> None:
    bad: dict[str, Any]
    for bad in (
        {"coins": []},
        {"coins": [1000, 1000]},
        {"coins": [0]},
        {"cash_box_capacity": 0},
        {"currency": "dong"},
        {"colour": "red"},
    ):
        with pytest.raises(msgspec.ValidationError):
            msgspec.convert(bad, SimCoinAcceptor.Settings)
    settings = msgspec.convert({"coins": [500, 1000]}, SimCoinAcceptor.Settings)
    assert settings.coins == (500, 1000)
