"""Fixtures of the browser tests: ``kioskd run --sim`` with the UI, headless Chromium, a rig client.

The daemon runs as a child process exactly as ``./dev sim`` starts it (private
ports, state under the test's tmp dir); the page is Debian's chromium driven by
Playwright; the test acts as the citizen through the contract's sim actions.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import shutil
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from playwright.async_api import Browser, ConsoleMessage, Page, async_playwright

from daemon.broker import free_port
from hil.simrig import SimRig, sim_rig
from tests.uiclient import UiClient, connect

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
_UI_LINE = re.compile(r"kiosk UI:\s+(?P<url>http://127\.0\.0\.1:\d+/)")


@dataclass
class KioskRig:
    """A running daemon with its UI, and a client acting as the physical world."""

    sim: SimRig
    url: str
    world: UiClient
    workdir: Path

    @property
    def log(self) -> Path:
        return self.sim.log


def _ui_url(stdout: Path, timeout: float = 10.0) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = _UI_LINE.search(stdout.read_text(encoding="utf-8", errors="replace"))
        if found:
            return found["url"]
        time.sleep(0.05)
    raise AssertionError(f"no 'kiosk UI:' line in {stdout}")


async def _ready(world: UiClient, timeout: float = 20.0) -> None:
    async with world.subscription(f"{world.root}/status") as queue, asyncio.timeout(timeout):
        while True:
            message = await queue.get()
            if message.payload and message.payload["state"] == "ready":
                return


@pytest.fixture
async def kiosk(tmp_path: Path) -> AsyncIterator[KioskRig]:
    """``kioskd run --sim`` with a websockets listener and the UI on free loopback ports."""
    if not Path(CHROMIUM).exists() or shutil.which("mosquitto") is None:
        pytest.fail("chromium or mosquitto missing: run ./dev setup")
    workdir = tmp_path / "kioskd"
    extra = ["--ws-port", str(free_port()), "--ui-port", str(free_port())]
    with contextlib.ExitStack() as stack:
        sim = await asyncio.to_thread(stack.enter_context, sim_rig(workdir, extra_args=extra))
        url = await asyncio.to_thread(_ui_url, workdir / "kioskd.stdout")
        async with connect(sim.port, sim.board, "world") as world:
            await _ready(world)
            yield KioskRig(sim, url, world, workdir)
        await asyncio.to_thread(stack.close)


@dataclass
class Screen:
    """The page under test, its console and its screenshots (kept under the test's tmp dir)."""

    page: Page
    shots: Path
    console: list[str] = field(default_factory=list)
    count: int = 0

    async def shot(self, name: str) -> Path:
        self.count += 1
        path = self.shots / f"{self.count:02d}-{name}.png"
        await self.page.screenshot(path=path)
        return path

    async def wait_screen(self, screen: str, timeout: float = 15.0) -> None:
        await self.page.wait_for_selector(f"main[data-screen='{screen}']", timeout=timeout * 1000)

    async def text(self) -> str:
        return await self.page.inner_text("main")


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    async with async_playwright() as p:
        chromium = await p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            await chromium.close()


@pytest.fixture
async def screen(browser: Browser, tmp_path: Path) -> AsyncIterator[Screen]:
    """A fresh page (1280x800, a kiosk's landscape screen) recording its console."""
    context = await browser.new_context(viewport={"width": 1280, "height": 800})
    page = await context.new_page()
    shots = tmp_path / "screenshots"
    shots.mkdir()
    result = Screen(page, shots)

    def on_console(message: ConsoleMessage) -> None:
        result.console.append(f"{message.type}: {message.text}")

    page.on("console", on_console)
    page.on("pageerror", lambda exc: result.console.append(f"pageerror: {exc}"))
    try:
        yield result
    finally:
        await context.close()
