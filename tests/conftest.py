"""Fixtures: a real mosquitto per test, the daemon in-process on the test's loop, UI clients."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shutil
import subprocess
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec
import pytest

from daemon.api.schema import DaemonState
from daemon.app import App
from daemon.broker import broker_config, free_port
from daemon.config import Config, sim_config
from tests.pcsc_stack import _pcsc_stack_for_pcsc_drivers, pcscd  # noqa: F401 - fixtures
from tests.processes import stop
from tests.uiclient import UiClient, connect

# python-escpos logs through the root logger's module functions (``logging.info``),
# which call ``basicConfig()`` when the root has no handler: between test phases
# pytest's capture handlers are gone, and a printer thread would then bind a handler
# to that moment's captured stderr, closed later ("I/O operation on closed file").
logging.getLogger().addHandler(logging.NullHandler())


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--slow",
        action="store_true",
        help="also run the release tests (a Debian root, a signed repository: minutes each)",
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if config.getoption("--slow"):
        return
    skip = pytest.mark.skip(reason="a release test: run with ./dev test --slow")
    for item in items:
        if item.get_closest_marker("release"):
            item.add_marker(skip)


@dataclass
class Broker:
    port: int
    conf: Path
    proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(["mosquitto", "-c", str(self.conf)], stdin=subprocess.DEVNULL)
        _wait_port(self.port)

    def stop(self) -> None:
        if self.proc is not None:
            stop(self.proc, 5)
            self.proc = None


def _wait_port(port: int, timeout: float = 5.0) -> None:
    import socket
    import time

    until = time.monotonic() + timeout
    while True:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        if time.monotonic() > until:
            raise RuntimeError(f"mosquitto did not listen on {port}")
        time.sleep(0.01)


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Broker]:
    """A real mosquitto on a free loopback port (no websockets), stopped after the test."""
    if shutil.which("mosquitto") is None:
        pytest.fail("mosquitto is not installed: run ./dev test")
    port = free_port()
    conf = tmp_path / "mosquitto.conf"
    conf.write_text(broker_config(port, None), encoding="utf-8")
    b = Broker(port, conf)
    b.start()
    yield b
    b.stop()


def make_config(broker_port: int, tmp_path: Path, **device_overrides: dict[str, Any]) -> Config:
    """The built-in sim config pointed at a test broker, with state in ``tmp_path``."""
    cfg = sim_config()
    mqtt = msgspec.structs.replace(cfg.mqtt, port=broker_port, reconnect_max=0.5)
    daemon = msgspec.structs.replace(
        cfg.daemon,
        state_dir=str(tmp_path / "state"),
        runtime_dir=str(tmp_path / "run"),
    )
    return cfg.replace(
        mqtt=mqtt, daemon=daemon, broker=msgspec.structs.replace(cfg.broker, embedded=False)
    )


@dataclass
class RunningDaemon:
    app: App
    stop: asyncio.Event
    task: asyncio.Task[None]

    @property
    def board(self) -> str:
        return self.app.config.board.id

    async def shutdown(self) -> None:
        self.stop.set()
        await asyncio.wait_for(self.task, 10)


@contextlib.asynccontextmanager
async def run_daemon(config: Config) -> AsyncIterator[RunningDaemon]:
    """Run the daemon in-process until it reports ready; stop it on exit."""
    app = App(config)
    stop = asyncio.Event()
    task = asyncio.create_task(app.run(stop), name="daemon")
    running = RunningDaemon(app, stop, task)
    try:
        async with asyncio.timeout(10):
            while app.status().state not in (DaemonState.READY, DaemonState.DEGRADED):
                if task.done():
                    task.result()
                await asyncio.sleep(0.01)
        yield running
    finally:
        if not task.done():
            stop.set()
            await asyncio.wait_for(task, 10)


@pytest.fixture
async def daemon(broker: Broker, tmp_path: Path) -> AsyncIterator[RunningDaemon]:
    """The daemon with every device simulated, on the test broker."""
    async with run_daemon(make_config(broker.port, tmp_path)) as running:
        yield running


@pytest.fixture
async def ui(broker: Broker, daemon: RunningDaemon) -> AsyncIterator[UiClient]:
    """A connected UI client (client id ``ui1``)."""
    async with connect(broker.port, daemon.board, "ui1") as client:
        yield client


@pytest.fixture
async def technician(broker: Broker, daemon: RunningDaemon) -> AsyncIterator[UiClient]:
    """A connected client of the staff user ``technician`` (``[api] staff_users``)."""
    async with connect(broker.port, daemon.board, "technician") as client:
        yield client


@pytest.fixture
def ui_factory(broker: Broker) -> Callable[..., Any]:
    """Connect further UI clients: ``async with ui_factory("ui2") as c: ...``."""

    def factory(client_id: str, board: str = "sim-0001") -> Any:
        return connect(broker.port, board, client_id)

    return factory
