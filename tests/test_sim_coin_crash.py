"""``kioskd run --sim``'s ccTalk acceptor outlives a crashed daemon, as a real one does.

The emulated acceptor runs in a process of its own: ``kill -9`` of the daemon
leaves it with its event buffer, the next start finds it again, and the
ledger's recovery reads its real counter.  A graceful stop takes it down.  The
simulator's own tests: a stale record is cleaned, changed settings start a new
device, a device whose board state was removed stops by itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import time
from pathlib import Path

import aiomqtt
import msgspec

from devices.base import DeviceEnv
from devices.coin_acceptor.cctalk_acceptor import CctalkSettings
from devices.sim.coin_acceptor.actions import InsertCoinParams
from devices.sim.coin_acceptor.cctalk import CctalkSimulator, control_path
from tests.contract.support import events, ok, state
from tests.support import RecordingHost
from tests.test_shutdown import BAD_LINE, BOARD, assert_clean, kioskd_sim
from tests.uiclient import connect

DEV = "coinAcceptor"


def device_pid(tmp_path: Path) -> int:
    """The acceptor process named in its state file under the daemon's state dir."""
    record = tmp_path / "state" / "sim-cctalk" / DEV / "device.json"
    pid: int = json.loads(record.read_text(encoding="utf-8"))["pid"]
    return pid


def running(pid: int) -> bool:
    """True while ``pid`` runs (a zombie waiting for its reaper counts as gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text(encoding="ascii")
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def gone_within(pid: int, timeout: float) -> bool:
    until = time.monotonic() + timeout
    while running(pid):
        if time.monotonic() > until:
            return False
        time.sleep(0.02)
    return True


async def test_a_killed_daemon_finds_the_acceptor_and_its_buffer_again(tmp_path: Path) -> None:
    with kioskd_sim(tmp_path, "crashed") as first:
        await asyncio.to_thread(first.wait_log, " ready: board ")
        with contextlib.suppress(aiomqtt.MqttError):  # the broker dies with the daemon
            async with connect(first.port, BOARD, "kiosk-ui") as ui, events(ui, DEV) as evt:
                started = ok(
                    await ui.device(DEV, "depositStart", {"currency": "VND", "timeoutMs": 120_000})
                )
                tx = started["transactionId"]
                await ui.sim(DEV, "insertCoin", {"value": 2000})
                assert (await evt.next("coinAccepted", timeout=3))["data"]["total"] == 2000
                # In the acceptor's buffer, not yet polled by the daemon that dies now.
                await ui.sim(DEV, "insertCoin", {"value": 5000})
                first.proc.kill()
                first.proc.wait()
    crashed_device = device_pid(tmp_path)
    assert running(crashed_device), "the acceptor went down with the daemon"

    with kioskd_sim(tmp_path, "restarted") as second:
        await asyncio.to_thread(second.wait_log, " ready: board ")
        async with connect(second.port, BOARD, "kiosk-ui") as ui:
            await state(ui, DEV, lambda s: s["state"] == "online", timeout=10)
            pending = ok(await ui.device(DEV, "depositStatus", {}))["transactions"]
            assert [(t["transactionId"], t["state"]) for t in pending] == [(tx, "unknown")]
            (recovered,) = pending
            assert [c["value"] for c in recovered["coins"]] == [2000, 5000]
            assert recovered["total"] == 7000
            assert recovered["lostEvents"] == 0
            assert recovered["lostUnknown"] is False
        assert device_pid(tmp_path) == crashed_device, "a new acceptor process was started"
        assert "buffered while the daemon was down" in second.text()
        bad = [line for line in second.text().splitlines() if BAD_LINE.search(line)]
        assert not bad, second.text()

        assert_clean(second, *second.terminate())
    assert gone_within(crashed_device, 2.0), "a graceful stop left the acceptor running"
    assert not (tmp_path / "state" / "sim-cctalk" / DEV / "device.json").exists()


def simulator(tmp_path: Path, coins: tuple[int, ...] = (1000, 2000, 5000)) -> CctalkSimulator:
    env = DeviceEnv("b-1", tmp_path / "state", tmp_path / "run")
    sim = CctalkSimulator(DEV, RecordingHost(), env)
    sim.driver_settings(msgspec.convert({"coins": list(coins)}, CctalkSettings))
    return sim


async def test_a_stale_record_and_socket_are_replaced(tmp_path: Path) -> None:
    dead = await asyncio.create_subprocess_exec("true")
    await dead.wait()
    sim = simulator(tmp_path)
    sim.folder.mkdir(parents=True)
    control = control_path(sim.folder)
    record = sim.folder / "device.json"
    record.write_text(json.dumps({"pid": dead.pid, "control": str(control)}), encoding="utf-8")
    with socket.socket(socket.AF_UNIX) as stale:  # bound, then closed: nobody answers
        stale.bind(str(control))
    try:
        await sim.start()
        assert sim.pid not in (None, dead.pid)
        assert json.loads(record.read_text(encoding="utf-8"))["pid"] == sim.pid
        await sim.sim_insert_coin(InsertCoinParams(value=1000))  # inhibited: given back
        assert len(sim.host.outputs) == 1  # type: ignore[attr-defined]
    finally:
        await sim.aclose()
    assert sim.pid is not None
    assert not running(sim.pid)
    assert not record.exists()
    assert not control.exists()


async def test_a_left_device_is_adopted_unless_its_settings_changed(tmp_path: Path) -> None:
    first = simulator(tmp_path)
    await first.start()
    left = first.pid
    assert left is not None
    try:
        # A crashed run: the device stays.  The same settings find it again...
        again = simulator(tmp_path)
        await again.start()
        assert again.pid == left
        # ... other coins do not: it is stopped and a new one serves the new table.
        changed = simulator(tmp_path, coins=(500, 1000))
        await changed.start()
        assert changed.pid != left
        assert await asyncio.to_thread(gone_within, left, 3.0)
        # Its board's state removed, a device left behind stops by itself.
        assert changed.pid is not None
        (changed.folder / "device.json").unlink()
        assert await asyncio.to_thread(gone_within, changed.pid, 4.0)
    finally:
        for pid in (left, changed.pid):
            if pid is not None and running(pid):
                os.kill(pid, signal.SIGKILL)
