"""Slip printing: render time per paper width, and one slip through the escpos driver.

``python -m bench.slip [--count N]`` prints these alone; ``python -m bench`` includes them.

- render: :func:`devices.printer.slip.render_slip` of the appointment template
  (Vietnamese text, QR code), in this thread, after warm-up (fonts and the
  template are cached after the first slip, as in the daemon);
- print: ``print_slip`` through the real ``escpos`` driver to its wire simulator
  on loopback TCP: render, ESC/POS encoding, status before, sending ~72 KB,
  ``GS r 1`` confirmation, status after, the simulator decoding and PNG-encoding
  the slip.  The simulator runs on the same event loop, so this is CPU on one
  core more than printer time (a real 80 mm printer needs ~0.5 s per slip).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import tempfile
import time
from collections.abc import AsyncIterator
from dataclasses import asdict
from pathlib import Path
from typing import Any

import msgspec

from devices.base import CommandContext, DeviceState, Message, NoParams
from devices.printer import slip
from devices.printer.escpos import EscposPrinter, EscposSettings
from devices.printer.protocol import PrintSlipParams
from devices.sim.printer.escpos import EscposPrinterSimulator
from devices.supervisor import supervise

from .stats import Stats

FIELDS: dict[str, str | int] = {
    "office": "Ủy ban nhân dân Phường Bến Nghé, Quận 1",
    "procedure": "Cấp đổi căn cước công dân",
    "dossierCode": "000.00.12.H29-250314-0001",
    "citizenName": "Nguyễn Văn Thử",
    "submittedAt": "2025-03-14T09:15",
    "appointmentDate": "2025-03-21",
    "counter": "Quầy số 3",
    "qr": "https://dichvucong.example.vn/tra-cuu/000.00.12.H29-250314-0001",
}
WARMUP = 5


class _Host:
    """Where the benchmarked driver and simulator report: only "online" is kept."""

    def __init__(self) -> None:
        self.online = asyncio.Event()

    def device_state(self, _device_id: str, state: DeviceState, _detail: Message) -> None:
        if state is DeviceState.ONLINE:
            self.online.set()

    def device_event(self, device_id: str, event: str, data: Message) -> None:
        """Drop."""

    def sim_output(self, device_id: str, what: str, data: Message) -> None:
        """Drop."""


def render_times(width: int, count: int) -> dict[str, Any]:
    for _ in range(WARMUP):
        slip.render_slip("appointment", FIELDS, width)
    samples = []
    cpu0 = time.thread_time()
    for _ in range(count):
        t0 = time.perf_counter()
        slip.render_slip("appointment", FIELDS, width)
        samples.append(time.perf_counter() - t0)
    # CPU per slip tells a busy machine (wall time waits for a core) from slow code.
    cpu_ms = round((time.thread_time() - cpu0) * 1000 / count, 2)
    return asdict(Stats.of(samples)) | {"cpuMsMean": cpu_ms}


@contextlib.asynccontextmanager
async def _printer() -> AsyncIterator[EscposPrinter]:
    """The real ``escpos`` driver, online, on its wire simulator (loopback TCP, this loop)."""
    from devices.base import DeviceEnv  # noqa: PLC0415 - keeps the module's imports short

    with tempfile.TemporaryDirectory(prefix="kioskd-bench-slip-") as tmp:
        env = DeviceEnv("bench-0001", Path(tmp), Path(tmp))
        host = _Host()
        sim = EscposPrinterSimulator("printer", host, env)
        config = msgspec.convert({"host": "127.0.0.1", "poll_ms": 60_000}, EscposSettings)
        settings = sim.driver_settings(config)
        assert isinstance(settings, EscposSettings)
        await sim.start()
        device = EscposPrinter("printer", host, env, settings)
        task = asyncio.create_task(supervise(device))
        try:
            await asyncio.wait_for(host.online.wait(), 10)
            yield device
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            await device.aclose()
            await sim.aclose()


async def _execute_times(
    device: EscposPrinter, command: str, params: Message, count: int, warmup: int
) -> dict[str, Any]:
    """``device.execute(command)`` ``count`` times after ``warmup``: ms stats and CPU per call.

    ``execute`` is what the daemon's request lifecycle runs for a command (the
    readiness check, with its status read, then the command).
    """
    loop = asyncio.get_running_loop()
    samples = []
    cpu0 = 0.0
    for i in range(warmup + count):
        if i == warmup:
            cpu0 = time.process_time()
        ctx = CommandContext(f"b{i}", "bench", loop.time() + 30, lambda _n, _d: None)
        t0 = time.perf_counter()
        await device.execute(command, params, ctx)
        if i >= warmup:
            samples.append(time.perf_counter() - t0)
    cpu_ms = round((time.process_time() - cpu0) * 1000 / count, 3)
    return asdict(Stats.of(samples)) | {"cpuMsMean": cpu_ms}


async def print_times(count: int) -> dict[str, Any]:
    """``printSlip`` of the appointment slip through the driver to its simulator."""
    async with _printer() as device:
        params = PrintSlipParams(template="appointment", fields=FIELDS)
        return await _execute_times(device, "printSlip", params, count, WARMUP)


async def cut_times(count: int, warmup: int) -> dict[str, Any]:
    """``cut`` through the driver to its simulator: the device I/O of the daemon's cut.

    The same driver, simulator and settings as ``printer/cut`` in the daemon
    round trips, with no daemon around them: what a cut costs before the
    request lifecycle, the idempotency record and MQTT add theirs.
    """
    async with _printer() as device:
        return await _execute_times(device, "cut", NoParams(), count, warmup)


async def measure(count: int, cuts: int, warmup: int) -> dict[str, Any]:
    """Render times at 384 and 576 dots; print and cut times through the driver (ms stats)."""
    return {
        "render384": render_times(384, count),
        "render576": render_times(576, count),
        "print576": await print_times(max(10, count // 5)),
        "cut": await cut_times(cuts, warmup),
    }


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.slip", description=__doc__)
    parser.add_argument("--count", type=int, default=100, help="timed slips per measurement")
    args = parser.parse_args()
    print(json.dumps(asyncio.run(measure(args.count, args.count, WARMUP)), indent=2))


if __name__ == "__main__":
    main()
