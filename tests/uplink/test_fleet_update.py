"""The fleet ``update {version}`` command and the update state upstream, through both brokers.

The daemon only hands a version to the root updater (a request file its path unit
watches); a malformed version (a URL, a path, options) is refused before anything
is written.  Birth and health carry the updater's last outcome; each acknowledged
birth is recorded for the update's health gate.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path

import msgspec
import pytest
from prometheus_client import CollectorRegistry, generate_latest
from rich.console import Console

from daemon import __version__
from daemon.fleet.exporter import FleetCollector
from daemon.fleet.model import FleetModel
from daemon.fleet.watch import render
from daemon.update import updater
from tests.conftest import Broker, run_daemon
from tests.uplink.conftest import FLEET_ROOT, Pki, fleet_spy, uplink_config

MSGPACK = "application/msgpack"


async def test_update_request_reaches_the_updater_only_as_a_version(
    broker: Broker, fleet_broker: Broker, pki: Pki, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    status = tmp_path / "update-status.json"
    status.write_text(
        json.dumps({"state": "rolledBack", "version": "0.1.0", "target": "0.2.0",
                    "reason": "health gate: status degraded", "requestId": "u0"})
    )  # fmt: skip
    monkeypatch.setattr(updater, "STATUS", status)
    config = uplink_config(broker.port, fleet_broker.port, tmp_path, pki, commands=["update"])
    request = Path(config.daemon.runtime_dir) / updater.REQUEST
    async with fleet_spy(fleet_broker.port, pki) as spy, run_daemon(config) as daemon:
        assert daemon.app.uplink is not None
        await daemon.app.uplink.connected.wait()
        await spy.wait_for(lambda: spy.of("birth"))
        birth = spy.of("birth")[0].data
        assert birth["update"]["state"] == "rolledBack"
        assert birth["update"]["reason"] == "health gate: status degraded"
        recorded = json.loads((Path(config.daemon.runtime_dir) / updater.BIRTH_FILE).read_text())
        assert recorded == {"version": __version__, "session": birth["session"],
                            "bdSeq": birth["bdSeq"]}  # fmt: skip

        for n, bad in enumerate(["https://evil.example/k.deb", "../../x", "--reinstall", ""]):
            await spy.command("update", {"requestId": f"b{n}", "version": bad})
            await spy.wait_for(lambda n=n: len(spy.of("reply")) == n + 1)
            assert spy.of("reply")[n].data["result"] == "failed", bad
            assert not request.exists(), bad

        await spy.command("update", {"requestId": "u1", "version": "0.2.0+fix1"})
        await spy.wait_for(lambda: len(spy.of("reply")) == 5)
        assert spy.of("reply")[4].data["result"] == "ok"
        assert json.loads(request.read_text()) == {"version": "0.2.0+fix1", "requestId": "u1"}
        assert updater.read_request(request) == ("0.2.0+fix1", "u1")
        assert not request.exists(), "the updater takes the request away"

        status.write_text(json.dumps({"state": "committed", "version": "0.2.0+fix1"}))
        await daemon.app.uplink.publish_health()
        await spy.wait_for(
            lambda: any(h.data["update"]["state"] == "committed" for h in spy.of("health"))
        )


async def test_update_request_that_cannot_be_written_is_answered_failed(
    broker: Broker, fleet_broker: Broker, pki: Pki, tmp_path: Path
) -> None:
    config = uplink_config(broker.port, fleet_broker.port, tmp_path, pki, commands=["update"])
    gone = tmp_path / "no-runtime-dir"
    config = config.replace(
        daemon=msgspec.structs.replace(config.daemon, runtime_dir=str(gone)),
        devices=tuple(d for d in config.devices if d.driver == "sim"),
    )
    async with fleet_spy(fleet_broker.port, pki) as spy, run_daemon(config) as daemon:
        assert daemon.app.uplink is not None
        await daemon.app.uplink.connected.wait()
        await spy.command("update", {"requestId": "u1", "version": "0.2.0"})
        await spy.wait_for(lambda: spy.of("reply"))
        reply = spy.of("reply")[0].data
        assert reply["result"] == "failed"
        assert str(gone) in reply["error"]
        assert not gone.exists()


async def test_update_is_refused_unless_enabled(
    broker: Broker, fleet_broker: Broker, pki: Pki, tmp_path: Path
) -> None:
    config = uplink_config(broker.port, fleet_broker.port, tmp_path, pki)
    async with fleet_spy(fleet_broker.port, pki) as spy, run_daemon(config) as daemon:
        assert daemon.app.uplink is not None
        await daemon.app.uplink.connected.wait()
        await spy.command("update", {"requestId": "u1", "version": "0.2.0"})
        await spy.wait_for(lambda: spy.of("reply"))
        assert spy.of("reply")[0].data["result"] == "refused"
        assert not (Path(config.daemon.runtime_dir) / updater.REQUEST).exists()


def test_fleet_view_shows_version_and_update_state() -> None:
    model = FleetModel()
    update = {"state": "rolledBack", "version": "0.1.0", "target": "0.2.0",
              "reason": "health gate: status degraded"}  # fmt: skip
    birth = {"bdSeq": 1, "seq": 0, "ts": 1000, "version": "0.1.0", "update": update}
    model.ingest(f"{FLEET_ROOT}/birth", msgspec.msgpack.encode(birth), MSGPACK, now=10)
    console = Console(record=True, width=220)
    console.print(render(model, now=11))
    text = console.export_text()
    assert "0.1.0" in text
    assert "rolledBack 0.2.0: health gate: status degraded" in text
    health = {"msgId": 2, "seq": 1, "ts": 2000, "status": "ready",
              "update": {"state": "committed", "version": "0.2.0"}}  # fmt: skip
    model.ingest(f"{FLEET_ROOT}/health", msgspec.msgpack.encode(health), MSGPACK, now=12)
    console = Console(record=True, width=220)
    console.print(render(model, now=13))
    assert "committed" in console.export_text()
    assert "rolledBack" not in console.export_text()
    registry = CollectorRegistry()
    registry.register(FleetCollector(model, threading.Lock()))
    metrics = generate_latest(registry).decode()
    assert (
        'kiosk_update_state{board="sim-0001",state="committed",target="",tenant="demo"} 1.0'
        in metrics
    )
