"""(f) Scan latency through the real serial driver: pty bytes written -> requester has the code.

The bench process creates a socat pty, starts the daemon as its own process
with the ``serial`` scanner driver on that pty (no wire simulator: the bench is
the scanner), switches continuous mode on and times each frame from the write
into the pty to the arrival of the ``scanned`` event reply on the ``setMode``'s
reply topic (continuous mode sends codes to its requester alone): socat,
the tty, the driver's framing and decoding, the daemon's publish, mosquitto
and the subscriber, i.e. what a UI sees after a person scans.

``python -m bench.scanner [--count N]`` runs it alone; ``python -m bench`` runs
it with the other measurements.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

from devices.sim.support.pty import PtyLine
from tests.uiclient import UiClient, connect

from . import procs
from .stats import Stats

BOARD = "bench-scan-0001"
#: A realistic dossier QR payload, with Vietnamese text (UTF-8, 80 bytes).
PAYLOAD = "000.00.12.H29-241123-{i:04d}|Nguyễn Văn Thứ|Cấp đổi căn cước"


def _config(tmp: Path, port: Path) -> Path:
    path = tmp / "kioskd-bench-scanner.toml"
    path.write_text(
        "\n".join(
            [
                "[board]",
                f'id = "{BOARD}"',
                "[broker]",
                "embedded = true",
                "[daemon]",
                f'state_dir = "{tmp / "state"}"',
                f'runtime_dir = "{tmp / "run"}"',
                "[devices.scanner]",
                'class = "scanner"',
                'driver = "serial"',
                f'port = "{port}"',
                "aim = true",
            ]
        )
        + "\n",
        encoding="utf-8",
    )
    return path


async def _online(ui: UiClient) -> None:
    """Wait until the daemon is subscribed and the scanner has opened its port."""
    async with ui.subscription(f"{ui.root}/dev/scanner/state") as states, asyncio.timeout(10):
        while (await states.get()).payload.get("state") != "online":
            pass


async def scan_latency(count: int, warmup: int) -> dict[str, Any]:
    """Time ``count`` scans (after ``warmup`` untimed ones); returns the stats in ms."""
    with tempfile.TemporaryDirectory(prefix="kioskd-bench-scan-") as tmp_name:
        tmp = Path(tmp_name)
        pair = PtyLine(tmp / "scanner.tty")
        await pair.start()
        try:
            setup = procs.SimSetup(
                ["run", "--config", str(_config(tmp, pair.driver_link))], ["scanner"]
            )
            async with (
                procs.run_daemon(setup, tmp) as daemon,
                connect(daemon.port, BOARD, "bench-scan") as ui,
            ):
                await _online(ui)
                mode = await ui.start(ui.request_topic("setMode", "scanner"), {"continuous": True})
                reply = await mode.completion()
                assert reply["completionCode"] == "success", reply
                samples: list[float] = []
                for i in range(warmup + count):
                    text = PAYLOAD.format(i=i)
                    frame = ("]Q1" + text + "\r").encode()
                    began = time.perf_counter()
                    pair.write(frame)
                    while (await mode.next(5))["data"]["text"] != text:
                        pass
                    if i >= warmup:
                        samples.append(time.perf_counter() - began)
                    await asyncio.sleep(0.005)  # scans are never back to back
        finally:
            await pair.stop()
    return asdict(Stats.of(samples)) | {"frameBytes": len(frame)}


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.scanner", description=__doc__)
    parser.add_argument("--count", type=int, default=500)
    args = parser.parse_args()
    stats = asyncio.run(scan_latency(args.count, max(20, args.count // 10)))
    print(
        f"scanner pty -> scanned reply, {stats['n']} scans of {stats['frameBytes']} bytes: "
        f"p50 {stats['p50']:.2f} ms, p99 {stats['p99']:.2f} ms, max {stats['max']:.2f} ms "
        f"(target p99 <= 5 ms)",
        file=sys.stdout,
    )


if __name__ == "__main__":
    main()
