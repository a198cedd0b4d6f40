"""Fault injection as docs/api.md ("Simulators") promises, for every class and simulator.

For each implementation a class's simulator runs behind (``sim``: the behavioural
twin; the others: the real driver with its wire simulator, as ``kioskd run --sim``
runs them), every fault kind the table lists is injected over MQTT; the test
waits for the published state the table names, sends one command and checks its
completion code, then clears the fault and waits for ``online``.  A kind the
table leaves out must be refused with ``unsupportedCommand`` and change nothing.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from daemon.config import Config
from tests.conftest import Broker, RunningDaemon, make_config
from tests.contract.conftest import contract_config
from tests.contract.support import Payload, failed, ok, sim_call, start, state
from tests.uiclient import UiClient, connect

#: ``slow``'s delay in the suite, ms; a slow command takes at least this long.
SLOW_MS = 400
#: How long a fault's state may take to show (a wire driver notices at its next poll).
STATE_S = 3.0
#: How long a device may take to be ``online`` again after ``clear`` (reconnection).
RECOVER_S = 6.0

ONLINE, OFFLINE, HW = "online", "offline", "hardwareError"

#: The common semantics: fault kind -> (state once it shows, the next command's code).
COMMON: dict[str, tuple[str, str]] = {
    "disconnect": (OFFLINE, "deviceNotReady"),
    "hardwareError": (HW, "hardwareError"),
    "jam": (HW, "hardwareError"),
    "slow": (ONLINE, "success"),
    "garbage": (HW, "hardwareError"),
}
ALL = tuple(COMMON)
KINDS = (*ALL, "unresponsive")
#: Every behavioural simulator offers every kind.
SIM = KINDS

#: Which kinds each (class, implementation) offers, and where garbage leaves the state
#: ``online`` (the driver reads the device for a command only).  docs/api.md's table.
OFFERED: dict[tuple[str, str], tuple[str, ...]] = {
    ("scanner", "sim"): SIM,
    ("scanner", "serial"): ALL,
    ("cardReader", "sim"): SIM,
    ("printer", "sim"): SIM,
    ("printer", "escpos"): (*ALL, "unresponsive"),
    ("coinAcceptor", "sim"): SIM,
    ("coinAcceptor", "cctalk"): ALL,
    ("cashAcceptor", "sim"): SIM,
    ("cashAcceptor", "ssp"): ALL,
    ("cashAcceptor", "cctalk"): ALL,
    ("documentSlot", "sim"): SIM,
    ("documentSlot", "gpio"): ("jam",),
    ("lockers", "sim"): SIM,
    ("lockers", "gpio"): ("disconnect",),
    ("camera", "sim"): SIM,
    ("camera", "v4l2"): ("disconnect", "hardwareError", "jam", "garbage"),
    ("lights", "sim"): SIM,
    ("lights", "gpio"): (),
    ("sensors", "sim"): SIM,
    ("sensors", "gpio"): (),
}
GARBAGE_ONLINE = {"cardReader", "camera"}


def expected(device_class: str, kind: str) -> tuple[str, str]:
    """The state and completion code ``kind`` gives on ``device_class``."""
    if kind == "unresponsive":
        return HW, "hardwareError"
    if kind == "garbage" and device_class in GARBAGE_ONLINE:
        return ONLINE, "hardwareError"
    return COMMON[kind]


CASES = [pytest.param(cls, driver, id=f"{cls}={driver}") for (cls, driver) in OFFERED]


@pytest.fixture
def config(broker: Broker, tmp_path: Path, request: pytest.FixtureRequest) -> Config:
    """The sim config with the case's class on the case's driver (the device id is the class)."""
    callspec = getattr(request.node, "callspec", None)
    if callspec is None:
        return make_config(broker.port, tmp_path)  # ``kioskd run --sim`` as it is
    params = callspec.params
    return contract_config(broker.port, tmp_path, {params["device_class"]: params["driver"]})


@pytest.fixture
async def ui(broker: Broker, daemon: RunningDaemon) -> AsyncIterator[UiClient]:
    """The technician: the probes include staff operations (``assign``, ``resetTamper``)."""
    async with connect(broker.port, daemon.board, "technician") as client:
        yield client


async def _later(
    ui: UiClient, dev: str, action: str, params: Payload | None, delay_s: float
) -> None:
    await asyncio.sleep(delay_s)
    await sim_call(ui, dev, action, params)


async def command(ui: UiClient, dev: str, slow: bool) -> Payload:
    """Send the class's probe command (with what a person does for it); return its completion."""
    wait_s = SLOW_MS / 1000 if slow else 0.0
    person: tuple[str, Payload, float] | None = None
    params: Payload
    name: str
    match dev:
        case "scanner":
            name, params = "read", {"timeoutMs": 5000}
            person = ("scan", {"text": "0123"}, 0.2)
        case "cardReader":
            await sim_call(ui, dev, "presentCard", {})
            name, params = "waitForCard", {"timeoutMs": 5000}
        case "printer":
            name, params = "cut", {}
        case "coinAcceptor" | "cashAcceptor":
            name, params = "depositStart", {"currency": "VND", "timeoutMs": 5000}
        case "documentSlot":
            name, params = "accept", {"timeoutMs": 5000}
            person = ("insertDocument", {}, 0.2 + wait_s)
        case "lockers":
            name, params = "assign", {"compartment": 1, "timeoutMs": 5000}
            person = ("openCompartment", {"compartment": 1}, 0.05 + wait_s)
        case "camera":
            name, params = "takePicture", {"purpose": "face"}
        case "lights":
            name, params = "set", {"position": "scanner", "mode": "on"}
        case _:
            name, params = "resetTamper", {}
    request = await start(ui, dev, name, params)
    helper = None
    if person is not None:
        action, action_params, delay_s = person
        helper = asyncio.create_task(_later(ui, dev, action, action_params, delay_s))
    completion = await request.completion(10)
    if helper is not None:
        helper.cancel()
        await asyncio.gather(helper, return_exceptions=True)
    return completion


