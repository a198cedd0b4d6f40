"""Note chaos, in process: the ``ssp`` driver stopped dead at random while notes go in.

Each round starts a new driver object on the same ledger and the same emulated
validator (as a restarted daemon finds them), opens a deposit, feeds notes, and
cancels the driver's task at a random moment: mid-poll, between a credit's
commit and its report or acknowledgement, with a note in escrow.  Cancelling a
task is not ``kill -9`` (tests/test_sim_note_crash.py does that once with the
real daemon), but it stops the driver at any of its awaits while a ledger
commit already handed to the ledger's thread still completes: the same
"committed, not reported" and "read, not committed" windows.

At the end the validator's stacked notes and the ledger must agree: every
stacked note is credited once at its value, or (plain SSP only, which has no
acknowledgement) recorded lost with its count; no note is credited that was
not stacked; nothing is ever credited for a returned note.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from pathlib import Path

import pytest

from devices.base import DeviceState
from devices.cash.deposit import DepositService
from devices.cash.ledger import LEDGER_FILE, CreditRecord, Ledger
from devices.coin_acceptor.messages import DepositStartParams
from devices.errors import DeviceError
from devices.sim.cash_acceptor.ssp_device import SspNoteDevice
from devices.supervisor import supervise
from tests.devices.test_ssp_validator import NOTES, serving, ssp_driver
from tests.support import RecordingHost, ctx

ROUNDS = 25


class Death(BaseException):
    """The process ends here: nothing after the crash point runs (not even a pending write)."""


def die(_record: CreditRecord) -> None:
    raise Death


def ledger_state(tmp_path: Path, device_id: str) -> tuple[list[int], int]:
    """Every credit's value in commit order, and the notes recorded lost."""
    ledger = Ledger.open(tmp_path / "state" / LEDGER_FILE)
    try:
        records = sorted(
            ledger.transactions(device_id=device_id, limit=10_000), key=lambda r: r.started_ms
        )
        entries = sorted(
            (c for r in records for c in r.credits), key=lambda c: (c.event_counter or 0, c.ts_ms)
        )
        lost = sum(e.count or 0 for e in ledger.lost_events(device_id))
        return [c.value for c in entries], lost
    finally:
        ledger.close()


@pytest.mark.parametrize("encryption", ["none", "essp"])
async def test_notes_are_never_lost_or_doubled_across_random_stops(
    tmp_path: Path, encryption: str
) -> None:
    rng = random.Random(f"notes-{encryption}")
    device = SspNoteDevice(NOTES, essp=encryption == "essp", escrow_timeout_s=0.4)
    stops = 0
    async with serving(tmp_path, device) as link:
        for _ in range(ROUNDS):
            host = RecordingHost()
            driver = ssp_driver(tmp_path, host, link, encryption=encryption, poll_ms=50)
            task = asyncio.create_task(supervise(driver))
            if rng.random() < 0.4:
                # Die right after the next credit's commit: before its report and its ack.
                DepositService.after_commit = die
            try:
                # A credit repeated at start-up may meet the crash point: dead before online.
                async with asyncio.timeout(10):  # polled: a dead task reports nothing
                    while driver.condition is not DeviceState.ONLINE and not task.done():
                        await asyncio.sleep(0.01)
                if task.done():
                    continue
                with contextlib.suppress(DeviceError):
                    await driver.deposit_start(DepositStartParams(currency="VND"), ctx())
                for _ in range(rng.randint(1, 3)):
                    device.insert_note(rng.choice(NOTES))
                    await asyncio.sleep(rng.uniform(0.0, 0.12))
            finally:
                DepositService.after_commit = None
                task.cancel()  # stopped dead, at whatever it was awaiting
                with contextlib.suppress(asyncio.CancelledError, Death):
                    await task
                await driver.aclose()
                stops += 1
        # A last start, left running until the validator holds nothing and owes no ack.
        host = RecordingHost()
        driver = ssp_driver(tmp_path, host, link, encryption=encryption, poll_ms=50)
        task = asyncio.create_task(supervise(driver))
        try:
            await host.wait_for(lambda: driver.condition is DeviceState.ONLINE, 10)
            async with asyncio.timeout(5):
                while device._escrow is not None or device._unacked:
                    await asyncio.sleep(0.05)
            await asyncio.sleep(0.2)
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            await driver.aclose()
    credited, lost = ledger_state(tmp_path, driver.id)
    stacked = device.stacked
    assert stops == ROUNDS
    assert stacked, "the run stacked notes"
    assert device.returned, "the run returned notes (no deposit, escrow at a stop)"
    # Credited in the validator's stacking order, with the lost ones left out.
    assert len(credited) + lost == len(stacked), (credited, lost, stacked)
    remaining = iter(stacked)
    assert all(value in remaining for value in credited), (credited, stacked)
    if encryption == "essp":
        assert lost == 0, "with POLL WITH ACK no credit is lost"
        assert credited == stacked
