"""lockers: open, timeouts, doors left open, faults."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from devices.base import CommandContext, DeviceState
from devices.errors import (
    CompletionCode,
    HardwareError,
    InvalidData,
    SequenceError,
    Timeout,
    completion_code,
)
from devices.lockers.protocol import CompartmentEvent, LockersDetail, OpenParams
from devices.sim.lockers.actions import CompartmentParams
from devices.sim.lockers.behaviour import LockOutput, SimLockers
from devices.sim.support.faults import FaultKind, FaultParams
from tests.support import RecordingHost, build, running
from tests.support import ctx as citizen_ctx


def ctx(request_id: str = "r1") -> CommandContext:
    """A staff requester's context: the lock mechanics here are exercised without codes."""
    context = citizen_ctx(request_id)
    context.staff = True
    return context


FAST = {"compartments": 4, "lock_pulse_ms": 10, "open_timeout_ms": 200, "left_open_ms": 150}


def lockers(tmp_path: Path, host: RecordingHost, **settings) -> SimLockers:
    device = build("lockers", "sim", tmp_path, host, **{**FAST, **settings})
    assert isinstance(device, SimLockers)
    return device


def detail(device: SimLockers) -> LockersDetail:
    d = device.detail
    assert isinstance(d, LockersDetail)
    return d


def doors(device: SimLockers) -> dict[str, str]:
    return {n: c.door.value for n, c in detail(device).compartments.items()}


def lock_log(host: RecordingHost) -> list[tuple[int, bool]]:
    return [
        (d.compartment, d.energized)
        for _, what, d in host.outputs
        if what == "lock" and isinstance(d, LockOutput)
    ]


def events(host: RecordingHost) -> list[tuple[str, int]]:
    out = []
    for _, name, data in host.events:
        assert isinstance(data, CompartmentEvent)
        out.append((name, data.compartment))
    return out


async def open_and_pull(device: SimLockers, host: RecordingHost, n: int) -> None:
    opening = asyncio.create_task(device.execute("open", OpenParams(compartment=n), ctx()))
    await host.wait_for(lambda: (n, True) in lock_log(host), 1)
    await device.sim_open_compartment(CompartmentParams(compartment=n))
    await asyncio.wait_for(opening, 1)


async def test_open_completes_when_the_door_is_pulled(tmp_path):
    host = RecordingHost()
    device = lockers(tmp_path, host)
    async with running(device, host):
        assert doors(device) == {"1": "closed", "2": "closed", "3": "closed", "4": "closed"}
        assert device.capabilities() == {"compartments": 4}
        opening = asyncio.create_task(device.execute("open", OpenParams(compartment=2), ctx()))
        await host.wait_for(lambda: (2, True) in lock_log(host), 1)
        await asyncio.sleep(0.05)
        assert not opening.done()  # released, but nobody pulled yet
        await device.sim_open_compartment(CompartmentParams(compartment=2))
        await asyncio.wait_for(opening, 1)
        assert doors(device)["2"] == "open"
        assert lock_log(host) == [(2, True), (2, False)]
        await device.sim_close_compartment(CompartmentParams(compartment=2))
        assert doors(device)["2"] == "closed"
        assert events(host) == [("compartmentOpened", 2), ("compartmentClosed", 2)]
        # Shut again, it is latched: pulling does nothing.
        with pytest.raises(SequenceError, match="locked"):
            await device.sim_open_compartment(CompartmentParams(compartment=2))
        assert device.state is DeviceState.ONLINE


async def test_a_locked_door_cannot_be_pulled(tmp_path):
    host = RecordingHost()
    device = lockers(tmp_path, host)
    async with running(device, host):
        with pytest.raises(SequenceError, match="compartment 3 is locked"):
            await device.sim_open_compartment(CompartmentParams(compartment=3))
        with pytest.raises(SequenceError, match="already shut"):
            await device.sim_close_compartment(CompartmentParams(compartment=3))
        assert host.events == []


