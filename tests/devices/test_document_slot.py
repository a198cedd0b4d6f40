"""documentSlot: accept/eject/retract/close sequences, jams and cancellation safety."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

import pytest

from devices.base import DeviceState, NoParams, OpenClosed
from devices.document_slot.protocol import DocumentSlotDetail, MotorDirection, SlotMedia
from devices.errors import CompletionCode, HardwareError, Offline, SequenceError, completion_code
from devices.sim.document_slot.behaviour import MotorOutput, ShutterOutput, SimDocumentSlot
from devices.sim.support.faults import FaultKind, FaultParams
from tests.support import RecordingHost, build, ctx, running

FAST = {"feed_ms": 20, "feed_timeout_ms": 300, "retract_after_ms": 200}


def slot(tmp_path: Path, host: RecordingHost, **settings) -> SimDocumentSlot:
    device = build("documentSlot", "sim", tmp_path, host, **{**FAST, **settings})
    assert isinstance(device, SimDocumentSlot)
    return device


def detail(device: SimDocumentSlot) -> DocumentSlotDetail:
    d = device.detail
    assert isinstance(d, DocumentSlotDetail)
    return d


def motor_log(host: RecordingHost) -> list[MotorDirection]:
    return [
        d.direction for _, what, d in host.outputs if what == "motor" and isinstance(d, MotorOutput)
    ]


def shutter_log(host: RecordingHost) -> list[bool]:
    return [
        d.open for _, what, d in host.outputs if what == "shutter" and isinstance(d, ShutterOutput)
    ]


def assert_safe(device: SimDocumentSlot, host: RecordingHost) -> None:
    """Motor stopped and shutter closed, as the world and the detail see it."""
    assert detail(device).shutter is OpenClosed.CLOSED
    assert shutter_log(host)[-1:] in ([], [False])
    assert motor_log(host)[-1:] in ([], [MotorDirection.STOPPED])


async def shutter_opens(host: RecordingHost) -> None:
    await host.wait_for(lambda: shutter_log(host)[-1:] == [True], 2)


async def accept_one(device: SimDocumentSlot, host: RecordingHost) -> None:
    accepting = asyncio.create_task(device.execute("accept", NoParams(), ctx()))
    await shutter_opens(host)
    await device.sim_insert_document(NoParams())
    await asyncio.wait_for(accepting, 2)


async def test_accept_takes_a_document_in(tmp_path):
    host = RecordingHost()
    device = slot(tmp_path, host)
    async with running(device, host):
        accepting = asyncio.create_task(device.execute("accept", NoParams(), ctx()))
        await shutter_opens(host)
        assert detail(device).shutter is OpenClosed.OPEN
        await asyncio.sleep(0.05)
        assert not accepting.done()  # waits for a document
        await device.sim_insert_document(NoParams())
        assert detail(device).media is SlotMedia.ENTERING
        await asyncio.wait_for(accepting, 2)
        assert detail(device).media is SlotMedia.INSIDE
        assert host.event_names() == ["documentInserted"]
    assert shutter_log(host) == [True, False]
    assert motor_log(host) == [MotorDirection.FORWARD, MotorDirection.STOPPED]
    assert_safe(device, host)


async def test_nothing_goes_into_a_closed_slot(tmp_path):
    host = RecordingHost()
    device = slot(tmp_path, host)
    async with running(device, host):
        with pytest.raises(SequenceError, match="shutter is closed"):
            await device.sim_insert_document(NoParams())
        with pytest.raises(SequenceError):
            await device.execute("eject", NoParams(), ctx())
        with pytest.raises(SequenceError):
            await device.execute("retract", NoParams(), ctx())
        await accept_one(device, host)
        with pytest.raises(SequenceError, match="already in the slot"):
            await device.execute("accept", NoParams(), ctx())


async def test_cancel_accept_while_waiting_leaves_the_slot_safe(tmp_path):
    host = RecordingHost()
    device = slot(tmp_path, host)
    async with running(device, host):
        accepting = asyncio.create_task(device.execute("accept", NoParams(), ctx()))
        await shutter_opens(host)
        accepting.cancel()
        with pytest.raises(asyncio.CancelledError):
            await accepting
        assert_safe(device, host)
        assert shutter_log(host) == [True, False]
        assert detail(device).media is SlotMedia.ABSENT


async def test_cancel_accept_while_feeding_stops_the_motor(tmp_path):
    host = RecordingHost()
    device = slot(tmp_path, host, feed_ms=300, feed_timeout_ms=1000)
    async with running(device, host):
        accepting = asyncio.create_task(device.execute("accept", NoParams(), ctx()))
        await shutter_opens(host)
        await device.sim_insert_document(NoParams())
        await host.wait_for(lambda: motor_log(host) == [MotorDirection.FORWARD], 1)
        accepting.cancel()
        with pytest.raises(asyncio.CancelledError):
            await accepting
        assert_safe(device, host)
        assert motor_log(host) == [MotorDirection.FORWARD, MotorDirection.STOPPED]
        # The stopped rollers never move the document again: it stays in the mouth.
        await asyncio.sleep(0.4)
        assert detail(device).media is SlotMedia.ENTERING
        # ... from where eject hands it back.
        ejecting = asyncio.create_task(device.execute("eject", NoParams(), ctx()))
        await shutter_opens(host)
        await device.sim_take_document(NoParams())
        assert (await asyncio.wait_for(ejecting, 2)).taken
        assert_safe(device, host)


async def test_a_document_pulled_back_out_is_waited_for_again(tmp_path):
    host = RecordingHost()
    device = slot(tmp_path, host, feed_ms=200, feed_timeout_ms=1000)
    async with running(device, host):
        accepting = asyncio.create_task(device.execute("accept", NoParams(), ctx()))
        await shutter_opens(host)
        await device.sim_insert_document(NoParams())
        await device.sim_take_document(NoParams())
        await asyncio.sleep(0.05)
        assert not accepting.done()
        assert detail(device).shutter is OpenClosed.OPEN
        await device.sim_insert_document(NoParams())
        await asyncio.wait_for(accepting, 2)
        assert detail(device).media is SlotMedia.INSIDE
        assert host.event_names() == ["documentInserted", "documentTaken", "documentInserted"]


async def test_eject_until_taken(tmp_path):
    host = RecordingHost()
    device = slot(tmp_path, host)
    async with running(device, host):
        await accept_one(device, host)
        ejecting = asyncio.create_task(device.execute("eject", NoParams(), ctx()))
        await host.wait_for(lambda: detail(device).media is SlotMedia.ENTERING, 2)
        assert detail(device).shutter is OpenClosed.OPEN
        await device.sim_take_document(NoParams())
        result = await asyncio.wait_for(ejecting, 2)
        assert result.taken
        assert detail(device).media is SlotMedia.ABSENT
        assert host.event_names() == ["documentInserted", "documentTaken"]
        assert_safe(device, host)
        assert MotorDirection.REVERSE in motor_log(host)


async def test_eject_not_taken_is_pulled_back_inside(tmp_path):
    host = RecordingHost()
    device = slot(tmp_path, host)
    async with running(device, host):
        await accept_one(device, host)
        started = asyncio.get_running_loop().time()
        result = await asyncio.wait_for(device.execute("eject", NoParams(), ctx()), 2)
        assert not result.taken
        assert asyncio.get_running_loop().time() - started >= 0.2  # retract_after_ms
        assert detail(device).media is SlotMedia.INSIDE
        assert "documentTaken" not in host.event_names()
        assert_safe(device, host)


async def test_retract_stores_the_document(tmp_path):
    host = RecordingHost()
    device = slot(tmp_path, host)
    async with running(device, host):
        await accept_one(device, host)
        await asyncio.wait_for(device.execute("retract", NoParams(), ctx()), 2)
        assert detail(device).media is SlotMedia.ABSENT
        assert "documentTaken" not in host.event_names()
        assert_safe(device, host)


async def test_close(tmp_path):
    host = RecordingHost()
    device = slot(tmp_path, host)
    async with running(device, host):
        await device.execute("close", NoParams(), ctx())
        assert_safe(device, host)


async def test_jam_fault_during_accept(tmp_path):
    host = RecordingHost()
    device = slot(tmp_path, host)
    async with running(device, host):
        accepting = asyncio.create_task(device.execute("accept", NoParams(), ctx()))
        await shutter_opens(host)
        await device.sim_fault(FaultParams(kind=FaultKind.JAM))
        with pytest.raises(HardwareError) as info:
            await asyncio.wait_for(accepting, 2)
        assert completion_code(info.value) is CompletionCode.HARDWARE_ERROR
        assert device.state is DeviceState.HARDWARE_ERROR
        assert detail(device).media is SlotMedia.JAMMED
        assert host.event_names() == ["jam"]
        assert_safe(device, host)
        with pytest.raises(HardwareError):
            await device.execute("accept", NoParams(), ctx())
        # A technician clears it: the slot is empty and online again.
        await device.sim_fault(FaultParams(kind=FaultKind.CLEAR))
        assert device.state is DeviceState.ONLINE
        assert detail(device).media is SlotMedia.ABSENT
        await accept_one(device, host)


async def test_feed_that_does_not_arrive_is_a_jam(tmp_path):
    # Rollers slower than the feed timeout: the class detects the jam itself.
    host = RecordingHost()
    device = slot(tmp_path, host, feed_ms=500, feed_timeout_ms=100)
    async with running(device, host):
        accepting = asyncio.create_task(device.execute("accept", NoParams(), ctx()))
        await shutter_opens(host)
        await device.sim_insert_document(NoParams())
        with pytest.raises(HardwareError, match="jammed while feeding it in"):
            await asyncio.wait_for(accepting, 2)
        assert detail(device).media is SlotMedia.JAMMED
        assert device.state is DeviceState.HARDWARE_ERROR
        assert host.event_names() == ["documentInserted", "jam"]
        assert_safe(device, host)
        with pytest.raises(HardwareError, match="jammed"):
            await device.sim_take_document(NoParams())


async def test_disconnect_during_accept(tmp_path):
    host = RecordingHost()
    device = slot(tmp_path, host)
    async with running(device, host):
        accepting = asyncio.create_task(device.execute("accept", NoParams(), ctx()))
        await shutter_opens(host)
        await device.sim_fault(FaultParams(kind=FaultKind.DISCONNECT))
        with pytest.raises(Offline):
            await asyncio.wait_for(accepting, 2)
        assert device.state is DeviceState.OFFLINE
        assert_safe(device, host)
        with pytest.raises(Offline):
            await device.sim_insert_document(NoParams())


async def test_deadline_of_accept_leaves_the_slot_safe(tmp_path):
    # The daemon ends a long command at its deadline by cancelling it.
    host = RecordingHost()
    device = slot(tmp_path, host)
    async with running(device, host):
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(device.execute("accept", NoParams(), ctx()), 0.1)
        assert_safe(device, host)
        assert shutter_log(host) == [True, False]


async def test_safe_state_without_run(tmp_path):
    host = RecordingHost()
    device = slot(tmp_path, host)
    await device.safe_state()
    assert detail(device).shutter is OpenClosed.CLOSED
    assert motor_log(host) == []
