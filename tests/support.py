"""Test helpers shared by device-level tests: a host that records, a running device."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec

from devices.base import CommandContext, Device, DeviceEnv, DeviceState, Message
from devices.registry import resolve
from devices.supervisor import supervise


@dataclass
class RecordingHost:
    """A DeviceHost that keeps every state, event and sim output, in order."""

    states: list[tuple[str, DeviceState, Message]] = field(default_factory=list)
    events: list[tuple[str, str, Message]] = field(default_factory=list)
    outputs: list[tuple[str, str, Message]] = field(default_factory=list)
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    def device_state(self, device_id: str, state: DeviceState, detail: Message) -> None:
        self.states.append((device_id, state, detail))
        self.changed.set()

    def device_event(self, device_id: str, event: str, data: Message) -> None:
        self.events.append((device_id, event, data))
        self.changed.set()

    def sim_output(self, device_id: str, what: str, data: Message) -> None:
        self.outputs.append((device_id, what, data))
        self.changed.set()

    async def wait_for(self, predicate: Any, timeout: float = 5.0) -> None:
        """Wait until ``predicate()`` is true, re-checking on every report."""
        async with asyncio.timeout(timeout):
            while not predicate():
                self.changed.clear()
                await self.changed.wait()

    def event_names(self) -> list[str]:
        return [name for _, name, _ in self.events]


def make_env(tmp_path: Path) -> DeviceEnv:
    (tmp_path / "state").mkdir(exist_ok=True)
    (tmp_path / "run").mkdir(exist_ok=True)
    return DeviceEnv(
        board_id="test-0001", state_dir=tmp_path / "state", runtime_dir=tmp_path / "run"
    )


def build(
    device_class: str, driver: str, tmp_path: Path, host: RecordingHost, **settings: Any
) -> Device:
    """Create a registered driver with settings given as keyword arguments."""
    spec = resolve(device_class, driver)
    return spec.create(
        device_class, host, make_env(tmp_path), msgspec.convert(settings, spec.settings_type)
    )


@contextlib.asynccontextmanager
async def running(
    device: Device, host: RecordingHost, timeout: float = 5.0
) -> AsyncIterator[Device]:
    """Supervise ``device`` until it is online; stop it on exit."""
    task = asyncio.create_task(supervise(device), name=f"supervise-{device.id}")
    try:
        await host.wait_for(lambda: device.state is DeviceState.ONLINE, timeout)
        yield device
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await device.aclose()


def ctx(
    request_id: str = "r1", timeout: float = 5.0, sink: list[tuple[str, Message]] | None = None
) -> CommandContext:
    """A CommandContext whose intermediate events land in ``sink``."""
    events = sink if sink is not None else []
    return CommandContext(
        request_id=request_id,
        client_id="test",
        deadline=asyncio.get_running_loop().time() + timeout,
        emit=lambda name, data: events.append((name, data)),
    )


#: The fields of an appointment slip (the ``appointment`` template), with Vietnamese text.
SLIP_FIELDS: dict[str, str] = {
    "office": "UBND Phường Bến Nghé",
    "procedure": "Cấp đổi căn cước công dân",
    "dossierCode": "HS-2026-000123",
    "citizenName": "Nguyễn Văn Thử",
    "submittedAt": "2026-11-23 09:15",
    "appointmentDate": "2026-11-30",
    "counter": "Quầy 3",
    "qr": "HS-2026-000123",
}