async def test_door_never_opened_is_a_timeout_and_relocks(tmp_path):
    host = RecordingHost()
    device = lockers(tmp_path, host)
    async with running(device, host):
        started = asyncio.get_running_loop().time()
        with pytest.raises(Timeout, match=r"compartment 1 was not opened within 0\.2 s") as info:
            await device.execute("open", OpenParams(compartment=1), ctx())
        assert asyncio.get_running_loop().time() - started >= 0.2
        assert completion_code(info.value) is CompletionCode.TIME_OUT
        with pytest.raises(SequenceError, match="locked"):
            await device.sim_open_compartment(CompartmentParams(compartment=1))
        assert lock_log(host) == [(1, True), (1, False)]
        assert host.events == []


async def test_cancelled_open_relocks(tmp_path):
    host = RecordingHost()
    device = lockers(tmp_path, host, lock_pulse_ms=200)
    async with running(device, host):
        opening = asyncio.create_task(device.execute("open", OpenParams(compartment=4), ctx()))
        await host.wait_for(lambda: (4, True) in lock_log(host), 1)
        opening.cancel()
        with pytest.raises(asyncio.CancelledError):
            await opening
        assert lock_log(host) == [(4, True), (4, False)]  # coil de-energised mid-pulse
        with pytest.raises(SequenceError, match="locked"):
            await device.sim_open_compartment(CompartmentParams(compartment=4))


async def test_bad_compartments(tmp_path):
    host = RecordingHost()
    device = lockers(tmp_path, host)
    async with running(device, host):
        for n in (0, 5):
            with pytest.raises(InvalidData, match="compartment must be 1 to 4"):
                await device.execute("open", OpenParams(compartment=n), ctx())
            with pytest.raises(InvalidData):
                await device.sim_open_compartment(CompartmentParams(compartment=n))
        await open_and_pull(device, host, 1)
        with pytest.raises(SequenceError, match="already open"):
            await device.execute("open", OpenParams(compartment=1), ctx())


async def test_door_left_open_is_a_user_error_until_shut(tmp_path):
    host = RecordingHost()
    device = lockers(tmp_path, host)
    async with running(device, host):
        await open_and_pull(device, host, 3)
        assert device.state is DeviceState.ONLINE
        await host.wait_for(lambda: ("compartmentLeftOpen", 3) in events(host), 1)
        assert device.state is DeviceState.USER_ERROR
        assert detail(device).compartments["3"].left_open
        # Other compartments still work while one is left open.
        await open_and_pull(device, host, 1)
        await device.sim_close_compartment(CompartmentParams(compartment=1))
        await device.sim_close_compartment(CompartmentParams(compartment=3))
        assert device.state is DeviceState.ONLINE
        assert not detail(device).compartments["3"].left_open
        # Compartment 1 was shut before its limit: never reported left open.
        await asyncio.sleep(0.2)
        assert ("compartmentLeftOpen", 1) not in events(host)
        assert device.state is DeviceState.ONLINE


async def test_hardware_fault(tmp_path):
    host = RecordingHost()
    device = lockers(tmp_path, host)
    async with running(device, host):
        await device.sim_fault(FaultParams(kind=FaultKind.HARDWARE_ERROR))
        assert device.state is DeviceState.HARDWARE_ERROR
        with pytest.raises(HardwareError):
            await device.execute("open", OpenParams(compartment=1), ctx())
        assert lock_log(host) == []
        await device.sim_fault(FaultParams(kind=FaultKind.CLEAR))
        assert device.state is DeviceState.ONLINE
        await open_and_pull(device, host, 1)


async def test_doors_moved_while_disconnected_are_read_on_reconnection(tmp_path):
    host = RecordingHost()
    device = lockers(tmp_path, host)
    async with running(device, host):
        await open_and_pull(device, host, 2)
        await device.sim_fault(FaultParams(kind=FaultKind.DISCONNECT))
        await host.wait_for(lambda: device.state is DeviceState.OFFLINE, 1)
        await device.sim_close_compartment(CompartmentParams(compartment=2))
        assert doors(device)["2"] == "open"  # nobody could see it
        await device.sim_fault(FaultParams(kind=FaultKind.CLEAR))
        await host.wait_for(lambda: device.state is DeviceState.ONLINE, 2)
        assert doors(device)["2"] == "closed"
        assert events(host)[-1] == ("compartmentClosed", 2)


async def test_safe_state_without_run(tmp_path):
    host = RecordingHost()
    device = lockers(tmp_path, host)
    await device.safe_state()
    with pytest.raises(SequenceError, match="locked"):
        await device.sim_open_compartment(CompartmentParams(compartment=1))
