"""Pulse coin acceptor: the driver against MockFactory pins driven by a simulated acceptor."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import msgspec

from devices.base import DeviceState
from devices.coin_acceptor.messages import DepositStartParams, EventsLost
from devices.coin_acceptor.pulse import PulseCoinAcceptor, PulseSettings, decompose
from devices.registry import resolve
from devices.sim.coin_acceptor.actions import InsertCoinParams
from devices.sim.coin_acceptor.pulse import PulseSimulator
from devices.sim.support.faults import FaultKind, FaultParams
from tests.support import RecordingHost, ctx, make_env, running

FAST = {"pulse_min_ms": 10, "pulse_max_ms": 100, "train_gap_ms": 100}


class Rig:
    def __init__(self, sim: PulseSimulator, driver: PulseCoinAcceptor, host: RecordingHost):
        self.sim = sim
        self.driver = driver
        self.host = host

    def named(self, name: str) -> list[Any]:
        return [data for _, event, data in self.host.events if event == name]

    async def wait_event(self, name: str, count: int = 1, timeout: float = 3.0) -> list[Any]:
        await self.host.wait_for(lambda: len(self.named(name)) >= count, timeout)
        return self.named(name)

    def returned(self) -> list[int]:
        return [data.value for _, what, data in self.host.outputs if what == "returned"]


async def until(predicate: Any, timeout: float = 3.0) -> None:
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.005)


@contextlib.asynccontextmanager
async def rig(tmp_path: Path, **settings: Any) -> AsyncIterator[Rig]:
    host = RecordingHost()
    env = make_env(tmp_path)
    sim = PulseSimulator("coins", host, env)
    spec = resolve("coinAcceptor", "pulse")
    config = sim.driver_settings(msgspec.convert(FAST | settings, spec.settings_type))
    driver = spec.create("coins", host, env, config)
    assert isinstance(driver, PulseCoinAcceptor)
    await sim.start()
    try:
        async with running(driver, host):
            yield Rig(sim, driver, host)
    finally:
        await sim.aclose()


async def deposit(r: Rig) -> str:
    started = await r.driver.deposit_start(DepositStartParams(currency="VND"), ctx())
    await until(lambda: not r.sim.inhibited)
    return started.transaction_id


def test_decompose_splits_merged_trains_into_fewest_coins() -> None:
    table = {1: 1000, 2: 2000, 5: 5000}
    assert decompose(3, table) == [2000, 1000] or decompose(3, table) == [1000, 2000]
    assert sorted(decompose(7, table) or []) == [2000, 5000]
    assert decompose(3, {2: 2000, 5: 5000}) is None


async def test_coins_with_real_timing_and_the_inhibit_line(tmp_path: Path) -> None:
    async with rig(tmp_path) as r:
        assert r.sim.inhibited, "inhibited at start-up"
        await r.sim.sim_insert_coin(_coin(2000))
        await until(lambda: r.returned() == [2000])
        tx = await deposit(r)
        await r.sim.sim_insert_coin(_coin(5000))
        await until(lambda: r.sim.inhibited)  # the guard: inhibited from the first pulse
        await r.sim.sim_insert_coin(_coin(1000))  # waits its turn, then finds it enabled
        coins = await r.wait_event("coinAccepted", 2)
        assert [(c.transaction_id, c.value, c.total) for c in coins] == [
            (tx, 5000, 5000),
            (tx, 1000, 6000),
        ]
        await until(lambda: not r.sim.inhibited)
        assert r.returned() == [2000]
        await r.sim.sim_insert_coin(_coin(777))
        await until(lambda: r.returned() == [2000, 777])  # no coinRejected: the line cannot say


async def test_glitches_are_filtered(tmp_path: Path) -> None:
    async with rig(tmp_path) as r:
        tx = await deposit(r)
        await r.sim.glitches(8)
        await asyncio.sleep(0.3)
        assert r.named("coinAccepted") == []
        assert r.driver.glitches == 8
        # Spikes inside a train do not add pulses either.
        await r.sim.pulse_train(1)
        await r.sim.glitches(2)
        await r.sim.pulse_train(1, spacing=0.02)
        (coin,) = await r.wait_event("coinAccepted")
        assert (coin.transaction_id, coin.value) == (tx, 2000)


async def test_merged_trains_of_a_linear_table_keep_the_money(tmp_path: Path) -> None:
    async with rig(tmp_path) as r:
        tx = await deposit(r)
        await r.sim.pulse_train(3)  # a 1-pulse and a 2-pulse coin run together
        coins = await r.wait_event("coinAccepted", 2)
        assert sorted(c.value for c in coins) == [1000, 2000]
        assert coins[-1].total == 3000
        assert {c.transaction_id for c in coins} == {tx}
        assert r.named("eventsLost") == []


async def test_unknown_train_of_a_non_linear_table_is_reported_lost(tmp_path: Path) -> None:
    async with rig(tmp_path, coins=[1000, 2000, 5000], pulses=[1, 3, 4]) as r:
        tx = await deposit(r)
        await r.sim.pulse_train(2)
        (lost,) = await r.wait_event("eventsLost")
        assert lost == EventsLost(count=None, reason="unknownPulseTrain", transaction_id=tx)
        assert r.named("coinAccepted") == []
        await r.sim.sim_insert_coin(_coin(2000))
        (coin,) = await r.wait_event("coinAccepted")
        assert coin.value == 2000


async def test_fault_output_is_a_hardware_error(tmp_path: Path) -> None:
    async with rig(tmp_path) as r:
        await r.sim.sim_fault(FaultParams(kind=FaultKind.HARDWARE_ERROR))
        await r.host.wait_for(lambda: r.driver.condition is DeviceState.HARDWARE_ERROR)
        await r.sim.sim_fault(FaultParams(kind=FaultKind.CLEAR))
        await r.host.wait_for(lambda: r.driver.condition is DeviceState.ONLINE)


async def test_safe_state_inhibits_then_releases_the_line(tmp_path: Path) -> None:
    async with rig(tmp_path) as r:
        await deposit(r)
        pin = r.sim._factory.pin(r.sim._s().inhibit_pin)
        await r.driver.safe_state()
        assert pin.function == "input", "released: the wiring's pull keeps it inhibited"
        assert r.sim.inhibited


async def test_safe_state_without_run_claims_the_line(tmp_path: Path) -> None:
    host = RecordingHost()
    env = make_env(tmp_path)
    sim = PulseSimulator("coins", host, env)
    config = sim.driver_settings(PulseSettings(**FAST))  # type: ignore[arg-type]
    driver = resolve("coinAcceptor", "pulse").create("coins", host, env, config)
    await sim.start()
    try:
        await driver.safe_state()
        assert sim.inhibited
    finally:
        await driver.aclose()
        await sim.aclose()


def _coin(value: int) -> InsertCoinParams:
    return InsertCoinParams(value=value)
