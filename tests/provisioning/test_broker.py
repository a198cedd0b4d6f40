"""The production broker, started with exactly the files provisioning installed.

Each client does only its job: a UI publishes requests only under its own
``req/<user>/``, cannot publish fake status, state or events, cannot read another
client's replies, the technician reads broadcasts only, anonymous clients are refused,
``sim/`` is denied to everyone, and the mosquitto_passwd tool agrees with the
password file format.
"""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path

import aiomqtt
import pytest

from provisioning import mosquitto
from tests.provisioning import support

BOARD = "hcm-q1-0002"
ROOT = f"kiosk/v1/{BOARD}"


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, int]:
    image = support.provisioned(
        tmp_path_factory.mktemp("image"), BOARD, "--ui", "ui", "--ui", "ui2"
    )
    return image.root, image.port


@contextlib.asynccontextmanager
async def client(
    port: int, client_id: str, user: str | None, password: str | None
) -> AsyncIterator[tuple[aiomqtt.Client, list[tuple[str, bytes]]]]:
    seen: list[tuple[str, bytes]] = []
    async with aiomqtt.Client(
        "127.0.0.1",
        port,
        identifier=client_id,
        username=user,
        password=password,
        protocol=aiomqtt.ProtocolVersion.V5,
        timeout=5,
    ) as c:

        async def pump() -> None:
            async for m in c.messages:
                seen.append(  # noqa: PERF401 - read while the client runs
                    (str(m.topic), bytes(m.payload) if isinstance(m.payload, bytes) else b"")
                )

        task = asyncio.create_task(pump())
        try:
            yield c, seen
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, aiomqtt.MqttError):
                await task


async def wait_listening(port: int, root: Path) -> None:
    async with asyncio.timeout(10):
        while True:
            try:
                async with client(port, "probe", "technician", support.secret(root, "technician")):
                    return
            except aiomqtt.MqttError:
                await asyncio.sleep(0.1)


