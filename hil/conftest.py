"""Fixtures of the HIL suite: the rig, a UI client per test, and the hands at the rig.

``pytest hil`` starts the sim rig itself (``python -m daemon run --sim`` on a free
port, state in a temp dir); ``pytest hil --rig FILE`` runs the same tests against the
rig the file describes (see docs/hil.md).  Tests talk MQTT only.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import aiomqtt
import pytest

from hil.rig import DEFAULT_PERSON_TIMEOUT_S, Hands, Rig, RigError, load_rig, open_ui
from hil.simrig import SimRigError, sim_rig, tail
from hil.wire import expect_payload, retained
from tests.uiclient import UiClient

SIM_RIG = Path(__file__).parent / "rigs" / "sim.toml"
_RIG_KEY = pytest.StashKey[Rig | None]()
_SIM_LOG_KEY = pytest.StashKey[Path]()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("hil", "hardware-in-the-loop rig")
    group.addoption(
        "--rig",
        metavar="FILE",
        default=None,
        help="rig file (TOML, see docs/hil.md); without it the suite starts the sim rig "
        "(python -m daemon run --sim) itself",
    )
    group.addoption(
        "--person-timeout",
        metavar="SECONDS",
        type=float,
        default=DEFAULT_PERSON_TIMEOUT_S,
        help=f"how long a person at the rig is given per step (default {DEFAULT_PERSON_TIMEOUT_S:g})",
    )


def pytest_configure(config: pytest.Config) -> None:
    path = config.getoption("--rig", default=None)
    if path is None:
        config.stash[_RIG_KEY] = None
        return
    try:
        config.stash[_RIG_KEY] = load_rig(path)
    except RigError as exc:
        raise pytest.UsageError(f"--rig: {exc}") from None


def pytest_report_header(config: pytest.Config) -> str:
    given = config.stash.get(_RIG_KEY, None)
    if given is None:
        return "hil rig: sim rig (self-started: python -m daemon run --sim)"
    people = [d.id for d in given.devices if d.hands == "person"]
    return (
        f"hil rig: {given.source}: board {given.board} at {given.broker}, "
        f"{len(given.devices)} devices" + (f", person hands: {', '.join(people)}" if people else "")
    )


def _run(coro: Coroutine[Any, Any, Any]) -> Any:
    """Run a coroutine to completion on a private loop in a thread (session setup).

    The test's own loops (pytest-asyncio, one per test) are left alone.
    """
    with ThreadPoolExecutor(1, thread_name_prefix="hil-setup") as pool:
        return pool.submit(asyncio.run, coro).result()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    """Attach the tail of the self-started sim rig's log to a failed test's report."""
    report = yield
    log = item.config.stash.get(_SIM_LOG_KEY, None)
    if log is not None and report.failed:
        report.sections.append(("kioskd log (tail)", f"{log}\n{tail(log, 40)}"))
    return report


async def _wait_status(rig: Rig, states: tuple[str, ...], timeout: float) -> dict[str, Any]:
    try:
        async with open_ui(rig) as ui, ui.subscription(f"{rig.root}/status") as queue:
            return await expect_payload(
                queue,
                lambda p: p.get("state") in states,
                timeout,
                f"status {' or '.join(states)} of board {rig.board}",
            )
    except aiomqtt.MqttError as exc:
        raise RigError(f"cannot reach the broker {rig.broker} of {rig.source}: {exc}") from None


@pytest.fixture(scope="session")
def rig(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Rig]:
    """The rig under test, its daemon up (status ready, or degraded on a given rig)."""
    given = request.config.stash[_RIG_KEY]
    if given is not None:
        # A real board may come up degraded (door open for the test); tests say so.
        _run(_wait_status(given, ("ready", "degraded"), 15))
        yield given
        return
    base = load_rig(SIM_RIG)
    with sim_rig(tmp_path_factory.mktemp("sim-rig")) as sim:
        if sim.board != base.board:
            raise SimRigError(f"the sim rig runs board {sim.board}, {SIM_RIG} says {base.board}")
        request.config.stash[_SIM_LOG_KEY] = sim.log
        started = base.with_broker(sim.host, sim.port)
        try:
            _run(_wait_status(started, ("ready",), 20))
        except AssertionError as exc:
            raise SimRigError(f"{exc}\nlog: {sim.log}") from None
        yield started


def _stdin_is_tty(config: pytest.Config) -> bool:
    """Whether a person can be at a terminal (pytest's capture hides the real stdin)."""
    capman = config.pluginmanager.getplugin("capturemanager")
    if capman is not None:
        capman.suspend_global_capture(in_=True)
    try:
        return os.isatty(0)
    finally:
        if capman is not None:
            capman.resume_global_capture()


@pytest.fixture(scope="session")
def interactive(request: pytest.FixtureRequest) -> bool:
    return _stdin_is_tty(request.config)


@pytest.fixture(scope="session")
def say(request: pytest.FixtureRequest) -> Callable[[str], None]:
    """Print to the terminal past pytest's capture (prompts for a person at the rig)."""
    config = request.config
    capman = config.pluginmanager.getplugin("capturemanager")
    reporter = config.pluginmanager.getplugin("terminalreporter")

    def _say(text: str) -> None:
        with capman.global_and_fixture_disabled() if capman else contextlib.nullcontext():
            if reporter is not None:
                reporter.ensure_newline()
                reporter.write_line(text, bold=True, yellow=True)
            else:
                print(text, flush=True)  # noqa: T201 - no terminal reporter (-p no:terminal)

    return _say


@pytest.fixture
async def ui(rig: Rig) -> AsyncIterator[UiClient]:
    """A fresh UI-like client (its own client id and reply subtree) for one test."""
    async with open_ui(rig) as client:
        yield client


@pytest.fixture
async def staff(rig: Rig) -> AsyncIterator[UiClient]:
    """A client of the staff user ``technician`` (``[api] staff_users``), for staff operations.

    On a board with broker credentials the rig's user must be the technician for this.
    """
    async with open_ui(rig, "technician") as client:
        yield client


@pytest.fixture
def hands(
    ui: UiClient,
    rig: Rig,
    interactive: bool,
    say: Callable[[str], None],
    request: pytest.FixtureRequest,
) -> Hands:
    return Hands(
        ui,
        rig,
        interactive=interactive,
        say=say,
        person_timeout=request.config.getoption("--person-timeout"),
    )


@pytest.fixture
async def description(ui: UiClient) -> dict[str, Any]:
    """The retained ``description`` of the board."""
    return await retained(ui, f"{ui.root}/description")


@pytest.fixture
def described(description: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The description's devices by id (``commands``, ``events``, ``capabilities``)."""
    return {d["id"]: d for d in description["devices"]}
