"""The ``gpio`` locker bank at the wire: MockFactory pins and an MCP23017 spoken to register by register."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import msgspec
import pytest

from devices.base import CommandContext, DeviceState, OpenClosed
from devices.errors import Offline, SequenceError, Timeout
from devices.lockers.audit import read_audit
from devices.lockers.gpio import GpioLockers, GpioLockersSettings
from devices.lockers.protocol import AssignParams, OpenParams
from devices.sim.lockers.behaviour import LockOutput
from devices.sim.lockers.gpio import GpioLockersSimulator
from devices.sim.support.faults import FaultKind, FaultParams
from devices.sim.support.mcp23017 import SimI2cBus, SimMcp23017
from devices.transports.mcp23017 import (
    GPIOA,
    GPPUA,
    IODIRA,
    OLATA,
    ExpanderSettings,
    Mcp23017,
)
from tests.support import RecordingHost, make_env, running
from tests.support import ctx as citizen_ctx


def ctx(request_id: str = "r1") -> CommandContext:
    """A staff requester's context: the lock mechanics here are exercised without codes."""
    context = citizen_ctx(request_id)
    context.staff = True
    return context


#: Compartments 1-2 on header pins (2 with an occupancy sensor), 3-4 on MCP23017 "main".
MIXED: dict[str, Any] = {
    "lock_pulse_ms": 60,
    "lock_cooldown_ms": 150,
    "open_timeout_ms": 5_000,
    "left_open_ms": 400,
    "poll_ms": 10,
    "expanders": {"main": {"bus": 1, "address": 0x21}},
    "compartments": [
        {"lock": {"pin": 23}, "door": {"pin": 24, "pull": "up"}},
        {"lock": {"pin": 25}, "door": {"pin": 12, "pull": "up"}, "occupied": {"pin": 22}},
        {
            "lock": {"pin": 0, "expander": "main"},
            "door": {"pin": 8, "expander": "main", "pull": "up"},
        },
        {
            "lock": {"pin": 1, "expander": "main", "active_high": False},
            "door": {"pin": 9, "expander": "main", "pull": "up"},
            "occupied": {"pin": 10, "expander": "main"},
        },
    ],
}


class RecordingBus(SimI2cBus):
    """The simulated bus, keeping every write in order."""

    def __init__(self, chips: dict[int, SimMcp23017]) -> None:
        super().__init__(chips)
        self.writes: list[tuple[int, int]] = []

    def write_byte_data(self, i2c_addr: int, register: int, value: int) -> None:
        self.writes.append((register, value))
        super().write_byte_data(i2c_addr, register, value)


async def test_mcp23017_configure_read_write_at_the_register_level():
    chip = SimMcp23017()
    bus = RecordingBus({0x20: chip})
    mcp = Mcp23017(ExpanderSettings(bus=1, address=0x20), bus)
    # Coils on A0..A7 (A1 active-low: latch high), reed switches on B0..B7 with pull-ups.
    await mcp.configure(outputs=0x00FF, pull_ups=0xFF00, levels=0x0002)
    registers = [register for register, _ in bus.writes]
    assert registers.index(OLATA) < registers.index(IODIRA), "latches set before outputs drive"
    assert chip.registers[IODIRA] == 0x00
    assert chip.registers[IODIRA + 1] == 0xFF
    assert chip.registers[GPPUA + 1] == 0xFF
    assert chip.registers[GPPUA] == 0x00, "no pull-ups on outputs"
    assert [chip.level(p) for p in range(3)] == [False, True, False]
    # Inputs: pulled up unless a closed reed pulls them low.
    chip.driven[9] = False
    assert await mcp.read() == 0xFD02
    await mcp.write(3, high=True)
    assert chip.level(3)
    assert chip.registers[OLATA] == 0x0A
    await mcp.write(1, high=False)
    assert chip.registers[OLATA] == 0x08
    await mcp.write_all(0x0002)
    assert chip.registers[OLATA] == 0x02
    assert chip.read(GPIOA) == 0x02
    bus.nack = True
    with pytest.raises(Offline, match=r"0x20.*failed"):
        await mcp.read()
    with pytest.raises(Offline):
        await Mcp23017(ExpanderSettings(bus=1, address=0x27), SimI2cBus({})).read()


