"""``kioskd fleet update``: a staged release over a real fleet broker and real daemons.

Five boards run the daemon (sim config, uplink to the TLS fleet broker, each with
its own client certificate).  The root updater is played as in
test_fleet_update.py: the request file the daemon writes is taken with
``updater.read_request`` and the outcome written to the status file the daemon
reports in birth and health.  The operator's command runs as a process of its own,
as on the fleet side.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import msgspec
import pytest
from typer.testing import CliRunner

from daemon import __version__
from daemon.cli import app
from daemon.config import Config
from daemon.fleet.rollout import Rollout, Selection
from daemon.fleet.stage import in_sample
from daemon.mqtt.codec import MSGPACK
from daemon.update import updater
from tests.conftest import Broker, RunningDaemon, run_daemon
from tests.provisioning.support import KIOSKD_BIN
from tests.uplink.conftest import Pki, uplink_config

TENANT = "hcm"
Q6, Q1 = "UBND Phường 6", "UBND Phường 1"
NEW = "0.9.0+rollout1"


@dataclass
class Kiosk:
    """One board: its daemon, and the updater's part (``outcome`` None: no updater runs)."""

    id: str
    site: str
    outcome: str | None
    config: Config
    status: Path
    restarts: bool = False
    requests: list[tuple[str, str]] = field(default_factory=list)
    daemon: RunningDaemon | None = None
    _stack: contextlib.AsyncExitStack = field(default_factory=contextlib.AsyncExitStack)

    async def start(self) -> None:
        self.daemon = await self._stack.enter_async_context(run_daemon(self.config))
        assert self.daemon.app.uplink is not None
        self.daemon.app.uplink.update_status = self.status
        await self.daemon.app.uplink.connected.wait()

    async def stop(self) -> None:
        await self._stack.aclose()
        self.daemon = None

    def _report(self, state: str, version: str, target: str, request_id: str, reason: str) -> None:
        record = {"state": state, "version": version, "target": target,
                  "requestId": request_id, "reason": reason}  # fmt: skip
        self.status.write_text(json.dumps(record), encoding="utf-8")

    async def updater(self) -> None:
        """Take every request (as kioskd-update.path starts the updater) and report an outcome."""
        request = Path(self.config.daemon.runtime_dir) / updater.REQUEST
        while True:
            while not request.exists():
                await asyncio.sleep(0.05)
            version, request_id = updater.read_request(request)
            self.requests.append((version, request_id))
            self._report("gating", __version__, version, request_id, "")
            if self.restarts:  # the gate restarts the daemon: a death, then a new birth
                await self.stop()
                await self.start()
            await asyncio.sleep(0.2)
            if self.outcome == "committed":
                self._report("committed", version, version, request_id, "")
            else:
                self._report("rolledBack", __version__, version, request_id,
                             "health gate: status degraded")  # fmt: skip


def kiosk_config(
    broker: Broker, fleet_broker: Broker, tmp_path: Path, pki: Pki, board: str, site: str,
    commands: list[str],
) -> Config:  # fmt: skip
    """The sim config of ``board`` with only the in-process devices (the uplink needs no more)."""
    issued = pki.issuer.issue(board)
    config = uplink_config(
        broker.port, fleet_broker.port, tmp_path / board, pki, commands=commands,
        cert_file=str(issued.cert), key_file=str(issued.key),
    )  # fmt: skip
    # Made by systemd (RuntimeDirectory=) on a board; the update request is written there.
    Path(config.daemon.runtime_dir).mkdir(parents=True)
    return config.replace(
        board=msgspec.structs.replace(config.board, id=board, tenant=TENANT, site=site),
        devices=tuple(d for d in config.devices if d.driver == "sim"),
    )


