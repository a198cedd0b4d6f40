"""``python -m bench.coins``: coin -> coinAccepted latency, ledger commit time, chaos counts.

1. Latency: the daemon in-process with the ``cctalk`` driver against its wire
   simulator (its own process on a socat pty pair), a real mosquitto and a UI
   client; a coin is dropped into the emulated acceptor (a request on its control
   socket, well under a ms) and the clock stops when the UI receives
   ``evt/coinAccepted``.  It includes the wait for the next 229 poll (uniform
   in ``[0, poll_ms]``), the serial exchange, the fsynced ledger commit and
   the MQTT hop; measured for each ``--poll-ms``.
2. Ledger commit: ``Ledger.credit`` through the worker thread (WAL,
   ``synchronous=FULL``: one fsync per coin) on the disk of ``--dir``.
3. Chaos: ``--chaos N`` iterations of tests/coinchaos.py (default 200), with
   the counts printed.
4. Note chaos: ``--note-chaos N`` iterations of tests/notechaos.py (default
   200) for each note driver (``ssp``, ``cctalk``): the same with a note
   validator in the acceptor's place, the counts printed, among them
   the kills that left a note in flight (in escrow, or stacked and not yet
   committed).
5. Mixed chaos: ``--mixed-chaos N`` iterations of tests/mixedchaos.py (default
   200) for each note driver: one daemon with the ccTalk coin acceptor and the
   note validator, each on its wire device process, deposits started on either,
   coins and notes at random; each device's counts and the transactions' ends.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sys
import tempfile
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import msgspec

from daemon.api.schema import DaemonState
from daemon.app import App
from daemon.config import sim_config
from devices.cash.ledger import LEDGER_FILE, Ledger, LedgerRunner
from devices.runtime.clock import now_ms
from devices.sim.coin_acceptor.cctalk import CctalkSimulator
from tests.coinchaos import Chaos, ChaosCounts, run_chaos
from tests.mixedchaos import CctalkMixedChaos, MixedChaos, run_mixed_chaos
from tests.notechaos import CctalkNoteChaos, NoteChaos
from tests.uiclient import connect

from . import procs
from .stats import Stats


async def coin_latency(broker_port: int, tmp: Path, poll_ms: int, coins: int) -> Stats:
    cfg = sim_config()
    devices = []
    for entry in cfg.devices:
        if entry.device_class != "coinAcceptor":
            continue
        settings = msgspec.structs.replace(
            entry.settings, poll_ms=poll_ms, cash_box_capacity=100_000
        )
        devices.append(msgspec.structs.replace(entry, settings=settings))
    cfg = cfg.replace(
        devices=tuple(devices),
        mqtt=msgspec.structs.replace(cfg.mqtt, port=broker_port),
        broker=msgspec.structs.replace(cfg.broker, embedded=False),
        daemon=msgspec.structs.replace(
            cfg.daemon,
            state_dir=str(tmp / f"state-{poll_ms}"),
            runtime_dir=str(tmp / f"run-{poll_ms}"),
        ),
    )
    app = App(cfg)
    stop = asyncio.Event()
    task = asyncio.create_task(app.run(stop))
    samples: list[float] = []
    try:
        while app.status().state not in (DaemonState.READY, DaemonState.DEGRADED):  # noqa: ASYNC110
            await asyncio.sleep(0.01)
        sim = app.simulators["coinAcceptor"]
        assert isinstance(sim, CctalkSimulator)
        async with (
            connect(broker_port, cfg.board.id, "bench-coins") as ui,
            ui.subscription(f"{ui.root}/dev/coinAcceptor/evt/coinAccepted") as queue,
        ):
            started = await ui.device(
                "coinAcceptor", "depositStart", {"currency": "VND", "timeoutMs": 600_000}
            )
            assert started["completionCode"] == "success", started
            while not (await sim.call({"action": "stats"}, dict))["enabled"]:  # noqa: ASYNC110
                await asyncio.sleep(0.01)  # the device's bit, no event to wait for
            for _ in range(coins):
                # Not in step with the poll: the wait for it is part of the latency.
                await asyncio.sleep(random.uniform(0.05, 0.15))
                t0 = time.perf_counter()
                await sim.call({"action": "insertCoin", "value": 1000}, dict)
                await asyncio.wait_for(queue.get(), 5)
                samples.append(time.perf_counter() - t0)
    finally:
        stop.set()
        await asyncio.wait_for(task, 15)
    return Stats.of(samples)


async def commit_time(directory: Path, coins: int) -> Stats:
    runner = await LedgerRunner.open(directory / LEDGER_FILE)
    samples: list[float] = []
    try:
        tx = await runner.call(
            Ledger.begin,
            "bench",
            currency="VND",
            amount_due=None,
            timeout_ms=600_000,
            at_ms=now_ms(),
        )
        for n in range(coins):
            t0 = time.perf_counter()
            await runner.call(Ledger.credit, tx.id, 1000, event_counter=n % 255 + 1, at_ms=now_ms())
            samples.append(time.perf_counter() - t0)
    finally:
        await runner.aclose()
    return Stats.of(samples)


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    out: dict[str, Any] = {}
    with (
        procs.broker() as broker,
        tempfile.TemporaryDirectory(prefix="kioskd-bench-coins-", dir=args.dir) as tmp,
    ):
        base = Path(tmp)
        if args.coins:
            for poll_ms in args.poll_ms:
                stats = await coin_latency(broker.port, base, poll_ms, args.coins)
                out[f"coinAccepted latency, poll {poll_ms} ms"] = asdict(stats)
                print(f"[bench.coins] poll {poll_ms} ms: {stats}", file=sys.stderr, flush=True)
            stats = await commit_time(base, args.coins)
            out["ledger commit (credit, fsync)"] = asdict(stats)
            print(f"[bench.coins] commit: {stats}", file=sys.stderr, flush=True)
        for name, iterations, kind in (
            ("chaos", args.chaos, Chaos),
            ("note chaos, ssp", args.note_chaos, NoteChaos),
            ("note chaos, cctalk", args.note_chaos, CctalkNoteChaos),
            ("mixed chaos, ssp", args.mixed_chaos, MixedChaos),
            ("mixed chaos, cctalk", args.mixed_chaos, CctalkMixedChaos),
        ):
            if not iterations:
                continue
            chaos_dir = base / name.replace(", ", "-").replace(" ", "-")
            chaos_dir.mkdir()
            t0 = time.monotonic()
            counts: ChaosCounts
            if issubclass(kind, MixedChaos):
                counts = await run_mixed_chaos(chaos_dir, broker.port, iterations, args.seed, kind)
            else:
                counts = await run_chaos(chaos_dir, broker.port, iterations, args.seed, kind)
            out[name] = counts.as_dict() | {
                "seconds": round(time.monotonic() - t0, 1),
                "seed": args.seed,
            }
            print(f"[bench.coins] {name}: {out[name]}", file=sys.stderr, flush=True)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(
        prog="python -m bench.coins", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument(
        "--coins", type=int, default=200, help="coins per latency/commit measurement (0: none)"
    )
    parser.add_argument(
        "--poll-ms", type=int, nargs="+", default=[100, 50], help="ccTalk poll intervals"
    )
    parser.add_argument("--chaos", type=int, default=200, help="chaos iterations (0: none)")
    parser.add_argument(
        "--note-chaos", type=int, default=200, help="note chaos iterations (0: none)"
    )
    parser.add_argument(
        "--mixed-chaos",
        type=int,
        nargs="?",
        const=200,
        default=200,
        help="mixed (coins and notes, one daemon) chaos iterations per note driver (0: none)",
    )
    parser.add_argument("--seed", type=int, default=random.randrange(1 << 30))
    parser.add_argument(
        "--dir", type=Path, default=None, help="where the ledgers live (its disk is measured)"
    )
    args = parser.parse_args()
    print(json.dumps(asyncio.run(main_async(args)), indent=2))


if __name__ == "__main__":
    main()
