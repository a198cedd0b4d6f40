"""lights and sensors: set, positions, door and tamper latch, faults."""

from __future__ import annotations

from pathlib import Path

import msgspec
import pytest

from devices.base import DeviceState, NoParams, OpenClosed
from devices.errors import HardwareError, InvalidData, Offline, Unsupported
from devices.lights.protocol import (
    DEFAULT_POSITIONS,
    Light,
    LightColor,
    LightMode,
    LightsDetail,
    SetParams,
)
from devices.sensors.protocol import SensorsDetail
from devices.sim.lights.behaviour import SimLights, SimLightsSettings
from devices.sim.sensors.actions import DoorParams
from devices.sim.sensors.behaviour import SimSensors
from devices.sim.support.faults import FaultKind, FaultParams
from tests.support import RecordingHost, build, ctx, running

# --- lights -------------------------------------------------------------------------------


def lights(tmp_path: Path, host: RecordingHost, **settings) -> SimLights:
    device = build("lights", "sim", tmp_path, host, **settings)
    assert isinstance(device, SimLights)
    return device


def light_outputs(host: RecordingHost) -> list[Light]:
    return [d for _, what, d in host.outputs if what == "light" and isinstance(d, Light)]


def positions(device: SimLights) -> dict[str, tuple[str, str | None]]:
    detail = device.detail
    assert isinstance(detail, LightsDetail)
    return {
        p: (s.mode.value, s.color.value if s.color else None) for p, s in detail.positions.items()
    }


async def test_lights_start_off_at_every_default_position(tmp_path):
    host = RecordingHost()
    device = lights(tmp_path, host)
    async with running(device, host):
        assert positions(device) == dict.fromkeys(DEFAULT_POSITIONS, ("off", None))
        assert [(o.position, o.mode) for o in light_outputs(host)] == [
            (p, LightMode.OFF) for p in DEFAULT_POSITIONS
        ]
        assert device.capabilities()["positions"] == list(DEFAULT_POSITIONS)


async def test_set_a_position(tmp_path):
    host = RecordingHost()
    device = lights(tmp_path, host)
    async with running(device, host):
        host.outputs.clear()
        params = SetParams(position="cardReader", mode=LightMode.SLOW_FLASH, color=LightColor.GREEN)
        result = await device.execute("set", params, ctx())
        assert result == Light(
            position="cardReader", mode=LightMode.SLOW_FLASH, color=LightColor.GREEN
        )
        assert light_outputs(host) == [result]
        assert positions(device)["cardReader"] == ("slowFlash", "green")
        assert positions(device)["printer"] == ("off", None)
        await device.execute("set", SetParams(position="cardReader", mode=LightMode.ON), ctx())
        assert positions(device)["cardReader"] == ("on", None)


async def test_set_refuses_unknown_positions_and_modes(tmp_path):
    host = RecordingHost()
    device = lights(tmp_path, host, positions=["entrance", "exit"])
    async with running(device, host):
        with pytest.raises(
            InvalidData, match=r"no light position 'printer' \(known: entrance, exit\)"
        ):
            await device.execute("set", SetParams(position="printer", mode=LightMode.ON), ctx())
        await device.execute("set", SetParams(position="exit", mode=LightMode.QUICK_FLASH), ctx())
        assert positions(device) == {"entrance": ("off", None), "exit": ("quickFlash", None)}
    with pytest.raises(msgspec.ValidationError):
        msgspec.convert({"position": "exit", "mode": "blink"}, SetParams)
    with pytest.raises(msgspec.ValidationError):
        msgspec.convert({"position": "exit", "mode": "on", "color": "purple"}, SetParams)
    with pytest.raises(msgspec.ValidationError, match="unique"):
        msgspec.convert({"positions": ["a", "a"]}, SimLightsSettings)


async def test_single_colour_positions_refuse_a_colour(tmp_path: Path) -> None:
    host = RecordingHost()
    device = lights(tmp_path, host, positions=["scanner", "printer"], single_color=["printer"])
    async with running(device, host):
        assert device.capabilities()["positionColors"] == {
            "scanner": [c.value for c in LightColor],
            "printer": [],
        }
        host.outputs.clear()
        green = SetParams(position="printer", mode=LightMode.ON, color=LightColor.GREEN)
        with pytest.raises(Unsupported, match="one colour of its own"):
            await device.execute("set", green, ctx())
        assert light_outputs(host) == []
        assert positions(device)["printer"] == ("off", None)
        await device.execute("set", SetParams(position="printer", mode=LightMode.ON), ctx())
        assert positions(device)["printer"] == ("on", None)
    with pytest.raises(msgspec.ValidationError, match="single_color"):
        msgspec.convert({"positions": ["a"], "single_color": ["b"]}, SimLightsSettings)


