"""``gpio`` lights and cabinet sensors at the wire: PWM lines read back, switches that bounce."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import msgspec
import pytest

from devices.base import DeviceState, NoParams, OpenClosed
from devices.errors import Unsupported
from devices.lights.gpio import GpioLights, GpioLightsSettings
from devices.lights.protocol import LightColor, LightMode, SetParams
from devices.sensors.gpio import GpioSensors, GpioSensorsSettings
from devices.sensors.protocol import Presence, SensorsDetail
from devices.sim.lights.gpio import GpioLightsSimulator
from devices.sim.sensors.gpio import GpioSensorsSimulator
from devices.transports.gpio import release_mock_factory, share_mock_factory
from tests.support import RecordingHost, ctx, make_env, running

LIGHTS: dict[str, Any] = {
    "positions": {
        "printer": {
            "red": {"pin": 9},
            "green": {"pin": 10},
            "blue": {"pin": 11, "active_high": False},
        },
        "lockers": {"pin": {"pin": 12, "frequency_hz": 800}},
    }
}


@contextlib.asynccontextmanager
async def wired(tmp_path: Path, sim_cls: Any, driver_cls: Any, settings: Any) -> AsyncIterator[Any]:
    host = RecordingHost()
    env = make_env(tmp_path)
    sim = sim_cls(driver_cls.device_class, host, env)
    driver_settings = sim.driver_settings(settings)
    await sim.start()
    device = driver_cls(driver_cls.device_class, host, env, driver_settings)
    try:
        async with running(device, host):
            yield device, sim, host
    finally:
        await sim.aclose()


async def test_lights_drive_pwm_and_colour_channels(tmp_path):
    settings = msgspec.convert(LIGHTS, GpioLightsSettings)
    async with wired(tmp_path, GpioLightsSimulator, GpioLights, settings) as (device, sim, _host):
        red, green, blue = (sim.lines["printer"][c] for c in ("red", "green", "blue"))
        await device.execute(
            "set",
            SetParams(position="printer", mode=LightMode.MEDIUM_FLASH, color=LightColor.CYAN),
            ctx(),
        )
        assert (red.output, green.output, blue.output) == (0.0, 0.5, 0.5)
        assert green.frequency_hz == blue.frequency_hz == 2.0
        assert sim.seen("printer").color is LightColor.CYAN
        await device.execute("set", SetParams(position="lockers", mode=LightMode.ON), ctx())
        mono = sim.lines["lockers"]["pin"]
        assert mono.output == 1.0
        assert mono.frequency_hz == 800
        with pytest.raises(Unsupported, match="one colour"):
            await device.execute(
                "set", SetParams(position="lockers", mode=LightMode.ON, color=LightColor.RED), ctx()
            )
        await device.safe_state()
        assert (red.output, green.output, mono.output) == (0.0, 0.0, 0.0)
        assert blue.output == 1.0, "active-low channel: high is dark"
        assert sim.seen("printer").mode is LightMode.OFF


async def test_lights_safe_state_without_run(tmp_path):
    factory = share_mock_factory("lights-safe-state")
    try:
        settings = msgspec.convert(
            {**LIGHTS, "pin_factory": "mock:lights-safe-state"}, GpioLightsSettings
        )
        for number in (9, 12):
            factory.pin(number).function = "output"
            factory.pin(number).state = 1
            factory.pin(number).clear_states()
        await GpioLights("lights", RecordingHost(), make_env(tmp_path), settings).safe_state()
        assert [s.state for s in factory.pin(9).states][:2] == [1, 0]
        assert [s.state for s in factory.pin(12).states][:2] == [1, 0]
    finally:
        release_mock_factory("lights-safe-state")


def detail(device: GpioSensors) -> SensorsDetail:
    d = device.detail
    assert isinstance(d, SensorsDetail)
    return d


async def test_sensors_door_tamper_and_presence(tmp_path):
    settings = msgspec.convert({"proximity": {"pin": 22, "debounce_ms": 30}}, GpioSensorsSettings)
    async with wired(tmp_path, GpioSensorsSimulator, GpioSensors, settings) as (device, sim, host):
        assert device.status_reasons() == []
        await sim.switch("door", active=True)
        assert detail(device).door is OpenClosed.OPEN
        assert device.status_reasons() == ["door:open"]
        assert device.state is DeviceState.ONLINE
        await sim.person(present=True)
        await sim.person(present=False)
        presence = [d for _, name, d in host.events if name == "presence"]
        assert presence == [Presence(present=True), Presence(present=False)]
        await sim.sim_tamper(NoParams())
        assert detail(device).tamper is True
        assert host.event_names().count("tamper") == 1, "one trip, one event despite bounce"
        assert len(sim.pins["tamper"][0].states) > 4, "the contacts bounced"


async def test_a_tamper_switch_tripped_at_start_latches(tmp_path):
    settings = msgspec.convert({}, GpioSensorsSettings)
    host = RecordingHost()
    env = make_env(tmp_path)
    sim = GpioSensorsSimulator("sensors", host, env)
    driver_settings = sim.driver_settings(settings)
    await sim.start()
    await sim.switch("tamper", active=True)  # the panel was opened while the daemon was down
    device = GpioSensors("sensors", host, env, driver_settings)
    try:
        async with running(device, host):
            assert detail(device).tamper is True
            assert "tamper" in device.status_reasons()
    finally:
        await sim.aclose()