@contextlib.asynccontextmanager
async def fleet(
    broker: Broker, fleet_broker: Broker, tmp_path: Path, pki: Pki
) -> AsyncIterator[dict[str, Kiosk]]:
    plan = [
        ("hcm-q6-0001", Q6, "committed", ["update"]),
        ("hcm-q6-0002", Q6, "committed", ["update"]),
        ("hcm-q1-0001", Q1, None, ["getHealth"]),  # update not allowed here
        ("hcm-q1-0002", Q1, "rolledBack", ["update"]),
        ("hcm-q1-0003", Q1, None, ["update"]),  # allowed, but its updater never answers
    ]
    kiosks = {
        board: Kiosk(
            board, site, outcome,
            kiosk_config(broker, fleet_broker, tmp_path, pki, board, site, commands),
            tmp_path / f"{board}-status.json", restarts=board == "hcm-q6-0001",
        )
        for board, site, outcome, commands in plan
    }  # fmt: skip
    await asyncio.gather(*(k.start() for k in kiosks.values()))
    updaters = [
        asyncio.create_task(k.updater(), name=f"updater-{k.id}")
        for k in kiosks.values()
        if k.outcome is not None
    ]
    try:
        yield kiosks
    finally:
        for task in updaters:
            task.cancel()
        await asyncio.gather(*updaters, return_exceptions=True)
        await asyncio.gather(*(k.stop() for k in kiosks.values()))


async def fleet_update(fleet_broker: Broker, pki: Pki, *args: str) -> tuple[int, str, str]:
    """``kioskd fleet update ARGS`` as the operator runs it: exit code, stdout, stderr."""
    proc = await asyncio.create_subprocess_exec(
        KIOSKD_BIN, "fleet", "update", *args,
        "--broker", f"mqtts://127.0.0.1:{fleet_broker.port}", "--ca", str(pki.ca),
        "--cert", str(pki.operator.cert), "--key", str(pki.operator.key),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "COLUMNS": "200", "TERM": "dumb"},
    )  # fmt: skip
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


def outcomes(table: str) -> dict[str, str]:
    """Board -> outcome from the printed table (columns: board, site, from, now, outcome, ...)."""
    rows = {}
    for line in table.splitlines():
        cells = [c.strip() for c in line.strip("│┃ ").split("│")]
        if cells and cells[0].startswith(f"{TENANT}/"):
            rows[cells[0].removeprefix(f"{TENANT}/")] = cells[4]
    return rows


def sent_to(kiosks: dict[str, Kiosk]) -> set[str]:
    return {k.id for k in kiosks.values() if k.requests}


