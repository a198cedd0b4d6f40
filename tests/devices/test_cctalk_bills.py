"""The ccTalk bill validator driver against the emulated validator on a pty pair.

Bill ids and statuses as the ccTalk generic specification part 3 gives them
(the values as github.com/ashaduri/qt-cctalk cctalk/cctalk_enums.h at e93e8d95
lists them); the frames are the coin acceptor's, tested in test_cctalk.py.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from devices.base import DeviceState
from devices.cash.ledger import LEDGER_FILE, Ledger
from devices.cash_acceptor.cctalk_bills import (
    BillHeader,
    BillStatus,
    Route,
    Scaling,
    bill_id_for,
    bill_value,
    parse_scaling,
)
from devices.cash_acceptor.cctalk_validator import CctalkBillValidator
from devices.coin_acceptor.cctalk import HOST_ADDRESS, Header, decode, encode
from devices.coin_acceptor.messages import DepositStartParams
from devices.sim.cash_acceptor.cctalk_device import VND_SCALING, CctalkBillDevice
from devices.sim.cash_acceptor.note_device import Fate
from devices.sim.coin_acceptor.cctalk_device import CctalkFault, CctalkFaultParams
from devices.sim.support.pty import PtyPair
from tests.support import RecordingHost, build, ctx, running

NOTES = (10_000, 20_000, 50_000, 500_000)


def test_bill_ids_and_scaling() -> None:
    # qt-cctalk's example id: "GE0005A", the first issue of Georgian 5 lari (value code 0005).
    assert bill_value("GE0005A", "GE", Scaling(1, 0)) == 5
    assert bill_value("GE0005A", "VN", Scaling(1, 0)) is None
    assert bill_value("VN5000A", "VN", VND_SCALING) == 500_000
    assert bill_value("VN0010A", "VN", VND_SCALING) == 1_000
    assert bill_value(".......", "VN", VND_SCALING) is None
    assert bill_value("US0005A", "US", Scaling(100, 2)) == 5  # 5 dollars: 500 cents
    assert bill_id_for(20_000, VND_SCALING) == "VN0200A"
    assert parse_scaling(bytes(3)) is None, "all zero: country not supported"
    assert parse_scaling(bytes([100, 0, 0])) == VND_SCALING


def test_the_emulated_validator_answers_bill_headers() -> None:
    device = CctalkBillDevice(NOTES)

    def ask(header: int, data: bytes = b"") -> bytes:
        reply = device.handle(encode(40, HOST_ADDRESS, header, data))
        assert reply is not None
        return decode(reply).data

    assert ask(BillHeader.REQUEST_BILL_ID, bytes([4])) == b"VN5000A"
    assert ask(BillHeader.REQUEST_COUNTRY_SCALING_FACTOR, b"VN") == bytes([100, 0, 0])
    assert ask(BillHeader.ROUTE_BILL, bytes([Route.RETURN])) == bytes([254]), "escrow empty"
    assert ask(Header.REQUEST_EQUIPMENT_CATEGORY) == b"Bill Validator"
    assert ask(BillHeader.READ_BUFFERED_BILL_EVENTS) == bytes(11)


@contextlib.asynccontextmanager
async def serving(tmp_path: Path, device: CctalkBillDevice) -> AsyncIterator[Path]:
    link = tmp_path / "run" / "bills.cctalk"
    async with await PtyPair.start(link, tmp_path / "run" / "bills.dev") as pair:
        task = asyncio.create_task(device.serve(pair.device))
        try:
            yield link
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


def bill_driver(
    tmp_path: Path, host: RecordingHost, link: Path, **settings: Any
) -> CctalkBillValidator:
    options: dict[str, Any] = {"port": str(link), "notes": list(NOTES), "poll_ms": 30}
    options.update(settings)
    driver = build("cashAcceptor", "cctalk", tmp_path, host, **options)
    assert isinstance(driver, CctalkBillValidator)
    return driver


async def until(predicate: Any, timeout: float = 3.0) -> None:
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.01)


def credited(tmp_path: Path, tx_id: str) -> list[tuple[int, int | None]]:
    ledger = Ledger.open(tmp_path / "state" / LEDGER_FILE)
    try:
        record = ledger.get(tx_id)
        assert record is not None
        return [(c.value, c.event_counter) for c in record.credits]
    finally:
        ledger.close()


async def start_deposit(driver: CctalkBillValidator, device: CctalkBillDevice) -> str:
    started = await driver.deposit_start(DepositStartParams(currency="VND"), ctx())
    await until(lambda: device.enabled)
    return started.transaction_id


async def test_a_bill_is_escrowed_routed_and_credited_with_its_counter(tmp_path: Path) -> None:
    device = CctalkBillDevice(NOTES)
    host = RecordingHost()
    async with serving(tmp_path, device) as link:
        driver = bill_driver(tmp_path, host, link)
        async with running(driver, host):
            tx = await start_deposit(driver, device)
            assert await device.insert_note(500_000) is Fate.STACKED
            await host.wait_for(lambda: "noteStacked" in host.event_names())
            assert device.mode == 0b11, "escrow and stacker mode"
    assert credited(tmp_path, tx) == [(500_000, device.counter)]


async def test_a_bill_in_escrow_when_the_daemon_dies_is_returned_never_credited(
    tmp_path: Path,
) -> None:
    device = CctalkBillDevice(NOTES)
    host = RecordingHost()
    async with serving(tmp_path, device) as link:
        driver = bill_driver(tmp_path, host, link)
        async with running(driver, host):
            tx = await start_deposit(driver, device)
            assert driver._link is not None
            async with driver._link._lock:  # frozen: nothing polls or routes any more
                held = device.insert_note(20_000)
        assert not held.done()
        host2 = RecordingHost()
        async with running(bill_driver(tmp_path, host2, link), host2):
            assert await asyncio.wait_for(held, 2) is Fate.RETURNED  # route 0 at start
        assert device.stacked == []
    assert credited(tmp_path, tx) == []


async def test_a_bill_stacked_while_the_daemon_was_down_is_credited_from_the_buffer(
    tmp_path: Path,
) -> None:
    device = CctalkBillDevice(NOTES)
    host = RecordingHost()
    async with serving(tmp_path, device) as link:
        driver = bill_driver(tmp_path, host, link)
        async with running(driver, host):
            tx = await start_deposit(driver, device)
            assert driver._link is not None
            async with driver._link._lock:
                held = device.insert_note(50_000)
                # The dying daemon's route reached the validator; its credit event was
                # never read.
                device._reply_data(BillHeader.ROUTE_BILL, bytes([Route.STACK]))
        assert await held is Fate.STACKED
        host2 = RecordingHost()
        async with running(bill_driver(tmp_path, host2, link), host2):
            await host2.wait_for(lambda: "depositRecovered" in host2.event_names())
            (recovered,) = [d for _, e, d in host2.events if e == "depositRecovered"]
            assert (recovered.transaction_id, recovered.total) == (tx, 50_000)
    assert credited(tmp_path, tx) == [(50_000, device.counter)]


async def test_jam_is_a_hardware_error_until_the_self_check_clears(tmp_path: Path) -> None:
    device = CctalkBillDevice(NOTES)
    host = RecordingHost()
    async with serving(tmp_path, device) as link:
        driver = bill_driver(tmp_path, host, link)
        async with running(driver, host):
            await start_deposit(driver, device)
            device.set_fault(CctalkFaultParams(kind=CctalkFault.JAM))
            assert await device.insert_note(10_000) is Fate.RETURNED
            await host.wait_for(lambda: driver.condition is DeviceState.HARDWARE_ERROR)
            rejected = [d for _, e, d in host.events if e == "noteRejected"]
            assert [r.reason for r in rejected] == ["jam"]
            device.set_fault(CctalkFaultParams(kind=CctalkFault.CLEAR))
            await host.wait_for(lambda: driver.condition is DeviceState.ONLINE)
            assert await device.insert_note(10_000) is Fate.STACKED


def test_statuses_are_the_specifications() -> None:
    assert (BillStatus.RETURNED_FROM_ESCROW, BillStatus.PULLED_BACKWARDS) == (1, 8)
    assert (BillStatus.STACKER_REMOVED, BillStatus.STACKER_FULL) == (11, 14)
    assert (Route.RETURN, Route.STACK, Route.HOLD) == (0, 1, 255)