async def test_lights_faults_and_safe_state(tmp_path):
    host = RecordingHost()
    device = lights(tmp_path, host)
    async with running(device, host):
        await device.execute("set", SetParams(position="printer", mode=LightMode.ON), ctx())
        await device.sim_fault(FaultParams(kind=FaultKind.HARDWARE_ERROR))
        assert device.state is DeviceState.HARDWARE_ERROR
        with pytest.raises(HardwareError):
            await device.execute("set", SetParams(position="printer", mode=LightMode.OFF), ctx())
        # Clearing a fault does not reset the lights: only a reconnection does.
        await device.sim_fault(FaultParams(kind=FaultKind.CLEAR))
        assert positions(device)["printer"] == ("on", None)
        host.outputs.clear()
        await device.safe_state()
        assert all(o.mode is LightMode.OFF for o in light_outputs(host))
        assert {o.position for o in light_outputs(host)} == set(DEFAULT_POSITIONS)
        assert set(positions(device).values()) == {("off", None)}


async def test_lights_safe_state_without_run(tmp_path):
    host = RecordingHost()
    device = lights(tmp_path, host)
    await device.safe_state()
    assert len(light_outputs(host)) == len(DEFAULT_POSITIONS)


# --- sensors ------------------------------------------------------------------------------


def sensors(tmp_path: Path, host: RecordingHost) -> SimSensors:
    device = build("sensors", "sim", tmp_path, host)
    assert isinstance(device, SimSensors)
    return device


def sensor_detail(device: SimSensors) -> SensorsDetail:
    detail = device.detail
    assert isinstance(detail, SensorsDetail)
    return detail


async def test_cabinet_door(tmp_path):
    host = RecordingHost()
    device = sensors(tmp_path, host)
    async with running(device, host):
        assert device.status_reasons() == []
        await device.sim_door(DoorParams(open=True))
        assert sensor_detail(device).door is OpenClosed.OPEN
        assert device.status_reasons() == ["door:open"]
        assert device.state is DeviceState.ONLINE  # the daemon is degraded, not the device
        await device.sim_door(DoorParams(open=True))  # no change, no event
        await device.sim_door(DoorParams(open=False))
        assert sensor_detail(device).door is OpenClosed.CLOSED
        assert device.status_reasons() == []
        assert host.event_names() == ["doorOpened", "doorClosed"]


async def test_tamper_latches_until_reset(tmp_path):
    host = RecordingHost()
    device = sensors(tmp_path, host)
    async with running(device, host):
        await device.sim_tamper(NoParams())
        assert sensor_detail(device).tamper
        assert device.status_reasons() == ["tamper"]
        await device.sim_door(DoorParams(open=True))
        assert device.status_reasons() == ["door:open", "tamper"]
        await device.sim_tamper(NoParams())  # every trip is reported
        assert host.event_names() == ["tamper", "doorOpened", "tamper"]
        await device.execute("resetTamper", NoParams(), ctx())
        assert not sensor_detail(device).tamper
        assert device.status_reasons() == ["door:open"]
        # The state was republished with each change (the daemon recomputes status then).
        assert [d.tamper for _, _, d in host.states if isinstance(d, SensorsDetail)][-1] is False


async def test_sensor_faults(tmp_path):
    host = RecordingHost()
    device = sensors(tmp_path, host)
    async with running(device, host):
        await device.sim_tamper(NoParams())
        await device.sim_fault(FaultParams(kind=FaultKind.HARDWARE_ERROR))
        assert device.state is DeviceState.HARDWARE_ERROR
        with pytest.raises(HardwareError):
            await device.execute("resetTamper", NoParams(), ctx())
        assert sensor_detail(device).tamper  # still latched
        with pytest.raises(HardwareError):
            await device.sim_door(DoorParams(open=True))
        await device.sim_fault(FaultParams(kind=FaultKind.DISCONNECT))
        await host.wait_for(lambda: device.state is DeviceState.OFFLINE, 1)
        with pytest.raises(Offline):
            await device.execute("resetTamper", NoParams(), ctx())
        await device.sim_fault(FaultParams(kind=FaultKind.CLEAR))
        await host.wait_for(lambda: device.state is DeviceState.ONLINE, 2)
        assert sensor_detail(device).tamper  # the latch survives a reconnection
        await device.execute("resetTamper", NoParams(), ctx())
        assert device.status_reasons() == []