async def test_each_client_does_only_its_job(broker: tuple[Path, int], tmp_path: Path) -> None:
    root, port = broker
    secret = lambda user: support.secret(root, user)  # noqa: E731
    with support.installed(
        root, "exec mosquitto -c /etc/mosquitto/conf.d/kioskd.conf", log=tmp_path / "mosquitto.log"
    ):
        await wait_listening(port, root)

        with pytest.raises(aiomqtt.MqttError):
            async with client(port, "anon", None, None):
                pass
        with pytest.raises(aiomqtt.MqttError):
            async with client(port, "guess", "ui", "not-the-password"):
                pass

        async with (
            client(port, f"kioskd-{BOARD}", "kioskd", secret("kioskd")) as (daemon, daemon_seen),
            # The client id asked for is replaced by the user name (use_username_as_clientid).
            client(port, "ui1", "ui", secret("ui")) as (ui1, ui1_seen),
            client(port, "ui2", "ui2", secret("ui2")) as (ui2, ui2_seen),
            client(port, "tech", "technician", secret("technician")) as (_tech, tech_seen),
        ):
            await daemon.subscribe(f"{ROOT}/req/+/cmd/+", qos=1)
            await daemon.subscribe(f"{ROOT}/req/+/dev/+/cmd/+", qos=1)
            await daemon.subscribe(f"{ROOT}/cmd/+", qos=1)
            await daemon.subscribe(f"{ROOT}/dev/+/cmd/+", qos=1)
            await daemon.subscribe(f"{ROOT}/sim/#", qos=1)
            await ui1.subscribe(f"{ROOT}/#", qos=1)
            await ui1.subscribe(f"{ROOT}/reply/ui2/#", qos=1)
            await ui1.subscribe(f"{ROOT}/reply/ui/#", qos=1)
            await ui2.subscribe(f"{ROOT}/reply/ui2/#", qos=1)
            await _tech.subscribe(f"{ROOT}/#", qos=1)

            # The daemon's broadcasts reach a UI; each reply only its requester.
            await daemon.publish(f"{ROOT}/status", b"ok", qos=1, retain=True)
            await daemon.publish(f"{ROOT}/dev/printer/state", b"online", qos=1, retain=True)
            await daemon.publish(f"{ROOT}/dev/scanner/evt/scanned", b"evt", qos=1)
            await daemon.publish(f"{ROOT}/reply/ui/r", b"for-ui1", qos=1)
            await daemon.publish(f"{ROOT}/reply/ui2/r", b"identity-for-ui2", qos=1)
            # A UI's requests, under req/<its user>/, reach the daemon.
            await ui1.publish(f"{ROOT}/req/ui/dev/printer/cmd/printSlip", b"req", qos=1)
            await ui1.publish(f"{ROOT}/req/ui/cmd/getStatus", b"req", qos=1)
            # Forgeries, another user's request topics, legacy topics and sim go nowhere.
            await ui1.publish(f"{ROOT}/status", b"fake-status", qos=1, retain=True)
            await ui1.publish(f"{ROOT}/dev/printer/state", b"fake-state", qos=1, retain=True)
            await ui1.publish(f"{ROOT}/dev/coin/evt/coinAccepted", b"fake-evt", qos=1)
            await ui1.publish(f"{ROOT}/reply/ui2/r", b"fake-reply", qos=1)
            await ui1.publish(f"{ROOT}/req/ui2/cmd/cancel", b"as-ui2", qos=1)
            await ui1.publish(f"{ROOT}/cmd/cancel", b"legacy", qos=1)
            await _tech.publish(f"{ROOT}/dev/sensors/cmd/resetTamper", b"legacy", qos=1)
            await ui1.publish(f"{ROOT}/sim/scanner/scan", b"sim", qos=1)
            await daemon.publish(f"{ROOT}/sim/coin/insertCoin", b"sim", qos=1)
            await _tech.publish(f"{ROOT}/dev/printer/state", b"tech-state", qos=1)
            await asyncio.sleep(0.5)

        payloads = {p for _, p in ui1_seen}
        assert {b"ok", b"online", b"evt", b"for-ui1"} <= payloads
        assert b"identity-for-ui2" not in payloads
        assert [p for t, p in ui2_seen] == [b"identity-for-ui2"]
        assert sorted(t for t, _ in daemon_seen) == [
            f"{ROOT}/req/ui/cmd/getStatus",
            f"{ROOT}/req/ui/dev/printer/cmd/printSlip",
        ]
        # The technician sees broadcasts only: no request, no reply.
        assert {t.split("/")[3] for t, _ in tech_seen} <= {"status", "description", "dev"}
        everything = {p for _, p in tech_seen + ui1_seen + ui2_seen + daemon_seen}
        for forged in (
            b"fake-status",
            b"fake-state",
            b"fake-evt",
            b"fake-reply",
            b"as-ui2",
            b"legacy",
            b"sim",
            b"tech-state",
        ):
            assert forged not in everything, forged

        # Retained state is still the daemon's, for a client that connects later.
        async with client(port, "ui3", "ui", secret("ui")) as (ui3, ui3_seen):
            await ui3.subscribe(f"{ROOT}/#", qos=1)
            await asyncio.sleep(0.3)
        assert {p for _, p in ui3_seen} == {b"ok", b"online"}


def test_password_file_format_matches_mosquitto_passwd(tmp_path: Path) -> None:
    path = tmp_path / "passwd"
    subprocess.run(
        ["mosquitto_passwd", "-c", "-b", str(path), "alice", "s3cr3t-Ư"], check=True, timeout=30
    )
    encoded = mosquitto.parse_password_file(path.read_text())["alice"]
    assert encoded.startswith("$7$101$")
    assert mosquitto.verify_password(encoded, "s3cr3t-Ư")
    assert not mosquitto.verify_password(encoded, "s3cr3t")
    ours = mosquitto.hash_password("s3cr3t-Ư")
    assert [len(part) for part in ours.split("$")] == [len(part) for part in encoded.split("$")]
    # the same salt gives mosquitto_passwd's hash
    salt = __import__("base64").b64decode(encoded.split("$")[3])
    assert mosquitto.hash_password("s3cr3t-Ư", salt=salt) == encoded


def test_rerun_keeps_password_lines() -> None:
    first = mosquitto.password_file({"a": "x", "b": "y"})
    assert mosquitto.password_file({"a": "x", "b": "y"}, first) == first
    changed = mosquitto.password_file({"a": "x", "b": "z"}, first)
    assert changed.splitlines()[0] == first.splitlines()[0]
    assert changed.splitlines()[1] != first.splitlines()[1]
