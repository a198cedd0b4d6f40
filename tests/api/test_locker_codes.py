"""A citizen's locker ``open`` needs the code staff assigned the compartment, over MQTT.

The daemon of ``kioskd run --sim`` (the gpio locker driver on the wire
simulator, with its audit table) on a real mosquitto: a right code opens once,
a wrong or missing one is refused and audited and never moves the lock, five
wrong codes lock the compartment out, and the stored hash is never the code.
"""

from __future__ import annotations

import asyncio
import hashlib
import sqlite3
from pathlib import Path

from devices.lockers.audit import audit_path, read_audit
from devices.lockers.codes import (
    MAX_WRONG_CODES,
    SALT_BYTES,
    CodeStore,
    codes_path,
    hash_code,
)
from devices.lockers.protocol import Lockers
from tests.conftest import RunningDaemon
from tests.contract.support import acked, failed, ok, outputs, sim_call, start
from tests.uiclient import UiClient

DEV = "lockers"
CODE = "HS-DEMO-0002"


def bank(daemon: RunningDaemon) -> Lockers:
    device = daemon.app.devices[DEV]
    assert isinstance(device, Lockers)
    return device


async def assign(daemon: RunningDaemon, n: int, code: str = CODE) -> None:
    """What staff's ``assign`` with a code leaves behind (assign itself is a staff command)."""
    await bank(daemon).codes.assign(n, code)


def audit(daemon: RunningDaemon) -> list[tuple[str, int, str, str]]:
    path = audit_path(Path(daemon.app.config.daemon.state_dir), DEV)
    return [(r.action, r.compartment, r.outcome, r.client_id) for r in read_audit(path)]


async def pull_and_shut(ui: UiClient, n: int) -> None:
    async with asyncio.timeout(3):
        while (await sim_call(ui, DEV, "openCompartment", {"compartment": n}))[
            "completionCode"
        ] != "success":
            await asyncio.sleep(0.02)


async def test_the_right_code_opens_once(daemon: RunningDaemon, ui: UiClient) -> None:
    await assign(daemon, 3)
    opening = await acked(
        await start(
            ui, DEV, "open", {"compartment": 3, "code": " hs-demo-0002 ", "timeoutMs": 5000}
        )
    )
    await pull_and_shut(ui, 3)
    ok(await opening.completion())
    await ui.sim(DEV, "closeCompartment", {"compartment": 3})
    # Collected: the same code opens nothing any more.
    again = await ui.device(DEV, "open", {"compartment": 3, "code": CODE, "timeoutMs": 2000})
    assert "wrong code for compartment 3" in failed(again, "userError")
    assert audit(daemon) == [("open", 3, "opened", "ui1"), ("open", 3, "wrongCode", "ui1")]


async def test_wrong_or_missing_code_is_refused_and_audited(
    daemon: RunningDaemon, ui: UiClient
) -> None:
    await assign(daemon, 2)
    async with outputs(ui, DEV, "lock") as coils:
        wrong = await ui.device(DEV, "open", {"compartment": 2, "code": "HS-DEMO-0001"})
        text = failed(wrong, "userError")
        assert (
            text
            == f"wrong code for compartment 2 ({MAX_WRONG_CODES - 1} tries left before a lockout)"
        )
        missing = await ui.device(DEV, "open", {"compartment": 2})
        assert "needs `code`" in failed(missing, "invalidData")
        unassigned = await ui.device(DEV, "open", {"compartment": 1, "code": CODE})
        failed(unassigned, "userError")
        await asyncio.sleep(0.2)
        assert coils.empty(), "no lock moved"
    assert audit(daemon) == [
        ("open", 2, "wrongCode", "ui1"),
        ("open", 2, "noCode", "ui1"),
        ("open", 1, "wrongCode", "ui1"),
    ]


async def test_wrong_codes_lock_the_compartment_out(daemon: RunningDaemon, ui: UiClient) -> None:
    await assign(daemon, 4)
    for n in range(MAX_WRONG_CODES):
        done = await ui.device(DEV, "open", {"compartment": 4, "code": f"GUESS-{n}"})
        text = failed(done, "userError")
    assert text == "wrong code for compartment 4: it now refuses codes for 15 min"
    locked = await ui.device(DEV, "open", {"compartment": 4, "code": CODE})
    assert "refuses codes for 15 more min" in failed(locked, "fraudAttempt")
    # Other compartments keep their own count.
    await assign(daemon, 1, "HS-OTHER")
    opening = await acked(
        await start(ui, DEV, "open", {"compartment": 1, "code": "HS-OTHER", "timeoutMs": 5000})
    )
    await pull_and_shut(ui, 1)
    ok(await opening.completion())
    outcomes = [outcome for _, n, outcome, _ in audit(daemon) if n == 4]
    assert outcomes == ["wrongCode"] * MAX_WRONG_CODES + ["lockedOut"]
    # A new assignment by staff ends the lockout.
    await assign(daemon, 4)
    opening = await acked(
        await start(ui, DEV, "open", {"compartment": 4, "code": CODE, "timeoutMs": 5000})
    )
    await pull_and_shut(ui, 4)
    ok(await opening.completion())


async def test_the_stored_hash_is_never_the_code(daemon: RunningDaemon) -> None:
    await assign(daemon, 1)
    await assign(daemon, 2)
    path = codes_path(Path(daemon.app.config.daemon.state_dir), DEV)
    stored = b"".join(p.read_bytes() for p in path.parent.glob(path.name + "*"))
    for form in (CODE, CODE.lower()):
        assert form.encode() not in stored
        assert hashlib.sha256(form.encode()).digest() not in stored
    with sqlite3.connect(path) as db:
        rows = db.execute("SELECT salt, hash FROM compartments ORDER BY compartment").fetchall()
    (salt1, hash1), (salt2, hash2) = rows
    assert len(salt1) == len(salt2) == SALT_BYTES
    assert salt1 != salt2, "a random salt per assignment"
    assert hash1 != hash2
    assert hash1 == hash_code(CODE, salt1)


async def test_lockout_ends_after_its_time(tmp_path: Path) -> None:
    now = [1_000_000]
    store = CodeStore(tmp_path / "codes.sqlite3", max_wrong=2, lockout_s=60, clock=lambda: now[0])
    await store.assign(5, CODE)
    assert (await store.check(5, "x")).tries_left == 1
    assert (await store.check(5, "y")).locked_for_s == 60
    refused = await store.check(5, CODE)
    assert refused.verdict.value == "lockedOut"
    now[0] += 59_000
    assert (await store.check(5, CODE)).locked_for_s == 1
    now[0] += 1_000
    assert (await store.check(5, CODE)).verdict.value == "right"
    await store.collected(5)
    assert (await store.check(5, CODE)).verdict.value == "wrong"
