"""The page's broker login: another local page cannot read it; the page logs in with it.

Chromium (Debian's, through Playwright) fetches ``/credential.json`` from a page
of another loopback origin and is refused by the preflight; then the reference
UI, served by ``kioskd ui``'s server from the config ``kioskd provision
--simulate`` installed, logs in to the installed mosquitto (anonymous refused)
and reaches its idle screen with the daemon run from the same image.
"""

from __future__ import annotations

import asyncio
import contextlib
import tomllib
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from playwright.async_api import Browser

from daemon.config import parse
from daemon.ui.cli import page_login
from daemon.ui.server import UiCredential, UiSite, serve_ui
from tests.provisioning import support
from tests.ui.conftest import Screen

SITE = UiSite(board="test-0001", ws_url="ws://127.0.0.1:9")
LOGIN = UiCredential(username="ui", password="s3cret-ui")
BOARD = "hcm-q6-0009"

READ = """async (url) => {
  try {
    const response = await fetch(url, { headers: { "X-Kioskd-UI": "1" }, cache: "no-store" });
    return { status: response.status, body: await response.text() };
  } catch (err) {
    return { error: String(err) };
  }
}"""
NO_CORS = """async (url) => {
  const response = await fetch(url, { mode: "no-cors" });
  return { type: response.type, body: await response.text() };
}"""


@contextlib.asynccontextmanager
async def other_local_page() -> AsyncIterator[str]:
    """Any other local web page: a blank one on another loopback port, with no CSP at all."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        body = b"<!doctype html><title>another local app</title>"
        writer.write(
            b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nConnection: close\r\n"
            b"Content-Length: %d\r\n\r\n%s" % (len(body), body)
        )
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    async with server:
        yield f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}/"


async def test_another_local_origin_cannot_read_the_credential(browser: Browser) -> None:
    async with serve_ui(SITE, 0, credential=LOGIN) as kiosk_url, other_local_page() as other_url:
        page = await (await browser.new_context()).new_page()
        await page.goto(other_url)
        target = kiosk_url + "credential.json"
        refused = await page.evaluate(READ, target)
        assert "error" in refused, refused  # the preflight failed: no answer to read
        opaque = await page.evaluate(NO_CORS, target)
        assert opaque == {"type": "opaque", "body": ""}
        # The page of the UI server itself reads it.
        await page.goto(kiosk_url + "index.html")
        own = await page.evaluate(READ, target)
        assert own["status"] == 200
        assert '"password":"s3cret-ui"' in own["body"]


@pytest.fixture(scope="module")
def image(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, int, int]:
    image = support.provisioned(
        tmp_path_factory.mktemp("image"), BOARD, "--kioskd-bin", support.KIOSKD_BIN
    )
    return image.root, image.port, image.ws_port


async def test_the_ui_logs_in_to_a_provisioned_broker(
    image: tuple[Path, int, int], screen: Screen, tmp_path: Path
) -> None:
    root, _, ws_port = image
    data = tomllib.loads((root / "etc/kioskd/kioskd.toml").read_text())
    assert data["ui"] == {
        "ws_url": f"ws://127.0.0.1:{ws_port}",
        "username": "ui",
        "password_file": "/etc/kioskd/credentials/ui.password",
    }
    # Read as `kioskd ui --config` reads it on the board (the image's /etc here).
    data["ui"]["password_file"] = str(root / "etc/kioskd/credentials/ui.password")
    data["mqtt"].pop("password_file")
    cfg = parse(data, "kioskd.toml")
    login = page_login(cfg)
    assert login == UiCredential("ui", support.secret(root, "ui"))
    assert cfg.ui.ws_url is not None
    log = tmp_path / "run.log"
    with support.installed(
        root,
        "mosquitto -c /etc/mosquitto/conf.d/kioskd.conf &",
        f"exec {support.KIOSKD_BIN} run --config /etc/kioskd/kioskd.toml"
        f" --state-dir {tmp_path / 'state'}",
        log=log,
    ) as proc:
        site = UiSite(board=cfg.board.id, ws_url=cfg.ui.ws_url)
        async with serve_ui(site, 0, credential=login) as url:
            try:
                await screen.page.goto(url)
                await screen.wait_screen("idle", timeout=30)
            finally:
                if proc.poll() is not None:
                    pytest.fail(log.read_text())
        # Without the login the same broker refuses the page.
        async with serve_ui(site, 0) as url:
            await screen.page.goto(url)
            await asyncio.sleep(3)
            assert await screen.page.locator("main[data-screen='idle']").count() == 0
