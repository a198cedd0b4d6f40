"""Where the daemon's time goes per request: cProfile of an in-process daemon.

``python -m bench.profile [TARGET] [--count N] [--top N]``, TARGET one of
``getStatus`` (default), ``lights/set``, ``printer/cut``, ``scan`` (sim scan in
continuous mode: the code goes to the driver as a ``scanned`` event reply).  The daemon runs in this process on a standalone mosquitto,
profiled with a per-thread CPU clock, while a driver subprocess
(``--drive``) sends the requests one after another, as the benchmark does.
The SQLite writer thread of the idempotency store is not profiled.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import io
import pstats
import subprocess
import sys
import tempfile
import time
from typing import Any

import msgspec

from daemon.api.schema import DaemonState
from daemon.app import App
from daemon.config import sim_config
from tests.uiclient import connect

from . import procs
from .stats import Stats

BOARD = "sim-0001"
TARGETS: dict[str, tuple[str, dict[str, Any]]] = {
    "getStatus": ("cmd/getStatus", {}),
    "lights/set": ("dev/lights/cmd/set", {"position": "scanner", "mode": "on"}),
    "printer/cut": ("dev/printer/cmd/cut", {}),
    "scan": ("sim/scanner/scan", {"text": "PROFILE"}),
}


async def drive(port: int, target: str, count: int) -> None:
    """The driver process: ``count`` sequential requests; prints latency stats as JSON."""
    suffix, params = TARGETS[target]
    async with connect(port, BOARD, "profile-ui") as ui:
        topic = f"{ui.root}/{suffix}"
        if target == "scan":
            await ui.device("scanner", "setMode", {"continuous": True})
        samples: list[float] = []
        for _ in range(count):
            t0 = time.perf_counter()
            reply = await ui.call(topic, params)
            samples.append(time.perf_counter() - t0)
            if reply["completionCode"] != "success":
                raise RuntimeError(f"{target}: {reply}")
    stats = Stats.of(samples)
    print(f"p50 {stats.p50:.2f} ms, p99 {stats.p99:.2f} ms")


async def profile(target: str, count: int, top: int) -> None:
    with procs.broker() as broker, tempfile.TemporaryDirectory(prefix="kioskd-profile-") as tmp:
        cfg = sim_config()
        cfg = cfg.replace(
            mqtt=msgspec.structs.replace(cfg.mqtt, port=broker.port),
            daemon=msgspec.structs.replace(
                cfg.daemon, state_dir=f"{tmp}/state", runtime_dir=f"{tmp}/run"
            ),
            broker=msgspec.structs.replace(cfg.broker, embedded=False),
        )
        app = App(cfg)
        stop = asyncio.Event()
        task = asyncio.create_task(app.run(stop))
        async with asyncio.timeout(15):
            while app.status().state not in (DaemonState.READY, DaemonState.DEGRADED):  # noqa: ASYNC110 - no event to wait on
                await asyncio.sleep(0.01)
        await asyncio.sleep(0.5)
        # Warm-up outside the profile, then the profiled run.
        await _run_driver(broker.port, target, max(count // 10, 20))
        profiler = cProfile.Profile(time.thread_time)
        cpu0 = time.thread_time()
        profiler.enable()
        latency = await _run_driver(broker.port, target, count)
        profiler.disable()
        cpu_ms = (time.thread_time() - cpu0) * 1000 / count
        stop.set()
        await asyncio.wait_for(task, 10)
    print(f"{target}: {count} requests; the driver saw {latency} (slowed by the profiler)")
    print(f"daemon event-loop thread CPU: {cpu_ms:.3f} ms per request (profiler overhead included)")
    for key in ("tottime", "cumulative"):
        out = io.StringIO()
        stats = pstats.Stats(profiler, stream=out)
        stats.strip_dirs().sort_stats(key).print_stats(top)
        print(f"\n--- top {top} by {key} ---")
        print(out.getvalue().split("\n\n", 2)[-1].rstrip())


async def _run_driver(port: int, target: str, count: int) -> str:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bench.profile",
        "--drive",
        str(port),
        target,
        "--count",
        str(count),
        cwd=procs.REPO,
        stdout=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
    )
    out, _ = await proc.communicate()
    if proc.returncode != 0:
        raise RuntimeError(f"driver failed ({proc.returncode})")
    return out.decode().strip()


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.profile", description=__doc__)
    parser.add_argument("target", nargs="?", default="getStatus", choices=sorted(TARGETS))
    parser.add_argument("--count", type=int, default=2000)
    parser.add_argument("--top", type=int, default=30)
    parser.add_argument("--drive", type=int, metavar="PORT", help=argparse.SUPPRESS)
    args = parser.parse_args()
    with contextlib.suppress(KeyboardInterrupt):
        if args.drive:
            asyncio.run(drive(args.drive, args.target, args.count))
        else:
            asyncio.run(profile(args.target, args.count, args.top))


if __name__ == "__main__":
    main()
