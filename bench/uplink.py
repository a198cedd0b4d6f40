"""``python -m bench.uplink``: uplink outbox replay throughput, peak RSS and storage writes per day.

1. Replay: 86 400 health messages (24 h at 1/s, real Health payloads of the sim
   board) are written to a fresh outbox while offline; then one connection
   replays them to a standalone mosquitto (plain TCP, loopback) with no rate cap.
   A ``mosquitto_sub`` in another process counts them; the time is from connect
   to the last PUBACK (outbox empty).  Peak RSS is this process's VmHWM, reset
   after the fill so the replay's own peak is reported.
2. Storage: the connected steady state (append, publish, PUBACK, delete) for
   N messages, measured as bytes written by syscalls (``wchar``) and bytes sent
   to the block layer (``write_bytes``) from /proc/self/io, scaled to a day at
   the default 30 s health interval and at 1 s.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiomqtt

from daemon.config import sim_config
from daemon.fleet_topics import FleetTopics
from daemon.mqtt.codec import MSGPACK_CODEC
from daemon.mqtt.link import NODELAY, publish_properties
from daemon.uplink.observe import DeviceWatch
from daemon.uplink.outbox import Outbox, Row
from daemon.uplink.schema import Health, OutboxHealth
from daemon.uplink.session import Session
from daemon.uplink.sysinfo import SystemProbe
from devices.base import DeviceState, Message
from devices.runtime.clock import now_ms

from .procs import broker

RESULTS = Path(__file__).resolve().parent / "results"


def proc_io() -> dict[str, int]:
    fields = {}
    for line in Path("/proc/self/io").read_text(encoding="ascii").splitlines():
        key, _, value = line.partition(":")
        fields[key] = int(value)
    return fields


def vm_hwm_kib() -> int:
    for line in Path("/proc/self/status").read_text(encoding="ascii").splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


class _Detail(Message):
    paper: str = "full"
    cover: str = "closed"


def health_factory(tmp: Path) -> tuple[FleetTopics, Any]:
    """A function making realistic health messages of the sim board (9 devices)."""
    config = sim_config()
    watch = DeviceWatch({d.id: d.device_class for d in config.devices}, lambda _o: None)
    for device in config.devices:
        watch.device_state(device.id, DeviceState.ONLINE, _Detail())
    system = SystemProbe(tmp).sample()
    topics = FleetTopics(config.board.tenant, config.board.id)

    def make(outbox: Outbox) -> Row:
        health = Health(
            msg_id=outbox.next_id(), ts=now_ms(), board=config.board.id, tenant=config.board.tenant,
            session="0123456789abcdef", status="ready", reasons=[], uptime_s=86_399.5,
            clock_synced=True, devices=watch.health(),
            outbox=OutboxHealth(messages=86_399, bytes=110_000_000, dropped=0, oldest_ts=now_ms()),
            system=system, cert_not_after=now_ms() + 300 * 86_400_000, cert_days_left=300.0,
        )  # fmt: skip
        return Row(health.msg_id, health.ts, topics.health, MSGPACK_CODEC.encode(health))

    return topics, make


async def replay(count: int, inflight: int, tmp: Path) -> dict[str, Any]:
    topics, make = health_factory(tmp)
    outbox = Outbox(tmp / "replay.sqlite3", max_bytes=1 << 30, max_age_s=7 * 86_400)
    await outbox.open()
    started = time.perf_counter()
    for start in range(0, count, 1000):
        await asyncio.gather(
            *(outbox.append(make(outbox)) for _ in range(min(1000, count - start)))
        )
    fill_s = time.perf_counter() - started
    fill_peak = vm_hwm_kib()
    Path("/proc/self/clear_refs").write_text("5", encoding="ascii")  # noqa: ASYNC240 - resets VmHWM
    stats = await outbox.stats()
    db_bytes = await asyncio.to_thread(
        lambda: sum(p.stat().st_size for p in tmp.glob("replay.sqlite3*"))
    )
    with broker() as fleet:
        sub = await asyncio.create_subprocess_exec(
            "mosquitto_sub", "-p", str(fleet.port), "-q", "1", "-t", topics.health, "-C", str(count),
            stdout=subprocess.DEVNULL,
        )  # fmt: skip
        await asyncio.sleep(0.5)
        new_rows = asyncio.Event()
        async with aiomqtt.Client(
            "127.0.0.1", fleet.port, identifier="bench-uplink", protocol=aiomqtt.ProtocolVersion.V5,
            socket_options=[NODELAY], max_inflight_messages=inflight,
        ) as client:  # fmt: skip
            client.pending_calls_threshold = inflight + 16
            session = Session(
                client, outbox, publish_properties(MSGPACK_CODEC.content_type),
                inflight=inflight, replay_rate=0, new_rows=new_rows,
            )  # fmt: skip
            backlog = await outbox.last_id()
            started = time.perf_counter()
            cpu0 = time.process_time()
            task = asyncio.create_task(session.run(backlog))
            while (await outbox.stats()).messages:  # noqa: ASYNC110 - polls SQLite
                await asyncio.sleep(0.05)
            elapsed = time.perf_counter() - started
            cpu = time.process_time() - cpu0
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        delivered = await asyncio.wait_for(sub.wait(), 60) == 0
    await outbox.close()
    return {
        "messages": count,
        "inflight": inflight,
        "payloadBytes": stats.bytes // count,
        "outboxFileBytes": db_bytes,
        "fillSeconds": round(fill_s, 2),
        "replaySeconds": round(elapsed, 2),
        "messagesPerSecond": round(count / elapsed),
        "replayCpuSeconds": round(cpu, 2),
        "messagesPerCpuSecond": round(count / cpu),
        "loadavg": os.getloadavg(),
        "subscriberGotAll": delivered,
        "fillPeakRssMiB": round(fill_peak / 1024, 1),
        "replayPeakRssMiB": round(vm_hwm_kib() / 1024, 1),
    }


async def storage(count: int, tmp: Path) -> dict[str, Any]:
    """Connected steady state: each message appended, then deleted on its own after its PUBACK."""
    _, make = health_factory(tmp)
    outbox = Outbox(tmp / "steady.sqlite3", max_bytes=1 << 30, max_age_s=7 * 86_400)
    await outbox.open()
    before = proc_io()
    size = 0
    for _ in range(count):
        row = make(outbox)
        size += len(row.payload)
        await outbox.append(row)
        await outbox.delete([row.id])
    after = proc_io()
    await outbox.close()
    wchar = after["wchar"] - before["wchar"]
    block = after["write_bytes"] - before["write_bytes"]
    per_message = wchar / count
    return {
        "messages": count,
        "payloadBytesPerMessage": size // count,
        "wcharPerMessage": round(per_message),
        "blockBytesPerMessage": round(block / count),
        "wcharPerDayAt30sMiB": round(per_message * 2880 / 2**20, 1),
        "wcharPerDayAt1sMiB": round(per_message * 86_400 / 2**20, 1),
        "payloadPerDayAt30sMiB": round(size / count * 2880 / 2**20, 2),
    }


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="kioskd-bench-uplink-", dir=args.dir) as tmp:
        results = {"storage": await storage(args.steady, Path(tmp))}
        print(f"[bench] storage: {results['storage']}", file=sys.stderr, flush=True)
        results["replay"] = await replay(args.count, args.inflight, Path(tmp))
        print(f"[bench] replay: {results['replay']}", file=sys.stderr, flush=True)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.uplink", description=__doc__)
    parser.add_argument("--count", type=int, default=86_400, help="queued messages to replay")
    parser.add_argument("--inflight", type=int, default=64, help="publishes awaiting PUBACK")
    parser.add_argument("--steady", type=int, default=2000, help="messages in the storage run")
    parser.add_argument("--dir", default=None, help="where the outbox lives (default: $TMPDIR)")
    args = parser.parse_args()
    results = asyncio.run(main_async(args))
    print(json.dumps(results, indent=2))
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "uplink.json").write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
