"""The fleet side: the model's rules, the Prometheus exporter against a real daemon, the watch table."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

import msgspec
from rich.console import Console

from daemon.broker import free_port
from daemon.fleet.exporter import run_exporter
from daemon.fleet.feed import FleetBroker
from daemon.fleet.model import FleetModel, Outcome
from daemon.fleet.watch import render
from tests.conftest import Broker, run_daemon
from tests.uplink.conftest import FLEET_ROOT, OPERATOR, Pki, uplink_config

MSGPACK = "application/msgpack"


def stamped(msg_id: int, seq: int, ts: int, **data: object) -> bytes:
    return msgspec.msgpack.encode({"msgId": msg_id, "seq": seq, "ts": ts, **data})


def test_model_dedupes_by_msg_id_and_never_goes_back_in_time() -> None:
    model = FleetModel()
    birth = msgspec.msgpack.encode({"bdSeq": 7, "seq": 0, "ts": 1000, "healthIntervalS": 30})
    assert model.ingest(f"{FLEET_ROOT}/birth", birth, MSGPACK, now=10) is Outcome.ACCEPTED
    newer = stamped(2, 1, 3000, status="ready")
    assert model.ingest(f"{FLEET_ROOT}/health", newer, MSGPACK, now=11) is Outcome.ACCEPTED
    assert model.ingest(f"{FLEET_ROOT}/health", newer, MSGPACK, now=12) is Outcome.DUPLICATE
    older = stamped(1, 2, 2000, status="degraded", replay=True)
    assert model.ingest(f"{FLEET_ROOT}/health", older, MSGPACK, now=13) is Outcome.STALE
    board = next(iter(model.boards.values()))
    assert board.health is not None
    assert board.health["status"] == "ready"
    # A feed that reconnects gets the retained birth again mid-stream: not a new connection.
    assert model.ingest(f"{FLEET_ROOT}/birth", birth, MSGPACK, now=13) is Outcome.DUPLICATE
    assert board.last_seq == 2
    assert board.seq_gaps == 0
    event = stamped(3, 4, 4000, device="printer", kind="paperLow")  # seq 3 went missing
    model.ingest(f"{FLEET_ROOT}/event/paperLow", event, MSGPACK, now=14)
    model.ingest(f"{FLEET_ROOT}/event/paperLow", event, MSGPACK, now=14)
    assert board.events[("printer", "paperLow")] == 1
    assert board.seq_gaps == 1
    assert board.up
    late_will = msgspec.msgpack.encode({"bdSeq": 6, "ts": 900})
    assert model.ingest(f"{FLEET_ROOT}/death", late_will, MSGPACK, now=14) is Outcome.STALE
    assert board.up
    assert not board.silent(now=14 + 60)
    assert board.silent(now=14 + 91)
    death = msgspec.msgpack.encode({"bdSeq": 7, "ts": 5000})
    assert model.ingest(f"{FLEET_ROOT}/death", death, MSGPACK, now=14) is Outcome.ACCEPTED
    assert not board.up
    console = Console(record=True, width=140)
    console.print(render(model, now=20))
    text = console.export_text()
    assert "demo/sim-0001" in text
    assert "DEAD" in text


async def scrape(port: int) -> str:
    def get() -> str:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
            return response.read().decode()

    return await asyncio.to_thread(get)


async def wait_metric(port: int, line: str, timeout: float = 10.0) -> str:
    async with asyncio.timeout(timeout):
        while True:
            text = await scrape(port)
            if line in text:
                return text
            await asyncio.sleep(0.1)


def operator(fleet_broker: Broker, pki: Pki) -> FleetBroker:
    return FleetBroker(
        url=f"mqtts://127.0.0.1:{fleet_broker.port}",
        ca_file=str(pki.ca),
        cert_file=str(pki.operator.cert),
        key_file=str(pki.operator.key),
        client_id=f"{OPERATOR}-exporter",
    )


@contextlib.asynccontextmanager
async def exporter(fleet_broker: Broker, pki: Pki, share_group: str | None = None):  # type: ignore[no-untyped-def]
    port = free_port()
    ready = asyncio.Event()
    task = asyncio.create_task(
        run_exporter(
            operator(fleet_broker, pki), f"127.0.0.1:{port}", share_group=share_group, ready=ready
        )
    )
    try:
        async with asyncio.timeout(10):
            await ready.wait()
        yield port
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


BOARD_LABELS = 'board="sim-0001",tenant="demo"'


async def test_exporter_metrics_and_clean_death(
    broker: Broker, fleet_broker: Broker, pki: Pki, tmp_path: Path
) -> None:
    config = uplink_config(broker.port, fleet_broker.port, tmp_path, pki, health_interval_s=0.2)
    async with exporter(fleet_broker, pki, share_group="exporters") as port:
        async with run_daemon(config):
            text = await wait_metric(port, f"kiosk_up{{{BOARD_LABELS}}} 1.0")
            text = await wait_metric(
                port,
                'kiosk_device_state{board="sim-0001",class="printer",device="printer",state="online",tenant="demo"} 1.0',
            )
            assert f"kiosk_outbox_messages{{{BOARD_LABELS}}}" in text
            assert f"kiosk_cert_days_left{{{BOARD_LABELS}}}" in text
            assert (
                'kiosk_device_fact{board="sim-0001",class="printer",device="printer",fact="paper",tenant="demo",value="full"} 1.0'
                in text
            )
            assert 'kiosk_info{board="sim-0001",config_hash=' in text
        await wait_metric(port, f"kiosk_up{{{BOARD_LABELS}}} 0.0")


async def test_death_by_last_will_flips_up(
    broker: Broker, fleet_broker: Broker, pki: Pki, tmp_path: Path
) -> None:
    """A daemon killed with SIGKILL: the broker publishes its will, the exporter sees the board down."""
    config = uplink_config(broker.port, fleet_broker.port, tmp_path, pki, keepalive=5)
    toml = tmp_path / "kioskd.toml"
    up = config.uplink
    toml.write_text(
        f"""
[board]
id = "sim-0001"
tenant = "demo"
[mqtt]
port = {broker.port}
[daemon]
state_dir = "{tmp_path / "state"}"
runtime_dir = "{tmp_path / "run"}"
[uplink]
enabled = true
url = "{up.url}"
ca_file = "{up.ca_file}"
cert_file = "{up.cert_file}"
key_file = "{up.key_file}"
health_interval_s = 0.5
[devices.printer]
class = "printer"
driver = "sim"
""",
        encoding="utf-8",
    )
    async with exporter(fleet_broker, pki) as port:
        proc = subprocess.Popen(
            [sys.executable, "-m", "daemon", "run", "--config", str(toml)],
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        try:
            await wait_metric(port, f"kiosk_up{{{BOARD_LABELS}}} 1.0", timeout=20)
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(5)
            # The broker notices the dead TCP connection at once (RST) and sends the will.
            await wait_metric(port, f"kiosk_up{{{BOARD_LABELS}}} 0.0", timeout=15)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
