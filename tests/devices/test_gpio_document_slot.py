"""The ``gpio`` document slot at the wire: MockFactory pins moved by a simulated sheet and hand.

Real timing: the sheet moves at the simulated roller speed, sensor lines bounce,
the driver debounces them; every test ends by asserting the output pins.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import msgspec
import pytest

from devices.base import DeviceState, NoParams
from devices.document_slot.gpio import GpioDocumentSlot, GpioDocumentSlotSettings
from devices.document_slot.protocol import MotorDirection, SlotMedia
from devices.errors import HardwareError
from devices.sim.document_slot.gpio import GpioDocumentSlotSimulator, Hand
from devices.sim.support.faults import FaultKind, FaultParams
from devices.transports.gpio import release_mock_factory, share_mock_factory
from tests.support import RecordingHost, ctx, make_env, running

FAST: dict[str, Any] = {"shutter_ms": 10, "jam_ms": 800, "feed_timeout_ms": 3000}
ACTIVE_LOW = {
    "entry": {"pin": 5, "active_high": False, "pull": "up"},
    "inside": {"pin": 6, "active_high": False, "pull": "up"},
}


@contextlib.asynccontextmanager
async def rig(tmp_path: Path, **settings: Any) -> AsyncIterator[Any]:
    """A running driver on its wire simulator: ``(device, sim, host)``."""
    host = RecordingHost()
    env = make_env(tmp_path)
    sim = GpioDocumentSlotSimulator("documentSlot", host, env)
    configured = msgspec.convert({**FAST, **settings}, GpioDocumentSlotSettings)
    driver_settings = sim.driver_settings(configured)
    assert isinstance(driver_settings, GpioDocumentSlotSettings)
    await sim.start()
    device = GpioDocumentSlot("documentSlot", host, env, driver_settings)
    try:
        async with running(device, host):
            yield device, sim, host
    finally:
        await sim.aclose()
    assert_safe(sim)


def assert_safe(sim: GpioDocumentSlotSimulator) -> None:
    """The pins as a meter would read them: motor off, shutter locked, LED off."""
    assert sim.motor_direction() is MotorDirection.STOPPED
    assert sim.forward.state == 0
    assert sim.reverse.state == 0
    assert not sim.shutter_open()
    assert sim.led is not None
    assert sim.led.state == 0
    assert sim.shoot_through == 0


def media(device: GpioDocumentSlot) -> SlotMedia:
    return device.media


async def shutter_opens(sim: GpioDocumentSlotSimulator) -> None:
    async with asyncio.timeout(2):
        while not sim.shutter_open():
            await asyncio.sleep(0.005)


@pytest.mark.parametrize("wiring", [{}, ACTIVE_LOW], ids=["active-high", "active-low-pull-up"])
async def test_accept_feeds_a_bouncing_sheet_in(tmp_path, wiring):
    async with rig(tmp_path, **wiring) as (device, sim, host):
        loop = asyncio.get_running_loop()
        accepting = asyncio.create_task(device.execute("accept", NoParams(), ctx()))
        await shutter_opens(sim)
        assert sim.led is not None
        assert sim.led.state == 1, "the guide LED is lit while the slot waits"
        await asyncio.sleep(0.05)
        assert not accepting.done()
        started = loop.time()
        await sim.insert()
        await asyncio.wait_for(accepting, 3)
        took = loop.time() - started
        assert media(device) is SlotMedia.INSIDE
        assert sim.covered(180)
        assert not sim.covered(15)
        # 40 mm pushed by hand, then ~185 mm at 400 mm/s: about 0.55 s of real time.
        assert 0.4 < took < 2.5, took
        assert host.event_names() == ["documentInserted"], "bounces are debounced"
        assert len(sim.entry.states) > 4, "the entry line bounced"
        directions = [o.direction for _, what, o in host.outputs if what == "motor"]
        assert directions == [MotorDirection.FORWARD, MotorDirection.STOPPED]


async def test_a_held_sheet_stalls_the_motor_and_is_a_jam(tmp_path):
    async with rig(tmp_path) as (device, sim, host):
        accepting = asyncio.create_task(device.execute("accept", NoParams(), ctx()))
        await shutter_opens(sim)
        await sim.insert(hold=True)
        # The driver starts the rollers a debounce after the entry sensor: under load
        # the simulated hand may have pushed the sheet home before that.
        await host.wait_for(lambda: sim.motor_direction() is MotorDirection.FORWARD, 1)
        with pytest.raises(HardwareError, match="jammed"):
            await asyncio.wait_for(accepting, 2)
        assert device.state is DeviceState.HARDWARE_ERROR
        assert media(device) is SlotMedia.JAMMED
        assert host.event_names() == ["documentInserted", "jam"]
        assert sim.motor_direction() is MotorDirection.STOPPED
        assert not sim.shutter_open()
        with pytest.raises(HardwareError):
            await device.execute("accept", NoParams(), ctx())
        # The person lets go and pulls the sheet out: the slot reads empty, the jam clears.
        sim.release()
        await sim.pull()
        await host.wait_for(lambda: device.state is DeviceState.ONLINE, 2)
        assert media(device) is SlotMedia.ABSENT


async def test_a_sheet_pulled_out_mid_feed(tmp_path):
    async with rig(tmp_path) as (device, sim, host):
        accepting = asyncio.create_task(device.execute("accept", NoParams(), ctx()))
        await shutter_opens(sim)
        await sim.insert()
        # Let the rollers take it until it covers both sensors, then pull it back out.
        await asyncio.wait_for(sim.pull(at_mm=190), 2)
        await host.wait_for(lambda: "documentTaken" in host.event_names(), 2)
        await host.wait_for(lambda: sim.motor_direction() is MotorDirection.STOPPED, 1)
        assert not accepting.done(), "accept waits for the next document"
        assert sim.shutter_open()
        assert media(device) is SlotMedia.ABSENT
        await sim.insert()
        await asyncio.wait_for(accepting, 3)
        assert media(device) is SlotMedia.INSIDE
        assert host.event_names() == [
            "documentInserted",
            "documentTaken",
            "documentInserted",
        ]
        assert "jam" not in host.event_names()


async def test_a_sheet_pulled_out_while_the_loop_stalls_is_still_taken(tmp_path):
    """A busy board: the loop stalls while the hand pulls the sheet out past both sensors.

    The sheet leaves the inside sensor, then the entry sensor, while the loop is stalled;
    both edges have settled when it runs again.  The driver must still take them in
    that order (inside, then the mouth: ``documentTaken``), not both sensors clear at once.
    """
    async with rig(tmp_path) as (device, sim, host):
        accepting = asyncio.create_task(device.execute("accept", NoParams(), ctx()))
        await shutter_opens(sim)
        await sim.insert()
        update_sensors = sim._update_sensors

        def stall_once_grabbed() -> None:
            update_sensors()
            if sim.hand is Hand.PULLING and not stalled:
                stalled.append(True)
                # The loop stalls for 0.5 s while the world goes on: the hand pulls the
                # sheet out past both sensors, 0.33 s apart, their edges stamped as they come.
                for _ in range(100):
                    time.sleep(0.005)
                    sim._step(0.005)
                    update_sensors()

        stalled: list[bool] = []
        sim._update_sensors = stall_once_grabbed
        await asyncio.wait_for(sim.pull(at_mm=200), 3)
        assert stalled
        await host.wait_for(lambda: "documentTaken" in host.event_names(), 2)
        assert host.event_names() == ["documentInserted", "documentTaken"]
        assert media(device) is SlotMedia.ABSENT
        assert not accepting.done(), "accept waits for the next document"
        accepting.cancel()
        with pytest.raises(asyncio.CancelledError):
            await accepting


async def test_eject_taken_and_not_taken(tmp_path):
    async with rig(tmp_path, retract_after_ms=300) as (device, sim, host):
        accepting = asyncio.create_task(device.execute("accept", NoParams(), ctx()))
        await shutter_opens(sim)
        await sim.insert()
        await asyncio.wait_for(accepting, 3)

        result = await asyncio.wait_for(device.execute("eject", NoParams(), ctx()), 5)
        assert result.taken is False
        assert media(device) is SlotMedia.INSIDE
        directions = [o.direction for _, what, o in host.outputs if what == "motor"]
        assert directions[-4:] == [
            MotorDirection.REVERSE,
            MotorDirection.STOPPED,
            MotorDirection.FORWARD,
            MotorDirection.STOPPED,
        ]

        ejecting = asyncio.create_task(device.execute("eject", NoParams(), ctx()))
        await host.wait_for(lambda: media(device) is SlotMedia.ENTERING, 2)
        await sim.pull()
        assert (await asyncio.wait_for(ejecting, 3)).taken is True
        assert media(device) is SlotMedia.ABSENT
        assert host.event_names()[-1] == "documentTaken"


async def test_retract_drops_the_sheet_in_the_bin(tmp_path):
    async with rig(tmp_path) as (device, sim, host):
        accepting = asyncio.create_task(device.execute("accept", NoParams(), ctx()))
        await shutter_opens(sim)
        await sim.insert()
        await asyncio.wait_for(accepting, 3)
        await asyncio.wait_for(device.execute("retract", NoParams(), ctx()), 5)
        assert sim.binned == 1
        assert sim.head is None
        assert media(device) is SlotMedia.ABSENT
        assert "documentTaken" not in host.event_names()


async def test_h_bridge_enable_sets_the_speed(tmp_path):
    motor = {"enable": {"pin": 13, "frequency_hz": 1000}, "speed": 0.5}
    # At half speed the sheet needs ~0.75 s from the motor start to the inside sensor
    # with no sensor change, too close to FAST's 800 ms jam_ms (a loaded machine ran the
    # simulated sheet's edge late and the driver rightly saw a jam): jam_ms scales with
    # the speed, as an installer would set it.
    async with rig(tmp_path, motor=motor, jam_ms=2 * FAST["jam_ms"]) as (device, sim, _host):
        loop = asyncio.get_running_loop()
        accepting = asyncio.create_task(device.execute("accept", NoParams(), ctx()))
        await shutter_opens(sim)
        assert sim.enable is not None
        assert sim.enable.state == 0
        await sim.insert()
        await asyncio.sleep(0.05)
        assert sim.enable.state == 0.5
        assert sim.enable.frequency_hz == 1000
        started = loop.time()
        await asyncio.wait_for(accepting, 5)
        # Half speed: ~0.45 s of the 195 mm feed was left; at full speed ~0.2 s.
        assert loop.time() - started > 0.3
        assert sim.enable.state == 0


async def test_cancel_mid_feed_leaves_the_outputs_safe(tmp_path):
    async with rig(tmp_path) as (device, sim, _host):
        accepting = asyncio.create_task(device.execute("accept", NoParams(), ctx()))
        await shutter_opens(sim)
        await sim.insert()
        async with asyncio.timeout(2):
            while sim.motor_direction() is not MotorDirection.FORWARD:
                await asyncio.sleep(0.002)
        accepting.cancel()
        with pytest.raises(asyncio.CancelledError):
            await accepting
        assert sim.motor_direction() is MotorDirection.STOPPED
        assert not sim.shutter_open()


async def test_a_sheet_stuck_across_both_sensors_at_rest_is_a_jam(tmp_path):
    async with rig(tmp_path) as (device, sim, host):
        await sim.sim_fault(FaultParams(kind=FaultKind.JAM))
        await host.wait_for(lambda: device.state is DeviceState.HARDWARE_ERROR, 2)
        assert host.event_names()[-1] == "jam"
        await sim.sim_fault(FaultParams(kind=FaultKind.CLEAR))
        await host.wait_for(lambda: device.state is DeviceState.ONLINE, 2)
        assert media(device) is SlotMedia.ABSENT


async def test_shutdown_while_the_motor_runs_switches_it_off(tmp_path):
    host = RecordingHost()
    env = make_env(tmp_path)
    sim = GpioDocumentSlotSimulator("documentSlot", host, env)
    settings = sim.driver_settings(msgspec.convert(FAST, GpioDocumentSlotSettings))
    assert isinstance(settings, GpioDocumentSlotSettings)
    await sim.start()
    device = GpioDocumentSlot("documentSlot", host, env, settings)
    runner = asyncio.create_task(device.run())
    await host.wait_for(lambda: device.state is DeviceState.ONLINE, 2)
    await device._move_shutter(open_=True)
    await device._drive_motor(MotorDirection.REVERSE)
    assert sim.motor_direction() is MotorDirection.REVERSE
    runner.cancel()
    with pytest.raises(asyncio.CancelledError):
        await runner
    assert sim.motor_direction() is MotorDirection.STOPPED
    assert not sim.shutter_open()
    await sim.aclose()


async def test_safe_state_without_run_claims_and_clears_the_outputs(tmp_path):
    factory = share_mock_factory("slot-safe-state")
    try:
        settings = msgspec.convert(
            {"pin_factory": "mock:slot-safe-state"}, GpioDocumentSlotSettings
        )
        # A killed process left the motor and shutter lines driven.
        for number in (20, 16, 26):
            factory.pin(number).function = "output"
            factory.pin(number).state = 1
        device = GpioDocumentSlot("documentSlot", RecordingHost(), make_env(tmp_path), settings)
        await device.safe_state()
        assert [factory.pin(n).state for n in (20, 21, 16, 26)] == [0, 0, 0, 0]
    finally:
        release_mock_factory("slot-safe-state")


async def test_retract_recovers_a_jam_once_the_sheet_is_free(tmp_path):
    async with rig(tmp_path) as (device, sim, host):
        accepting = asyncio.create_task(device.execute("accept", NoParams(), ctx()))
        await shutter_opens(sim)
        await sim.insert(hold=True)
        with pytest.raises(HardwareError):
            await asyncio.wait_for(accepting, 2)
        # Still held: retract tries, the sheet does not move, it jams again.
        with pytest.raises(HardwareError):
            await asyncio.wait_for(device.execute("retract", NoParams(), ctx()), 3)
        assert device.state is DeviceState.HARDWARE_ERROR
        assert host.event_names().count("jam") == 2
        # Let go: retract takes it to the bin and the slot is back online.
        sim.release()
        await asyncio.wait_for(device.execute("retract", NoParams(), ctx()), 5)
        assert sim.binned == 1
        assert device.state is DeviceState.ONLINE
        assert media(device) is SlotMedia.ABSENT
