"""``python -m bench [--quick]``: measure, print one report, write bench/results/latest.json."""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import platform
import sys
from pathlib import Path
from typing import Any

from . import procs
from .measure import Plan, run_all
from .report import render, targets

RESULTS = Path(__file__).resolve().parent / "results"


def machine() -> dict[str, Any]:
    cpu = "unknown"
    for line in Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    return {
        "nproc": os.cpu_count(),
        "cpu": cpu,
        "kernel": platform.release(),
        "python": platform.python_version(),
        "mosquitto": procs.mosquitto_version(),
        "loadavg": Path("/proc/loadavg").read_text(encoding="ascii").split()[:3],
    }


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="100 round trips, 3 s idle window")
    parser.add_argument("--count", type=int, help="timed round trips per measurement")
    parser.add_argument(
        "--out", type=Path, default=RESULTS / "latest.json", help="JSON results file"
    )
    args = parser.parse_args()
    count = args.count or (100 if args.quick else 500)
    plan = Plan(
        count=count,
        warmup=20 if args.quick else 50,
        idle_s=3.0 if args.quick else 10.0,
        slow_pictures=1 if args.quick else 3,
    )

    def progress(text: str) -> None:
        print(f"[bench] {text}", file=sys.stderr, flush=True)

    meta = machine() | {
        "quick": args.quick,
        "count": plan.count,
        "warmup": plan.warmup,
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    }
    results = asyncio.run(run_all(plan, progress))
    meta["loadavgAfter"] = Path("/proc/loadavg").read_text(encoding="ascii").split()[:3]
    checked = targets(results)
    print(render(meta, results, checked))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    document = {"meta": meta, "results": results, "targets": [t.as_json() for t in checked]}
    args.out.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    print(f"  JSON: {args.out}")


if __name__ == "__main__":
    main()