@contextlib.asynccontextmanager
async def bank(tmp_path: Path, **overrides: Any) -> AsyncIterator[Any]:
    host = RecordingHost()
    env = make_env(tmp_path)
    sim = GpioLockersSimulator("lockers", host, env)
    settings = sim.driver_settings(msgspec.convert({**MIXED, **overrides}, GpioLockersSettings))
    assert isinstance(settings, GpioLockersSettings)
    await sim.start()
    device = GpioLockers("lockers", host, env, settings)
    try:
        async with running(device, host):
            yield device, sim, host
    finally:
        await sim.aclose()
    assert not any(sim.energized(n) for n in range(1, 5)), "every coil at rest"


def coil_log(host: RecordingHost, n: int) -> list[bool]:
    return [
        o.energized
        for _, what, o in host.outputs
        if what == "lock" and isinstance(o, LockOutput) and o.compartment == n
    ]


async def citizen_pulls(sim: GpioLockersSimulator, n: int) -> None:
    async with asyncio.timeout(3):
        while True:
            with contextlib.suppress(SequenceError):
                await sim.pull(n)
                return


@pytest.mark.parametrize("n", [2, 4], ids=["header-pins", "mcp23017"])
async def test_a_citizen_opens_and_closes(tmp_path, n):
    async with bank(tmp_path) as (device, sim, host):
        opening = asyncio.create_task(device.execute("open", OpenParams(compartment=n), ctx("r-7")))
        await citizen_pulls(sim, n)
        await asyncio.wait_for(opening, 3)
        assert device.door(n) is OpenClosed.OPEN
        assert coil_log(host, n)[:2] == [True, False]
        sim.shut(n)
        await host.wait_for(lambda: device.door(n) is OpenClosed.CLOSED, 2)
        assert host.event_names() == ["compartmentOpened", "compartmentClosed"]
        rows = list(read_audit(device.audit_log.path))
        assert [(r.compartment, r.action, r.outcome, r.request_id) for r in rows] == [
            (n, "open", "opened", "r-7")
        ]


async def test_a_citizen_who_never_opens_gets_pulses_with_cool_down_then_timeout(tmp_path):
    async with bank(tmp_path, open_timeout_ms=900) as (device, sim, _host):
        changes: list[tuple[float, bool]] = []
        chip = sim.chips["main"]  # compartment 3's coil is on the expander
        written = chip.on_output

        def record() -> None:
            # Timed at the write, on the driver's I/O thread: the loop may run its
            # echo (``_coils_changed``) late under load, which shortens a rest it measures.
            changes.append((time.monotonic(), sim.energized(3)))
            if written is not None:
                written()

        chip.on_output = record
        with pytest.raises(Timeout):
            await device.execute("open", OpenParams(compartment=3), ctx("r-8"))
        edges = [(t, on) for i, (t, on) in enumerate(changes) if i == 0 or changes[i - 1][1] != on]
        starts = [t for t, on in edges if on]
        ends = [t for t, on in edges if not on]
        # 900 ms of 60 ms pulses with 150 ms rests: about four pulses, each rested.
        assert 3 <= len(starts) <= 5, edges
        # The wait's timeout cancels the pulser: its last pulse may be cut short.
        for start, end in zip(starts, ends, strict=False):
            assert end - start <= 0.2
        for start, end in zip(starts[:-1], ends, strict=False):
            assert end - start >= 0.04
        for end, start in zip(ends, starts[1:], strict=False):
            assert start - end >= 0.14, "cool-down between pulses"
        assert not sim.energized(3)
        with pytest.raises(SequenceError, match="locked"):
            await sim.pull(3)
        assert device.state is DeviceState.ONLINE
        rows = list(read_audit(device.audit_log.path))
        assert [(r.action, r.outcome) for r in rows] == [("open", "timeOut")]


async def test_a_citizen_who_leaves_the_door_open(tmp_path):
    async with bank(tmp_path) as (device, sim, host):
        opening = asyncio.create_task(device.execute("open", OpenParams(compartment=1), ctx()))
        await citizen_pulls(sim, 1)
        await asyncio.wait_for(opening, 3)
        await host.wait_for(lambda: device.state is DeviceState.USER_ERROR, 2)
        assert "compartmentLeftOpen" in host.event_names()
        sim.shut(1)
        await host.wait_for(lambda: device.state is DeviceState.ONLINE, 2)


