"""At most once across a crash: ``kill -9`` between a side effect and its completion.

A real ``kioskd run --sim`` prints a slip on its ESC/POS simulator, which is
told to confirm the print (``GS r 1``) only 30 s later, so the daemon is killed
after the slip came out and before the command completed.  Restarted on the
same state folder, the daemon answers a retry of that request over the broker
with "outcome unknown" and prints nothing; a request that completed before the
crash is replayed with its recorded answer; a new request still prints.  The
record written before a side effect is the one fsync of the command
(:mod:`daemon.api.idempotency`); the completion is committed without one, so a
crash may lose it, and this is what the retry then hears.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import TYPE_CHECKING, Any

import aiomqtt

from tests.contract.support import ok, state
from tests.support import SLIP_FIELDS
from tests.test_shutdown import BAD_LINE, BOARD, assert_clean, kioskd_sim
from tests.uiclient import connect

if TYPE_CHECKING:
    from pathlib import Path

DEV = "printer"
SLIP: dict[str, Any] = {"template": "appointment", "fields": dict(SLIP_FIELDS)}


async def test_a_side_effect_cut_short_by_kill_9_is_answered_unknown_and_never_run_again(
    tmp_path: Path,
) -> None:
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    slip_topic = f"kiosk/v1/{BOARD}/sim/{DEV}/out/slip"
    with kioskd_sim(tmp_path, "crashed", TMPDIR=str(tmp)) as first:
        await asyncio.to_thread(first.wait_log, " ready: board ")
        with contextlib.suppress(aiomqtt.MqttError):  # the broker dies with the daemon
            async with (
                connect(first.port, BOARD, "kiosk-ui") as ui,
                ui.subscription(slip_topic) as printed,
            ):
                await state(ui, DEV, lambda s: s["state"] == "online", timeout=10)
                before = await ui.device(DEV, "printSlip", SLIP, request_id="before-crash")
                ok(before)
                await asyncio.wait_for(printed.get(), 5)
                await ui.sim(DEV, "fault", {"kind": "slow", "delayMs": 30_000})
                cut_short = await ui.start(
                    ui.request_topic("printSlip", DEV), SLIP, request_id="cut-short"
                )
                assert (await cut_short.next())["type"] == "ack"
                await asyncio.wait_for(printed.get(), 10)  # the side effect happened
                assert cut_short.replies.empty(), "the command completed before the kill"
                first.proc.kill()
                first.proc.wait()
    # The dead run's slips (its runtime folder is removed at the next start): two.
    assert len(list(tmp.glob("kioskd-sim-*/**/slip-*.png"))) == 2

    with kioskd_sim(tmp_path, "restarted", TMPDIR=str(tmp)) as second:
        await asyncio.to_thread(second.wait_log, " ready: board ")
        async with (
            connect(second.port, BOARD, "kiosk-ui") as ui,
            ui.subscription(slip_topic) as printed,
        ):
            await state(ui, DEV, lambda s: s["state"] == "online", timeout=10)
            retry = await ui.device(DEV, "printSlip", SLIP, request_id="cut-short")
            assert retry["completionCode"] == "internalError", retry
            assert retry["errorDescription"].startswith("outcome unknown"), retry
            replay = await ui.device(DEV, "printSlip", SLIP, request_id="before-crash")
            assert (replay["completionCode"], replay.get("result")) == (
                before["completionCode"],
                before.get("result"),
            )
            # The printer works: a new request prints, and it is the only slip of this run.
            ok(await ui.device(DEV, "printSlip", SLIP, request_id="after-crash"))
            await asyncio.wait_for(printed.get(), 5)
            await asyncio.sleep(0.5)
            assert printed.empty(), "a retried request printed again"
        assert len(list(tmp.glob("kioskd-sim-*/**/slip-*.png"))) == 1
        bad = [line for line in second.text().splitlines() if BAD_LINE.search(line)]
        assert not bad, second.text()
        assert_clean(second, *second.terminate())
