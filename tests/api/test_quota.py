"""What one client can make the daemon hold is bounded, over a real mosquitto.

A client may have at most ``[api] max_queue_per_client`` requests queued or running
on one device; beyond that its new ones there are refused ``deviceNotReady`` while
other clients still queue.  It may have at most ``idempotency_max_per_client``
remembered side-effect requests; beyond that its oldest is forgotten, never
another client's.
"""

from __future__ import annotations

from pathlib import Path

import msgspec

from tests.conftest import Broker, make_config, run_daemon
from tests.uiclient import UiClient, connect


async def test_one_client_cannot_fill_a_device_queue(ui: UiClient, ui_factory) -> None:
    share = 16  # [api] max_queue_per_client
    reads = [
        await ui.start(f"{ui.root}/dev/scanner/cmd/read", {"timeoutMs": 20_000})
        for _ in range(share)
    ]
    for read in reads:
        assert (await read.next())["type"] == "ack"
    refused = await ui.device("scanner", "read", {"timeoutMs": 20_000})
    assert refused["completionCode"] == "deviceNotReady"
    assert f"at most {share} per client" in refused["errorDescription"]
    # Another client still gets its place in the same queue.
    async with ui_factory("ui2") as other:
        theirs = await other.start(f"{other.root}/dev/scanner/cmd/read", {"timeoutMs": 20_000})
        assert (await theirs.next())["type"] == "ack"
        # The share is of one device: the same client queues elsewhere.
        assert (await ui.device("lights", "set", {"position": "scanner", "mode": "on"}))[
            "completionCode"
        ] == "success"
        # Finished requests give the share back.
        canceled = await ui.daemon("cancel")
        assert len(canceled["result"]["canceled"]) == share
        again = await ui.start(f"{ui.root}/dev/scanner/cmd/read", {"timeoutMs": 20_000})
        assert (await again.next())["type"] == "ack"
        await ui.daemon("cancel")
        await other.daemon("cancel")
        assert (await theirs.completion())["completionCode"] == "canceled"


async def test_a_clients_records_beyond_its_share_replace_its_own_oldest(
    broker: Broker, tmp_path: Path
) -> None:
    config = make_config(broker.port, tmp_path)
    config = config.replace(api=msgspec.structs.replace(config.api, idempotency_max_per_client=10))
    async with (
        run_daemon(config) as daemon,
        connect(broker.port, "sim-0001", "flood") as flood,
        connect(broker.port, "sim-0001", "quiet") as quiet,
    ):
        kept = await quiet.device("printer", "cut", request_id="quiet-1")
        assert kept["completionCode"] == "success"
        for n in range(15):
            done = await flood.device("printer", "cut", request_id=f"flood-{n}")
            assert done["completionCode"] == "success"
        store = daemon.app.store
        assert store.lookup("flood", "flood-4") is None, "beyond the share: forgotten"
        assert store.lookup("flood", "flood-5") is not None
        assert store.lookup("quiet", "quiet-1") is not None, "never another client's"
        # Over MQTT: a retry of a remembered request is replayed (a completion, no ack);
        # one of a forgotten request runs again (ack first).
        replay = await quiet.start(f"{quiet.root}/dev/printer/cmd/cut", request_id="quiet-1")
        assert (await replay.next())["type"] == "completion"
        rerun = await flood.start(f"{flood.root}/dev/printer/cmd/cut", request_id="flood-0")
        assert (await rerun.next())["type"] == "ack"
        assert (await rerun.completion())["completionCode"] == "success"