async def test_papers_left_after_a_collection_raise_an_event(tmp_path):
    async with bank(tmp_path, left_open_ms=10_000) as (device, sim, host):
        for n in (2, 4):
            # Staff load it: no event when it closes full.
            loading = asyncio.create_task(
                device.execute("assign", AssignParams(compartment=n, code=f"HS-{n}"), ctx())
            )
            await citizen_pulls(sim, n)
            await asyncio.wait_for(loading, 3)
            sim.load(n)
            sim.shut(n)
            await host.wait_for(lambda n=n: device.door(n) is OpenClosed.CLOSED, 2)
            await host.wait_for(lambda n=n: device.detail.compartments[str(n)].occupied is True, 2)
            assert "compartmentNotEmptied" not in host.event_names()
            # A citizen opens it and leaves without the papers.
            opening = asyncio.create_task(
                device.execute("open", OpenParams(compartment=n, code=f"hs-{n}"), citizen_ctx())
            )
            await citizen_pulls(sim, n)
            await asyncio.wait_for(opening, 3)
            sim.shut(n)
            await host.wait_for(lambda: "compartmentNotEmptied" in host.event_names(), 2)
            host.events.clear()
        assert device.detail.compartments["1"].occupied is None, "no sensor fitted"
        actions = [(r.compartment, r.action) for r in read_audit(device.audit_log.path)]
        assert actions == [(2, "assign"), (2, "open"), (4, "assign"), (4, "open")]


async def test_an_expander_that_stops_answering_is_offline_until_back(tmp_path):
    async with bank(tmp_path) as (device, sim, host):
        await sim.sim_fault(FaultParams(kind=FaultKind.DISCONNECT))
        await host.wait_for(lambda: device.state is DeviceState.OFFLINE, 3)
        with pytest.raises(Offline):
            await device.execute("open", OpenParams(compartment=1), ctx())
        await sim.sim_fault(FaultParams(kind=FaultKind.CLEAR))
        await host.wait_for(lambda: device.state is DeviceState.ONLINE, 5)


async def test_safe_state_mid_open_rests_every_coil(tmp_path):
    async with bank(tmp_path, lock_pulse_ms=2_000) as (device, sim, _host):
        opening = asyncio.create_task(device.execute("open", OpenParams(compartment=4), ctx()))
        async with asyncio.timeout(2):
            while not sim.energized(4):
                await asyncio.sleep(0.005)
        await device.safe_state()
        assert not sim.energized(4)
        opening.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await opening


async def test_the_audit_is_append_only(tmp_path):
    async with bank(tmp_path, open_timeout_ms=100) as (device, _sim, _host):
        with pytest.raises(Timeout):
            await device.execute("open", OpenParams(compartment=1), ctx())
        db = sqlite3.connect(device.audit_log.path)
        with pytest.raises(sqlite3.DatabaseError, match="append-only"):
            db.execute("UPDATE opens SET outcome = 'opened'")
        with pytest.raises(sqlite3.DatabaseError, match="append-only"):
            db.execute("DELETE FROM opens")
        db.close()
        assert [r.outcome for r in read_audit(device.audit_log.path)] == ["timeOut"]


def test_settings_are_checked():
    with pytest.raises(msgspec.ValidationError, match="no expander 'side'"):
        msgspec.convert(
            {"compartments": [{"lock": {"pin": 0, "expander": "side"}, "door": {"pin": 5}}]},
            GpioLockersSettings,
        )
    with pytest.raises(msgspec.ValidationError, match="pull-ups only"):
        msgspec.convert(
            {
                "compartments": [
                    {
                        "lock": {"pin": 0, "expander": "main"},
                        "door": {"pin": 8, "expander": "main", "pull": "down"},
                    }
                ]
            },
            GpioLockersSettings,
        )
    with pytest.raises(msgspec.ValidationError, match=r"0\.\.15"):
        msgspec.convert(
            {"compartments": [{"lock": {"pin": 16, "expander": "main"}, "door": {"pin": 5}}]},
            GpioLockersSettings,
        )