async def undo(ui: UiClient, dev: str, completion: Payload) -> None:
    """Put back what a successful probe command changed."""
    match dev:
        case "coinAcceptor" | "cashAcceptor":
            ended = {"transactionId": completion["result"]["transactionId"]}
            ok(await ui.device(dev, "depositEnd", ended))
        case "documentSlot":
            ok(await ui.device(dev, "retract", {}))
        case "lockers":
            ok(await sim_call(ui, dev, "closeCompartment", {"compartment": 1}))
        case _:
            pass


async def check_fault(ui: UiClient, dev: str, kind: str, offered: tuple[str, ...]) -> None:
    """Inject ``kind``; assert the state and the next command's code; clear; back online."""
    params: Payload = {"kind": kind}
    if kind == "slow":
        params["delayMs"] = SLOW_MS
    answer = await sim_call(ui, dev, "fault", params)
    if kind not in offered:
        # ccTalk's and SSP's own kind lists have no ``unresponsive`` (``disconnect`` and
        # ``lineCut`` are their silences).
        failed(
            answer,
            "invalidData"
            if answer.get("completionCode") == "invalidData"
            else "unsupportedCommand",
        )
        assert (await state(ui, dev))["state"] == ONLINE, f"refused {kind} changed the state"
        return
    ok(answer)
    want_state, want_code = expected(dev, kind)
    if want_state != ONLINE:
        await state(ui, dev, lambda s: s["state"] == want_state, timeout=STATE_S)
    started = time.monotonic()
    completion = await command(ui, dev, slow=kind == "slow")
    elapsed = time.monotonic() - started
    assert completion["completionCode"] == want_code, (kind, completion)
    assert (await state(ui, dev))["state"] == want_state, kind
    # An acceptor is slow at coins and notes, not at commands.
    if kind == "slow" and dev not in ("coinAcceptor", "cashAcceptor"):
        assert elapsed >= SLOW_MS / 1000, elapsed
    ok(await sim_call(ui, dev, "fault", {"kind": "clear"}))
    await state(ui, dev, lambda s: s["state"] == ONLINE, timeout=RECOVER_S)
    if want_code == "success":
        await undo(ui, dev, completion)


@pytest.mark.parametrize(("device_class", "driver"), CASES)
async def test_every_fault_kind(ui: UiClient, device_class: str, driver: str) -> None:
    offered = OFFERED[(device_class, driver)]
    await state(ui, device_class, lambda s: s["state"] == ONLINE, timeout=RECOVER_S)
    for kind in KINDS:
        await check_fault(ui, device_class, kind, offered)


async def test_lockers_on_header_pins_refuse_disconnect(ui: UiClient) -> None:
    """``kioskd run --sim``'s bank has no expander: no bus to lose, so no silent success."""
    answer = await sim_call(ui, "lockers", "fault", {"kind": "disconnect"})
    assert "header pins" in failed(answer, "unsupportedCommand")
    assert (await state(ui, "lockers"))["state"] == ONLINE
    ok(await command(ui, "lockers", slow=False))


async def test_the_acceptor_s_state_shows_offline_when_a_command_finds_it_gone(
    ui: UiClient,
) -> None:
    """ccTalk ``disconnect``: the command that meets the silence and the state agree at once.

    The command spends the link's retries; the poll loop must not spend them again
    before the state says ``offline`` (it lagged 1.2 s behind the refusal).
    """
    await state(ui, "coinAcceptor", lambda s: s["state"] == ONLINE, timeout=RECOVER_S)
    ok(await sim_call(ui, "coinAcceptor", "fault", {"kind": "disconnect"}))
    params = {"currency": "VND", "timeoutMs": 5000}
    failed(await ui.device("coinAcceptor", "depositStart", params), "deviceNotReady")
    refused = time.monotonic()
    await state(ui, "coinAcceptor", lambda s: s["state"] == OFFLINE, timeout=STATE_S)
    assert time.monotonic() - refused < 0.5
    ok(await sim_call(ui, "coinAcceptor", "fault", {"kind": "clear"}))
    await state(ui, "coinAcceptor", lambda s: s["state"] == ONLINE, timeout=RECOVER_S)
