"""``python -m bench.soak [--minutes 60]``: mixed traffic at 50 requests/s; the daemon's RSS.

Starts ``python -m daemon run --sim`` (embedded broker) like the other benches and
sends, open loop, one UI client's mix (requests per second):

- ``getStatus`` 25, ``coinAcceptor/depositStatus`` 4 (no side effect, not queued or cheap);
- ``lights/set`` 15 (queued, no side effect; positions and modes in turn);
- ``printer/cut`` 4 and ``printer/printSlip`` 0.5 (queued, side effect, not interruptible);
- ``depositStart`` then ``depositEnd`` 0.75 pairs (side effects through the ccTalk sim).

Every request gets a fresh ``requestId``.  VmRSS of the daemon is sampled every
``--sample`` seconds.  Warm-up (``--warmup``, 3 minutes) covers start-up caches and
the client's idempotency share filling up: at ~6 side-effect requests/s its 1 000
records are reached in under 3 minutes; from then on they are replaced, not added.
Reported: RSS at the end of warm-up and at the end, their difference, the least-squares
slope after warm-up (kB/min), failures by completion code, unanswered requests,
reconnects and tracebacks in the daemon log.  JSON in ``bench/results/soak.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from tests.support import SLIP_FIELDS
from tests.uiclient import connect

from . import procs
from .stats import Stats
from .traffic import BOARD, Caller, log_problems, wait_ready, watch_link

RESULTS = Path(__file__).resolve().parent / "results"
POSITIONS = ("scanner", "cardReader", "printer", "coinAcceptor", "documentSlot", "camera")
SLIP = {"template": "appointment", "fields": SLIP_FIELDS}


class Tally:
    """Outcomes and latencies of one kind of request."""

    def __init__(self) -> None:
        self.codes: Counter[str] = Counter()
        self.unanswered = 0
        self.latencies: list[float] = []

    def add(self, replies: list[dict[str, Any]] | None, seconds: float) -> dict[str, Any] | None:
        if replies is None:
            self.unanswered += 1
            return None
        done = replies[-1]
        self.codes[str(done.get("completionCode"))] += 1
        self.latencies.append(seconds)
        return done

    def as_json(self) -> dict[str, Any]:
        stats = dataclasses.asdict(Stats.of(self.latencies)) if self.latencies else None
        return {"codes": dict(self.codes), "unanswered": self.unanswered, "latencyMs": stats}


class Soak:
    """The traffic: lanes with their own rates, all open loop."""

    def __init__(self, caller: Caller, until: float) -> None:
        self.caller = caller
        self.until = until
        self.tallies: dict[str, Tally] = {}
        self.skipped = 0
        self._n = 0

    async def _timed(
        self, name: str, suffix: str, payload: dict[str, Any]
    ) -> dict[str, Any] | None:
        tally = self.tallies.setdefault(name, Tally())
        started = time.perf_counter()
        replies = await self.caller.call(suffix, payload, timeout=60)
        return tally.add(replies, time.perf_counter() - started)

    async def lane(
        self, rate: float, make: Callable[[int], Awaitable[object]], max_pending: int = 64
    ) -> None:
        """Start ``make(i)`` ``rate`` times a second until the end; never wait for one."""
        loop = asyncio.get_running_loop()
        pending: set[asyncio.Task[object]] = set()
        start = loop.time()
        i = 0
        while loop.time() < self.until:
            if len(pending) < max_pending:
                task: asyncio.Task[object] = asyncio.ensure_future(make(i))
                pending.add(task)
                task.add_done_callback(pending.discard)
            else:
                self.skipped += 1
            i += 1
            await asyncio.sleep(max(0.0, start + i / rate - loop.time()))
        if pending:
            await asyncio.wait(pending)

    def rid(self, prefix: str) -> str:
        return self.caller.next_id(prefix)

    async def status(self, _i: int) -> object:
        return await self._timed("getStatus", "cmd/getStatus", {"requestId": self.rid("st")})

    async def deposit_status(self, _i: int) -> object:
        return await self._timed(
            "depositStatus", "dev/coinAcceptor/cmd/depositStatus", {"requestId": self.rid("ds")}
        )

    async def light(self, i: int) -> object:
        params = {
            "requestId": self.rid("li"),
            "position": POSITIONS[i % len(POSITIONS)],
            "mode": ("on", "off", "slowFlash")[(i // len(POSITIONS)) % 3],
        }
        return await self._timed("lights/set", "dev/lights/cmd/set", params)

    async def cut(self, _i: int) -> object:
        return await self._timed(
            "printer/cut", "dev/printer/cmd/cut", {"requestId": self.rid("cu")}
        )

    async def slip(self, _i: int) -> object:
        return await self._timed(
            "printer/printSlip", "dev/printer/cmd/printSlip", {"requestId": self.rid("sl"), **SLIP}
        )

    async def deposit(self, _i: int) -> object:
        started = await self._timed(
            "depositStart",
            "dev/coinAcceptor/cmd/depositStart",
            {"requestId": self.rid("dst"), "currency": "VND", "amountDue": 5000},
        )
        if started is None or started.get("completionCode") != "success":
            return None
        tx = started["result"]["transactionId"]
        return await self._timed(
            "depositEnd",
            "dev/coinAcceptor/cmd/depositEnd",
            {"requestId": self.rid("den"), "transactionId": tx},
        )

    async def run(self) -> None:
        await asyncio.gather(
            self.lane(25, self.status),
            self.lane(4, self.deposit_status),
            self.lane(15, self.light),
            self.lane(4, self.cut),
            self.lane(0.5, self.slip),
            # One deposit at a time: the acceptor has one transaction.
            self.lane(0.75, self.deposit, max_pending=1),
        )


async def sample_rss(pid: int, every: float, out: list[tuple[float, int]]) -> None:
    """Append ``(seconds since start, VmRSS KiB)`` every ``every`` seconds."""
    t0 = time.monotonic()
    while True:
        out.append((round(time.monotonic() - t0, 1), procs.rss_kib(pid)))
        await asyncio.sleep(every)


def slope_kib_per_min(samples: list[tuple[float, int]]) -> float:
    """Least-squares slope of RSS over time, KiB per minute."""
    if len(samples) < 2:
        return 0.0
    n = len(samples)
    mt = sum(t for t, _ in samples) / n
    mr = sum(r for _, r in samples) / n
    den = sum((t - mt) ** 2 for t, _ in samples)
    return 60 * sum((t - mt) * (r - mr) for t, r in samples) / den if den else 0.0


async def soak(minutes: float, warmup: float, every: float) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="kioskd-soak-") as tmp:
        xdg = Path(tmp)
        setup = procs.sim_setup(xdg)
        async with (
            procs.run_daemon(setup, xdg) as daemon,
            connect(daemon.port, BOARD, "soak-ui") as ui,
        ):
            await wait_ready(ui)
            samples: list[tuple[float, int]] = []
            sampler = asyncio.create_task(sample_rss(daemon.pid, every, samples))
            started = time.monotonic()
            async with watch_link(ui) as link:
                traffic = Soak(Caller(ui), asyncio.get_running_loop().time() + minutes * 60)
                await traffic.run()
                await asyncio.sleep(1)
            sampler.cancel()
            samples.append((round(time.monotonic() - started, 1), procs.rss_kib(daemon.pid)))
            after = [(t, r) for t, r in samples if t >= warmup * 60]
            warm = after[0][1] if after else samples[-1][1]
            return {
                "minutes": minutes,
                "warmupMinutes": warmup,
                "requests": sum(
                    sum(t.codes.values()) + t.unanswered for t in traffic.tallies.values()
                ),
                "ratePerSecond": round(
                    sum(sum(t.codes.values()) for t in traffic.tallies.values()) / (minutes * 60), 1
                ),
                "skippedOverloaded": traffic.skipped,
                "byKind": {k: t.as_json() for k, t in sorted(traffic.tallies.items())},
                "unanswered": sum(t.unanswered for t in traffic.tallies.values()),
                "reconnects": link.reconnects,
                "offlineWills": link.offline,
                "log": log_problems(daemon),
                "rssKiB": {
                    "start": samples[0][1],
                    "afterWarmup": warm,
                    "end": samples[-1][1],
                    "max": max(r for _, r in samples),
                    "growthAfterWarmup": samples[-1][1] - warm,
                    "slopeAfterWarmupKiBPerMin": round(slope_kib_per_min(after), 1),
                },
                "rssSamples": samples,
            }


def render(result: dict[str, Any]) -> str:
    rss = result["rssKiB"]
    lines = [
        (
            f"soak: {result['minutes']:g} min ({result['warmupMinutes']:g} warm-up), "
            f"{result['requests']} requests, {result['ratePerSecond']} answered/s"
        ),
        (
            f"  RSS KiB: start {rss['start']}, after warm-up {rss['afterWarmup']}, end {rss['end']}, "
            f"max {rss['max']}"
        ),
        (
            f"  growth after warm-up: {rss['growthAfterWarmup']} KiB "
            f"(slope {rss['slopeAfterWarmupKiBPerMin']} KiB/min)"
        ),
        (
            f"  unanswered {result['unanswered']}, reconnects {result['reconnects']}, "
            f"wills {result['offlineWills']}, skipped {result['skippedOverloaded']}, "
            f"log {result['log']}"
        ),
    ]
    for kind, tally in result["byKind"].items():
        lat = tally["latencyMs"] or {}
        lines.append(
            f"  {kind:20} {tally['codes']} unanswered {tally['unanswered']} "
            f"p50 {lat.get('p50')} ms p99 {lat.get('p99')} ms"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.soak", description=__doc__)
    parser.add_argument("--minutes", type=float, default=60.0, help="traffic duration")
    parser.add_argument("--warmup", type=float, default=3.0, help="minutes before RSS counts")
    parser.add_argument("--sample", type=float, default=10.0, help="RSS sample period, seconds")
    parser.add_argument("--out", type=Path, default=RESULTS / "soak.json", help="JSON results")
    args = parser.parse_args()
    print(f"[soak] {args.minutes:g} minutes at 50 requests/s", file=sys.stderr, flush=True)
    result = asyncio.run(soak(args.minutes, min(args.warmup, args.minutes), args.sample))
    print(render(result))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(f"  JSON: {args.out}")


if __name__ == "__main__":
    main()
