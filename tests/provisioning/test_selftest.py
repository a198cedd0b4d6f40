"""Self-test against the daemon with every device simulated; the 'hands' are sim actions."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

from provisioning import selftest
from tests.conftest import Broker, RunningDaemon
from tests.identity_search import IdentitySearch
from tests.uiclient import UiClient


class SimHands:
    """Does what the technician is asked to, through the simulators."""

    def __init__(self, ui: UiClient, board: str) -> None:
        self.ui = ui
        self.board = board
        self.asked: list[str] = []
        self.door_open = False

    async def do(self, device: str, action: str, instruction: str) -> None:
        self.asked.append(instruction)
        params: dict[str, Any] = {}
        if action == "scan":
            params = {"text": self.board, "symbology": "qr"}
        elif action == "insertCoin":
            params = {"value": 1000}
        elif action in ("openCompartment", "closeCompartment"):
            params = {"compartment": 1}
        elif action == "door":
            self.door_open = not self.door_open
            params = {"open": self.door_open}
        # A person waits for the sheet to come out before taking it; so does this hand.
        for _ in range(50):
            result = await self.ui.call(f"{self.ui.root}/sim/{device}/{action}", params)
            if result["completionCode"] != "sequenceError":
                break
            await asyncio.sleep(0.1)
        assert result["completionCode"] == "success", result


async def test_every_device_passes(
    broker: Broker, daemon: RunningDaemon, ui: UiClient, tmp_path: Path
) -> None:
    hands = SimHands(ui, daemon.board)
    report = await selftest.run(daemon.board, hands, port=broker.port)
    assert report.passed, report.to_json()
    assert sorted(r.device_class for r in report.results) == sorted(
        [
            "printer",
            "scanner",
            "cardReader",
            "coinAcceptor",
            "documentSlot",
            "lockers",
            "camera",
            "lights",
            "sensors",
        ]
    )
    assert any("Scan the QR code" in a for a in hands.asked)
    saved = json.loads(report.to_json())
    assert saved["passed"] is True
    assert {r["check"] for r in saved["results"]} >= {"test slip", "insert a coin", "door switch"}
    search = IdentitySearch()
    search.scan("report", report.to_json().encode())
    search.assert_clean()


async def test_a_failing_device_is_reported(
    broker: Broker, daemon: RunningDaemon, ui: UiClient
) -> None:
    await ui.sim("printer", "fault", {"kind": "jam"})
    hands = SimHands(ui, daemon.board)
    report = await selftest.run(daemon.board, hands, port=broker.port, only=["printer", "lights"])
    by_device = {r.device: r for r in report.results}
    assert not by_device["printer"].passed
    assert (
        "hardwareError" in by_device["printer"].detail
        or "deviceNotReady" in by_device["printer"].detail
    )
    assert by_device["lights"].passed
    assert not report.passed
