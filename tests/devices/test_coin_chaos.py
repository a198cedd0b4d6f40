"""Chaos: the daemon killed at random while coins go in; the device, the ledger and MQTT agree."""

from __future__ import annotations

import os
import random
from pathlib import Path

from tests.coinchaos import BOARD, Chaos, DeviceProcess, assert_accounts_agree, run_chaos
from tests.conftest import Broker
from tests.uiclient import connect

#: CI runs at least 50; ``KIOSKD_CHAOS_ITERATIONS`` raises it (``python -m bench.coins`` runs 200).
ITERATIONS = max(50, int(os.environ.get("KIOSKD_CHAOS_ITERATIONS", "50")))


async def test_no_coin_lost_or_doubled_across_kills(broker: Broker, tmp_path: Path) -> None:
    seed = int(os.environ.get("KIOSKD_CHAOS_SEED", random.randrange(1 << 30)))
    counts = await run_chaos(tmp_path, broker.port, ITERATIONS, seed)
    summary = f"seed {seed}: {counts.as_dict()}"
    assert counts.iterations == ITERATIONS, summary
    assert counts.sigkills + counts.exits_after_commit >= ITERATIONS // 4, summary
    assert counts.exits_after_commit > 0, summary
    assert counts.inserted_while_down > 0, summary
    assert counts.accepted_by_device > 0, summary
    assert_accounts_agree(counts, summary)
    # A counter jump is reported as events, not coins: a returned coin's error event may be
    # among them, never more of them than coins returned.
    assert counts.lost_events_not_coins <= counts.returned_by_device, summary
    assert counts.errors == [], summary


async def test_a_coin_unread_at_a_graceful_stop_is_credited_at_the_next_start(
    broker: Broker, tmp_path: Path
) -> None:
    """The run's final accounting: a graceful stop may leave a coin in the acceptor's buffer.

    Deterministic form of a chaos failure (``lost_silently: 1`` once in CI): the
    acceptor took a coin the daemon had not read yet when it was stopped with
    SIGTERM.  The coin is not lost (the acceptor buffers it with its event
    counter, the ledger's counter is behind it) but the accounts only agree after
    the next start, which credits it before going online.  Here the serial line
    is cut so that the daemon cannot read it before the stop, whatever the timing.
    """
    async with (
        DeviceProcess.running(tmp_path / "coins.pty", tmp_path / "control.sock") as device,
        connect(broker.port, BOARD, "chaos-ui") as ui,
    ):
        chaos = Chaos(tmp_path, broker.port, device, ui, seed=0)
        async with chaos.recording():
            await chaos.start_daemon()
            assert await chaos.wait_online()
            assert await chaos.reconcile()
            started = await chaos.request("depositStart", {"currency": "VND", "timeoutMs": 60_000})
            assert started is not None
            await device.call(action="fault", kind="lineCut")
            await chaos.insert(1, down=False)
            await chaos.stop_daemon()
            assert await chaos.unread() == 1
            await chaos.compare()
            assert (chaos.counts.accepted_by_device, chaos.counts.ledger_credits) == (1, 0)
            assert chaos.counts.lost_silently == 1, "not yet: the coin waits in the acceptor"
            await device.call(action="fault", kind="clear")
            await chaos.next_boot()
        await chaos.compare()
    counts = chaos.counts
    summary = f"{counts.as_dict()}"
    assert (counts.accepted_by_device, counts.ledger_credits) == (1, 1), summary
    assert counts.lost_silently == counts.reported_lost == 0, summary
    assert len(chaos.reported) == 1, summary  # coinAccepted, depositRecovered or depositStatus
    assert counts.missing_from_mqtt == counts.doubled_or_invented == 0, summary
    assert counts.wrong_values == 0, summary
    assert counts.errors == [], summary
