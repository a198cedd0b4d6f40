"""The ``ssp`` driver against the emulated SSP validator on a pty pair: escrow, eSSP, faults.

The validator (devices/sim/cash_acceptor/ssp_device.py) answers as GA138 describes; these
tests drive the paths the contract suite cannot reach over MQTT: a note in
escrow when the daemon dies, a credit whose acknowledgement is lost, a lost
reply, counters that moved while the daemon was down, eSSP.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from devices.base import DeviceState
from devices.cash.deposit import DepositService
from devices.cash.ledger import LEDGER_FILE, CreditRecord, Ledger
from devices.cash_acceptor.messages import StackerState
from devices.cash_acceptor.ssp import Command, Packet
from devices.cash_acceptor.ssp_validator import SspValidator
from devices.coin_acceptor.messages import DepositStartParams
from devices.errors import ProtocolError
from devices.sim.cash_acceptor.note_device import Fate
from devices.sim.cash_acceptor.ssp_device import SspFault, SspFaultParams, SspNoteDevice
from devices.sim.support.pty import PtyPair
from tests.support import RecordingHost, build, ctx, running

NOTES = (10_000, 20_000, 50_000, 100_000)


class Rig:
    def __init__(self, device: SspNoteDevice, driver: SspValidator, host: RecordingHost) -> None:
        self.device = device
        self.driver = driver
        self.host = host

    def named(self, name: str) -> list[Any]:
        return [data for _, event, data in self.host.events if event == name]

    async def wait_event(self, name: str, count: int = 1, timeout: float = 3.0) -> list[Any]:
        await self.host.wait_for(lambda: len(self.named(name)) >= count, timeout)
        return self.named(name)

    async def deposit(self, amount_due: int | None = None) -> str:
        started = await self.driver.deposit_start(
            DepositStartParams(currency="VND", amount_due=amount_due), ctx()
        )
        await until(lambda: self.device.taking)
        return started.transaction_id


async def until(predicate: Any, timeout: float = 3.0) -> None:
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.01)


@contextlib.asynccontextmanager
async def serving(tmp_path: Path, device: SspNoteDevice) -> AsyncIterator[Path]:
    link = tmp_path / "run" / "notes.ssp"
    async with await PtyPair.start(link, tmp_path / "run" / "notes.dev") as pair:
        task = asyncio.create_task(device.serve(pair.device))
        try:
            yield link
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


def ssp_driver(tmp_path: Path, host: RecordingHost, link: Path, **settings: Any) -> SspValidator:
    options: dict[str, Any] = {
        "port": str(link),
        "notes": list(NOTES),
        "poll_ms": 50,
        "reply_timeout_ms": 150,
        "retries": 2,
    }
    options.update(settings)
    driver = build("cashAcceptor", "ssp", tmp_path, host, **options)
    assert isinstance(driver, SspValidator)
    return driver


@contextlib.asynccontextmanager
async def rig(
    tmp_path: Path, device: SspNoteDevice | None = None, **settings: Any
) -> AsyncIterator[Rig]:
    device = device or SspNoteDevice(NOTES)
    host = RecordingHost()
    async with serving(tmp_path, device) as link:
        driver = ssp_driver(tmp_path, host, link, **settings)
        async with running(driver, host):
            yield Rig(device, driver, host)


def ledger_values(tmp_path: Path, tx_id: str) -> list[int]:
    ledger = Ledger.open(tmp_path / "state" / LEDGER_FILE)
    try:
        record = ledger.get(tx_id)
        assert record is not None
        return [c.value for c in record.credits]
    finally:
        ledger.close()


async def test_a_note_is_escrowed_then_stacked_and_credited_once(tmp_path: Path) -> None:
    async with rig(tmp_path) as r:
        tx = await r.deposit(amount_due=30_000)
        assert await r.device.insert_note(20_000) is Fate.STACKED
        assert await r.device.insert_note(10_000) is Fate.STACKED
        await r.wait_event("depositEnded")
        assert [(s.index, s.value) for s in r.named("noteStacked")] == [(1, 20_000), (2, 10_000)]
        assert [e.value for e in r.named("noteEscrowed")] == [20_000, 10_000]
        await until(lambda: not r.device.enabled)
        # The validator stacked what the ledger holds, and no more.
        assert r.device.stacked == [20_000, 10_000]
    assert ledger_values(tmp_path, tx) == [20_000, 10_000]


async def test_a_validator_with_a_long_life_behind_it_credits_its_notes(tmp_path: Path) -> None:
    """A unit's stacked count is 32-bit and runs from the factory: far past ccTalk's 255.

    The note chaos bench found the 256th note stacked "taken but NOT recorded"
    (the ledger bounded every acceptor's counter to 255); a used validator
    failed at its first contact.
    """
    device = SspNoteDevice(NOTES)
    device.stacked_count = 123_456
    async with rig(tmp_path, device) as r:
        tx = await r.deposit(amount_due=30_000)
        assert await r.device.insert_note(20_000) is Fate.STACKED
        assert await r.device.insert_note(10_000) is Fate.STACKED
        await r.wait_event("depositEnded")
    assert ledger_values(tmp_path, tx) == [20_000, 10_000]
    ledger = Ledger.open(tmp_path / "state" / LEDGER_FILE)
    try:
        assert ledger.last_event_counter(r.driver.id) == 123_458
    finally:
        ledger.close()


async def test_overpaying_note_is_rejected_from_escrow(tmp_path: Path) -> None:
    async with rig(tmp_path, max_overpayment=10_000) as r:
        await r.deposit(amount_due=20_000)
        assert await r.device.insert_note(100_000) is Fate.RETURNED
        (back,) = await r.wait_event("noteReturned")
        assert (back.reason, back.value) == ("overpayment", 100_000)
        assert r.device.stacked == []
        assert await r.device.insert_note(20_000) is Fate.STACKED


async def test_a_note_in_escrow_when_the_daemon_dies_is_returned_never_credited(
    tmp_path: Path,
) -> None:
    device = SspNoteDevice(NOTES)
    host = RecordingHost()
    async with serving(tmp_path, device) as link:
        # Slow polls: the daemon dies after it saw the note held, before the poll that stacks.
        driver = ssp_driver(tmp_path, host, link, poll_ms=1000)
        async with running(driver, host):
            r = Rig(device, driver, host)
            tx = await r.deposit()
            fate = device.insert_note(50_000)
            await r.wait_event("noteEscrowed")
        assert not fate.done(), "the note is still held"
        host2 = RecordingHost()
        async with running(ssp_driver(tmp_path, host2, link), host2):
            assert await asyncio.wait_for(fate, 2) is Fate.RETURNED  # REJECT at start-up
            assert device.stacked == []
            assert device._reject_code == 0x08  # rejected by the host
            recovered = [d for _, e, d in host2.events if e == "depositRecovered"]
            assert [(d.transaction_id, d.total) for d in recovered] == [(tx, 0)]
    assert ledger_values(tmp_path, tx) == []


async def test_a_held_note_times_out_back_to_the_citizen_without_a_host(tmp_path: Path) -> None:
    device = SspNoteDevice(NOTES, escrow_timeout_s=1.5)
    host = RecordingHost()
    async with serving(tmp_path, device) as link:
        driver = ssp_driver(tmp_path, host, link, poll_ms=1000)
        async with running(driver, host):
            await Rig(device, driver, host).deposit()
            fate = device.insert_note(50_000)
            await host.wait_for(lambda: "noteEscrowed" in host.event_names())
        assert not fate.done()
        assert await asyncio.wait_for(fate, 3) is Fate.RETURNED
        assert device._reject_code == 0x13  # escrow timeout


class LosesOneReply(SspNoteDevice):
    """Loses its reply to the poll that reports a credit, once (line noise)."""

    lost = False

    def handle(self, packet: Packet) -> bytes | None:
        reply = super().handle(packet)
        polls = (bytes([Command.POLL]), bytes([Command.POLL_WITH_ACK]))
        if not self.lost and self.stacked and packet.data[:1] in polls:
            self.lost = True
            return None
        return reply


async def test_a_lost_reply_is_repeated_by_the_validator_not_lost_or_doubled(
    tmp_path: Path,
) -> None:
    device = LosesOneReply(NOTES)
    async with rig(tmp_path, device=device) as r:
        tx = await r.deposit()
        assert await device.insert_note(10_000) is Fate.STACKED
        await r.wait_event("noteStacked")
        await asyncio.sleep(0.3)
        assert device.lost
        assert r.driver._link is not None
        assert r.driver._link.retried >= 1
        assert [s.value for s in r.named("noteStacked")] == [10_000]
    assert ledger_values(tmp_path, tx) == [10_000]


async def test_essp_negotiates_keys_and_credits_through_encrypted_polls(tmp_path: Path) -> None:
    device = SspNoteDevice(NOTES, essp=True)
    async with rig(tmp_path, device=device, encryption="essp") as r:
        assert device.session is not None
        assert device.session.count > 0, "every command went encrypted"
        tx = await r.deposit()
        assert await device.insert_note(20_000) is Fate.STACKED
        await r.wait_event("noteStacked")
        assert r.driver._with_ack
    assert ledger_values(tmp_path, tx) == [20_000]


async def test_a_unit_requiring_essp_is_refused_with_the_reason(tmp_path: Path) -> None:
    device = SspNoteDevice(NOTES, essp=True)
    host = RecordingHost()
    async with serving(tmp_path, device) as link:
        driver = ssp_driver(tmp_path, host, link)
        with pytest.raises(ProtocolError, match="requires eSSP"):
            await driver.run()
        await driver.aclose()


class FailAfterCommit(Exception):
    """The driver fails between a credit's commit and its acknowledgement."""


async def test_a_credit_committed_but_not_acknowledged_is_not_doubled(tmp_path: Path) -> None:
    device = SspNoteDevice(NOTES, essp=True)
    failed: list[int] = []

    def fail(record: CreditRecord) -> None:
        if not failed:
            failed.append(record.value)
            raise FailAfterCommit

    async with rig(tmp_path, device=device, encryption="essp") as r:
        tx = await r.deposit()
        DepositService.after_commit = fail
        try:
            assert await device.insert_note(50_000) is Fate.STACKED
            await until(lambda: failed == [50_000])
            assert device._unacked, "the credit waits for its acknowledgement"
            # The driver runs again: the credit is repeated; the stacked count says it is
            # recorded, so it is acknowledged and not credited twice.
            await until(lambda: not device._unacked, timeout=10)
            await r.host.wait_for(lambda: r.driver.condition is DeviceState.ONLINE, 10)
        finally:
            DepositService.after_commit = None
        assert "eventsLost" not in r.host.event_names()
    assert ledger_values(tmp_path, tx) == [50_000]


async def test_a_credit_not_committed_before_the_crash_is_credited_on_restart(
    tmp_path: Path,
) -> None:
    device = SspNoteDevice(NOTES, essp=True)
    host = RecordingHost()
    async with serving(tmp_path, device) as link:
        driver = ssp_driver(tmp_path, host, link, encryption="essp")
        async with running(driver, host):
            tx = await Rig(device, driver, host).deposit()

            async def die(value: int, event_counter: int | None = None) -> None:
                await asyncio.Event().wait()  # the process stops here, before the commit

            driver.note_stacked = die  # type: ignore[method-assign]
            device.insert_note(100_000)
            await until(lambda: device._unacked)
            await asyncio.sleep(0.2)
        host2 = RecordingHost()
        async with running(ssp_driver(tmp_path, host2, link, encryption="essp"), host2):
            await host2.wait_for(lambda: "noteStacked" in host2.event_names())
            await until(lambda: not device._unacked)
    assert ledger_values(tmp_path, tx) == [100_000]


async def test_notes_the_ledger_lacks_are_recorded_lost_with_their_count(tmp_path: Path) -> None:
    device = SspNoteDevice(NOTES)
    host = RecordingHost()
    async with serving(tmp_path, device) as link:
        async with running(ssp_driver(tmp_path, host, link), host):
            pass
        device.stacked_count += 2  # stacked where this daemon did not see (another host)
        host2 = RecordingHost()
        async with running(ssp_driver(tmp_path, host2, link), host2):
            lost = [d for _, e, d in host2.events if e == "eventsLost"]
            assert [(d.count, d.reason) for d in lost] == [(2, "counterJump")]


async def test_jam_is_a_hardware_error_until_cleared(tmp_path: Path) -> None:
    async with rig(tmp_path) as r:
        await r.deposit()
        r.device.set_fault(SspFaultParams(kind=SspFault.JAM))
        assert await r.device.insert_note(10_000) is Fate.RETURNED
        await r.host.wait_for(lambda: r.driver.condition is DeviceState.HARDWARE_ERROR)
        (rejected,) = await r.wait_event("noteRejected")
        assert rejected.reason == "jam"
        r.device.set_fault(SspFaultParams(kind=SspFault.CLEAR))
        await r.host.wait_for(lambda: r.driver.condition is DeviceState.ONLINE)
        assert r.named("noteStacked") == []


async def test_power_cycle_reapplies_the_deposit_inhibit(tmp_path: Path) -> None:
    async with rig(tmp_path) as r:
        await r.deposit()
        r.device.set_fault(SspFaultParams(kind=SspFault.POWER_CYCLE))
        assert not r.device.enabled
        await until(lambda: r.device.taking)  # SLAVE RESET seen: enabled again for the deposit
        assert await r.device.insert_note(10_000) is Fate.STACKED
        await r.wait_event("noteStacked")


async def test_bad_crcs_are_retried_and_garbage_or_silence_is_a_lost_validator(
    tmp_path: Path,
) -> None:
    async with rig(tmp_path) as r:
        link = r.driver._link
        assert link is not None
        r.device.set_fault(SspFaultParams(kind=SspFault.CRC_ERROR))
        await until(lambda: link.retried >= 1)
        assert r.driver.condition is DeviceState.ONLINE
        r.device.set_fault(SspFaultParams(kind=SspFault.GARBAGE))
        await r.host.wait_for(lambda: r.driver.condition is not DeviceState.ONLINE)
        r.device.set_fault(SspFaultParams(kind=SspFault.CLEAR))
        await r.host.wait_for(lambda: r.driver.condition is DeviceState.ONLINE, 10)
        r.device.set_fault(SspFaultParams(kind=SspFault.LINE_CUT))
        await r.host.wait_for(lambda: r.driver.condition is DeviceState.OFFLINE)


async def test_stacker_removed_is_reported_and_inhibits(tmp_path: Path) -> None:
    async with rig(tmp_path) as r:
        await r.deposit()
        r.device.set_stacker(StackerState.REMOVED)
        await r.wait_event("stackerRemoved")
        await until(lambda: not r.device.taking)
        r.device.set_stacker(StackerState.OK)
        await until(lambda: r.device.taking)
        assert await r.device.insert_note(10_000) is Fate.STACKED


async def test_safe_state_disables_a_validator_it_opens_itself(tmp_path: Path) -> None:
    device = SspNoteDevice(NOTES)
    async with serving(tmp_path, device) as link:
        device.enabled, device.mask = True, 0xFFFF
        driver = ssp_driver(tmp_path, RecordingHost(), link)
        await driver.safe_state()
        assert (device.enabled, device.mask) == (False, 0)
