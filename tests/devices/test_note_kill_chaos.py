"""Note chaos with the real daemon: ``kill -9`` at random while notes go in and wait in escrow.

tests/devices/test_note_chaos.py stops the driver dead in process; here the
daemon process is killed (tests/notechaos.py): during escrow, between a note
stacked and its credit committed, right after a commit and before the publish.
The validator's stacked notes, the ledger and what the UI heard must agree.
"""

from __future__ import annotations

import os
import random
from pathlib import Path

from tests.coinchaos import assert_accounts_agree, run_chaos
from tests.conftest import Broker
from tests.notechaos import NoteChaos, NoteChaosCounts

#: CI runs at least 40 (~27 s); ``KIOSKD_NOTE_CHAOS_ITERATIONS`` raises it
#: (``python -m bench.coins --note-chaos`` runs 200).
ITERATIONS = max(40, int(os.environ.get("KIOSKD_NOTE_CHAOS_ITERATIONS", "40")))


async def test_no_note_lost_or_doubled_across_kills(broker: Broker, tmp_path: Path) -> None:
    seed = int(os.environ.get("KIOSKD_CHAOS_SEED", random.randrange(1 << 30)))
    counts = await run_chaos(tmp_path, broker.port, ITERATIONS, seed, NoteChaos)
    summary = f"seed {seed}: {counts.as_dict()}"
    assert isinstance(counts, NoteChaosCounts)
    assert counts.iterations == ITERATIONS, summary
    assert counts.sigkills + counts.exits_after_commit >= ITERATIONS // 4, summary
    assert counts.exits_after_commit > 0, summary
    assert counts.kills_with_note_in_flight > 0, summary
    assert counts.accepted_by_device > 0, summary
    assert counts.returned_by_device > 0, summary
    assert_accounts_agree(counts, summary)
    # Notes wait in escrow, never in a buffer that overflows: none is lost at all.
    assert counts.reported_lost == 0, summary
    assert counts.ledger_credits == counts.accepted_by_device, summary
    assert counts.unread_at_stop == 0, summary
    assert counts.errors == [], summary
