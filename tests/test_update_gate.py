"""The update health gate (kioskd update gate) against a real daemon on a real broker.

It passes only for this version's daemon in state ready that answers getStatus,
also when it starts before the daemon (the restarted daemon publishes its status
after the gate subscribed: the case that kept a first version of the gate waiting
until its window ran out); a status of another version fails it with what it saw.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import msgspec
import pytest

from daemon import __version__
from daemon.update.gate import GateError, check
from tests.conftest import Broker, make_config, run_daemon


async def test_gate_started_before_the_daemon_passes_once_it_is_ready(
    broker: Broker, tmp_path: Path
) -> None:
    config = make_config(broker.port, tmp_path)
    gate = asyncio.create_task(check(config, "unused", window_s=30))
    await asyncio.sleep(1.0)  # the gate is subscribed, no status yet
    assert not gate.done()
    async with run_daemon(config):
        summary = await gate
    assert summary == f"ready, answering (version {__version__}; no uplink)"


async def test_gate_fails_with_what_it_saw(
    broker: Broker, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = make_config(broker.port, tmp_path)
    monkeypatch.setattr("daemon.update.gate.__version__", "9.9.9")  # the gate of another version
    async with run_daemon(config):
        with pytest.raises(GateError) as failed:
            await check(config, "unused", window_s=3)
    assert "ready not reached within 3 s" in str(failed.value)
    assert f"of version {__version__}" in str(failed.value)


async def test_gate_waits_for_the_fleet_birth_of_this_session(
    broker: Broker, tmp_path: Path
) -> None:
    config = make_config(broker.port, tmp_path)
    uplink = msgspec.structs.replace(config.uplink, enabled=True)
    gated = config.replace(uplink=uplink)
    async with run_daemon(config) as daemon:
        with pytest.raises(GateError) as failed:
            await check(gated, "unused", window_s=3)
        assert "fleet birth not reached" in str(failed.value)
        record = Path(config.daemon.runtime_dir) / "uplink-birth.json"
        record.write_text(
            f'{{"version": "{__version__}", "session": "{daemon.app.session}", "bdSeq": 3}}'
        )
        summary = await check(gated, "unused", window_s=10)
    assert summary.startswith("ready, answering, birth sent")
