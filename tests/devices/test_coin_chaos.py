"""Chaos: the daemon killed at random while coins go in; the device, the ledger and MQTT agree."""

from __future__ import annotations

import os
import random
from pathlib import Path

from tests.coinchaos import run_chaos
from tests.conftest import Broker

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
    assert counts.doubled_or_invented == 0, summary
    assert counts.lost_silently == 0, summary
    assert counts.unknown_losses == 0, summary
    assert counts.missing_from_mqtt == 0, summary
    assert counts.value_mismatches == 0, summary
    assert counts.ledger_credits + counts.reported_lost == counts.accepted_by_device, summary
    assert counts.errors == [], summary