async def test_a_staged_release_site_then_percentage_then_all(
    broker: Broker, fleet_broker: Broker, pki: Pki, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(updater, "STATUS", tmp_path / "no-such-status.json")
    async with fleet(broker, fleet_broker, tmp_path, pki) as kiosks:
        # 1. The pilot site: both boards commit, one of them restarting under the gate.
        code, out, err = await fleet_update(fleet_broker, pki, NEW, "--site", Q6)
        assert code == 0, out + err
        assert outcomes(out) == {"hcm-q6-0001": "committed", "hcm-q6-0002": "committed"}, out
        assert sent_to(kiosks) == {"hcm-q6-0001", "hcm-q6-0002"}
        request_ids = {k.requests[0] for k in kiosks.values() if k.requests}
        assert len(request_ids) == 1
        assert next(iter(request_ids))[0] == NEW
        assert "hcm/hcm-q6-0001: committed" in err  # progress, as each board ends
        for kiosk in kiosks.values():
            kiosk.requests.clear()

        # 2. A percentage: the stable sample, here the two boards hashing under 60.
        sample = {b for b in kiosks if in_sample(b, 60)}
        assert sample == {"hcm-q1-0001", "hcm-q1-0002"}
        code, out, err = await fleet_update(fleet_broker, pki, NEW, "--percent", "60")
        assert code == 1, out + err
        assert outcomes(out) == {"hcm-q1-0001": "refused", "hcm-q1-0002": "rolledBack"}, out
        assert "command 'update' is not enabled on this board" in out
        assert "health gate: status degraded" in out
        assert sent_to(kiosks) == {"hcm-q1-0002"}  # q1-0001 refused it before its updater
        kiosks["hcm-q1-0002"].requests.clear()

        # 3. All: a stopped board is not sent to; one whose updater is silent times out.
        # (No restart now: the others must end well inside the timeout, even on a loaded CI.)
        kiosks["hcm-q6-0001"].restarts = False
        await kiosks["hcm-q6-0002"].stop()
        code, out, err = await fleet_update(fleet_broker, pki, NEW, "--all", "--timeout", "3")
        assert code == 1, out + err
        assert outcomes(out) == {
            "hcm-q6-0001": "committed",
            "hcm-q6-0002": "offline",
            "hcm-q1-0001": "refused",
            "hcm-q1-0002": "rolledBack",
            "hcm-q1-0003": "handedOver",
        }, out
        assert "no outcome within 3 s" in out
        assert sent_to(kiosks) == {"hcm-q6-0001", "hcm-q1-0002"}
        # Handed over: the request waits for an updater that never came.
        request = Path(kiosks["hcm-q1-0003"].config.daemon.runtime_dir) / updater.REQUEST
        assert updater.read_request(request)[0] == NEW


def _msgpack(data: dict[str, object]) -> bytes:
    return msgspec.msgpack.encode(data)


def test_an_earlier_update_outcome_is_not_this_stages() -> None:
    rollout = Rollout(NEW, Selection(boards=("b1",)))
    root = f"fleet/v1/{TENANT}/b1"
    earlier = {"state": "rolledBack", "version": "0.1.0", "requestId": "rollout-earlier"}
    birth = {"bdSeq": 1, "seq": 0, "ts": 1000, "version": "0.1.0", "update": earlier}
    rollout.ingest(f"{root}/birth", _msgpack(birth), MSGPACK)
    (target,) = rollout.select()
    target.state = "sent"
    health = {"msgId": 2, "seq": 1, "ts": 2000, "update": earlier}
    rollout.ingest(f"{root}/health", _msgpack(health), MSGPACK)
    assert target.state == "sent"
    reply = {"msgId": 3, "seq": 2, "ts": 2001, "requestId": rollout.request_id,
             "command": "update", "result": "ok"}  # fmt: skip
    rollout.ingest(f"{root}/reply", _msgpack(reply), MSGPACK)
    assert target.state == "handedOver"
    ours = {"state": "committed", "version": NEW, "requestId": rollout.request_id}
    rollout.ingest(f"{root}/health", _msgpack({"msgId": 4, "seq": 3, "ts": 3000, "update": ours}),
                   MSGPACK)  # fmt: skip
    assert (target.state, target.version_from) == ("committed", "0.1.0")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["https://evil.example/k.deb", "--all"], "not a package version"),
        (["../../x", "--all"], "not a package version"),
        (["--all", "--", "--reinstall"], "not a package version"),
        ([NEW], "one of --board, --site, --percent or --all"),
        ([NEW, "--all", "--site", Q6], "one of --board, --site, --percent or --all"),
    ],
)
def test_nothing_but_a_version_to_chosen_boards_is_sent(args: list[str], message: str) -> None:
    # No broker runs: a refusal happens before any connection.
    result = CliRunner().invoke(app, ["fleet", "update", "--broker", "mqtt://127.0.0.1:9", *args])
    assert result.exit_code == 2, result.output
    assert message in result.output


def test_a_board_already_on_the_version_reports_this_request(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The updater's 'already installed' answer names the request, so the stage sees it end."""
    monkeypatch.setattr(updater, "installed_version", lambda: NEW)
    assert updater.Updater(tmp_path).start(NEW, "rollout-1", updater.Settings()) == 0
    status = json.loads((tmp_path / "status.json").read_text())
    assert (status["state"], status["requestId"]) == ("committed", "rollout-1")
