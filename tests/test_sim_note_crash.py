"""``kioskd run --sim``'s SSP note validator outlives a crashed daemon, as a real one does.

``kill -9`` of the daemon mid-deposit leaves the emulated validator (its own
process) enabled; a note fed then is held in escrow, where no host ever polls
it.  The next start returns it to the citizen (REJECT at connect) and credits
nothing for it; the notes stacked before the crash are in the transaction the
crash left open, recovered ``unknown``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from pathlib import Path

import aiomqtt

from devices.sim.cash_acceptor.ssp import SspSimulator
from devices.sim.support.device_process import control_path
from tests.contract.support import events, ok, state
from tests.test_shutdown import BAD_LINE, BOARD, assert_clean, kioskd_sim
from tests.uiclient import connect

DEV = "cashAcceptor"


async def test_a_note_in_escrow_at_the_crash_is_returned_and_never_credited(
    tmp_path: Path,
) -> None:
    with kioskd_sim(tmp_path, "crashed") as first:
        await asyncio.to_thread(first.wait_log, " ready: board ")
        with contextlib.suppress(aiomqtt.MqttError):  # the broker dies with the daemon
            async with connect(first.port, BOARD, "kiosk-ui") as ui, events(ui, DEV) as evt:
                await state(ui, DEV, lambda s: s["state"] == "online", timeout=10)
                started = ok(
                    await ui.device(DEV, "depositStart", {"currency": "VND", "timeoutMs": 120_000})
                )
                tx = started["transactionId"]
                await state(ui, DEV, lambda s: s["detail"]["inhibited"] is False)
                await ui.sim(DEV, "insertNote", {"value": 20_000})
                assert (await evt.next("noteStacked", timeout=3))["data"]["total"] == 20_000
                first.proc.kill()
                first.proc.wait()

    # The validator is still enabled: a citizen feeds a note that no host polls.
    folder = tmp_path / "state" / "sim-ssp" / DEV
    reader, writer = await asyncio.open_unix_connection(
        str(control_path(folder, SspSimulator.name))
    )
    writer.write(json.dumps({"action": "insertNote", "value": 50_000}).encode() + b"\n")
    await writer.drain()
    await asyncio.sleep(0.3)
    stats_reader, stats_writer = await asyncio.open_unix_connection(
        str(control_path(folder, SspSimulator.name))
    )
    stats_writer.write(b'{"action": "stats"}\n')
    stats = json.loads(await stats_reader.readline())
    stats_writer.close()
    assert stats["stacked"] == [20_000]
    assert 50_000 not in stats["returned"], "held in escrow, not yet returned"

    with kioskd_sim(tmp_path, "restarted") as second:
        await asyncio.to_thread(second.wait_log, " ready: board ")
        fate = json.loads(await asyncio.wait_for(reader.readline(), 8))
        writer.close()
        assert fate == {"fate": "returned"}, "the restarted daemon returned the held note"
        async with connect(second.port, BOARD, "kiosk-ui") as ui:
            await state(ui, DEV, lambda s: s["state"] == "online", timeout=10)
            pending = ok(await ui.device(DEV, "depositStatus", {}))["transactions"]
            assert [(t["transactionId"], t["state"]) for t in pending] == [(tx, "unknown")]
            assert [c["value"] for c in pending[0]["coins"]] == [20_000]
            assert pending[0]["lostEvents"] == 0
        assert "a note was held in escrow at start; returned" in second.text()
        bad = [line for line in second.text().splitlines() if BAD_LINE.search(line)]
        assert not bad, second.text()
        assert_clean(second, *second.terminate())
