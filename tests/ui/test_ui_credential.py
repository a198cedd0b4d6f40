"""The page's broker login: another local page cannot read it; the page logs in with it.

Chromium (Debian's, through Playwright) fetches ``/credential.json`` from a page
of another loopback origin and is refused by the preflight; then the reference
UI, served by the command of the ``kioskd-ui.service`` that ``kioskd provision
--simulate`` installed (reading the config and the UI's password file it
installed), logs in to the installed mosquitto (anonymous refused) and reaches
its idle screen with the daemon run from the same image.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import tomllib
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from playwright.async_api import Browser

from daemon.broker import free_port
from daemon.cli.ui import page_login, page_site
from daemon.config import Config, parse
from daemon.ui.server import UiCredential, UiSite, serve_ui
from provisioning.plan import TECHNICIAN_USER
from tests.provisioning import support
from tests.ui.conftest import Screen

CLIENT_JS = Path(__file__).with_name("mqtt311.js")
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
    root, _, _ = image
    data = tomllib.loads((root / "etc/kioskd/kioskd.toml").read_text())
    assert data["ui"] == {"username": "ui", "password_file": "/etc/kioskd/credentials/ui.password"}
    # Read as `kioskd ui --config` reads it on the board (the image's /etc here).
    data["ui"]["password_file"] = str(root / "etc/kioskd/credentials/ui.password")
    data["mqtt"].pop("password_file")
    cfg = parse(data, "kioskd.toml")
    login = page_login(cfg)
    assert login == UiCredential("ui", support.secret(root, "ui"))
    # The page connects to the UI server's bridge to the broker's TCP listener.
    assert cfg.ui.ws_url is None
    # The UI as its installed unit runs it (on a free port here), reading the board's files.
    unit = (root / "etc/systemd/system/kioskd-ui.service").read_text()
    command = next(line for line in unit.splitlines() if line.startswith("ExecStart="))
    assert command.endswith(" --port 8080"), command
    ui_port = free_port()
    command = command.removeprefix("ExecStart=").removesuffix("8080") + str(ui_port)
    log = tmp_path / "run.log"
    with support.installed(
        root,
        "mosquitto -c /etc/mosquitto/conf.d/kioskd.conf &",
        f"{support.KIOSKD_BIN} run --config /etc/kioskd/kioskd.toml"
        f" --state-dir {tmp_path / 'state'} &",
        f"exec {command}",
        log=log,
    ) as proc:
        url = f"http://127.0.0.1:{ui_port}/"
        try:
            async with asyncio.timeout(20):
                while f"kiosk UI: {url}" not in log.read_text():
                    assert proc.poll() is None
                    await asyncio.sleep(0.1)
            await screen.page.goto(url)
            await screen.wait_screen("idle", timeout=30)
        finally:
            if proc.poll() is not None:
                pytest.fail(log.read_text())
        site, broker = page_site(cfg)
        # Without the login the same broker refuses the page.
        async with serve_ui(site, 0, broker=broker) as url:
            await screen.page.goto(url)
            await asyncio.sleep(3)
            assert await screen.page.locator("main[data-screen='idle']").count() == 0


def _board_config(root: Path) -> Config:
    """The image's config as `kioskd ui --config` reads it on the board (the image's /etc here)."""
    data = tomllib.loads((root / "etc/kioskd/kioskd.toml").read_text())
    data["ui"]["password_file"] = str(root / "etc/kioskd/credentials/ui.password")
    data["mqtt"].pop("password_file")
    return parse(data, "kioskd.toml")


OPEN = """async ({name, url, username, password}) => {
  const { client, code } = await Mqtt311.open(url, { clientId: name, username, password });
  window.__mq[name] = client;
  return code;
}"""
SUBSCRIBE = "async ([name, topic]) => window.__mq[name].subscribe(topic)"
NEXT = "async ([name, ms]) => window.__mq[name].next(ms)"
UNTIL = """async ([name, last]) => {
  const topics = [];
  for (let m; (m = await window.__mq[name].next(10000)) !== null; ) {
    topics.push(m.topic);
    if (m.topic === last) break;
  }
  return topics;
}"""
PUBLISH = "([name, topic, text]) => window.__mq[name].publish(topic, text)"


async def test_the_bridge_leaves_login_and_acls_to_the_broker(
    image: tuple[Path, int, int], browser: Browser, tmp_path: Path
) -> None:
    """Through `kioskd ui`'s /mqtt bridge, Chromium meets the installed broker's own checks.

    A wrong password is refused by the broker (CONNACK 4 or 5, connection closed);
    the technician's login, accepted and subscribed to the UI user's replies, does
    not receive the reply the daemon sends the UI user, while it does receive its
    own reply sent after it (so the missing reply is the ACL's doing, not a dead client's).
    """
    root = image[0]
    cfg = _board_config(root)
    site, broker = page_site(cfg)
    prefix = f"kiosk/v1/{cfg.board.id}"
    log = tmp_path / "run.log"
    with support.installed(
        root,
        "mosquitto -c /etc/mosquitto/conf.d/kioskd.conf &",
        f"exec {support.KIOSKD_BIN} run --config /etc/kioskd/kioskd.toml"
        f" --state-dir {tmp_path / 'state'}",
        log=log,
    ) as proc:
        async with serve_ui(site, 0, broker=broker) as url:
            bridge = "ws" + url.removeprefix("http") + "mqtt"
            page = await (await browser.new_context()).new_page()
            await page.goto(url + "config.json")
            await page.evaluate(CLIENT_JS.read_text(encoding="utf-8"))
            wrong = {"name": "ui", "url": bridge, "username": "ui", "password": "not-it"}
            assert await page.evaluate(OPEN, wrong) in (4, 5)
            assert await page.evaluate(NEXT, ["ui", 2000]) is None  # closed by the broker
            ui = {"name": "ui", "url": bridge, "username": "ui"}
            assert await page.evaluate(OPEN, ui | {"password": support.secret(root, "ui")}) == 0
            tech_user = TECHNICIAN_USER
            tech = {"name": "tech", "url": bridge, "username": tech_user}
            tech_password = support.secret(root, tech_user)
            assert await page.evaluate(OPEN, tech | {"password": tech_password}) == 0
            # mosquitto 2.0 grants the subscription and applies the read ACL to each delivery.
            await page.evaluate(SUBSCRIBE, ["tech", f"{prefix}/reply/ui/#"])
            assert await page.evaluate(SUBSCRIBE, ["tech", f"{prefix}/status"]) == [1]
            status = await page.evaluate(NEXT, ["tech", 30000])
            assert status is not None, log.read_text()
            assert status["topic"] == f"{prefix}/status"
            assert await page.evaluate(SUBSCRIBE, ["ui", f"{prefix}/reply/ui/#"]) == [1]
            request = {"requestId": "bridge-acl-1", "replyTo": f"{prefix}/reply/ui/acl"}
            await page.evaluate(
                PUBLISH, ["ui", f"{prefix}/req/ui/cmd/getStatus", json.dumps(request)]
            )
            reply = await page.evaluate(NEXT, ["ui", 10000])
            assert reply is not None, log.read_text()
            assert reply["topic"] == f"{prefix}/reply/ui/acl"
            assert "bridge-acl-1" in reply["text"]
            # The technician's own request: its reply comes after the UI user's would have.
            assert await page.evaluate(SUBSCRIBE, ["tech", f"{prefix}/reply/{tech_user}/#"]) == [1]
            own = {"requestId": "bridge-acl-2", "replyTo": f"{prefix}/reply/{tech_user}/acl"}
            await page.evaluate(
                PUBLISH, ["tech", f"{prefix}/req/{tech_user}/cmd/getStatus", json.dumps(own)]
            )
            seen = await page.evaluate(UNTIL, ["tech", f"{prefix}/reply/{tech_user}/acl"])
            assert seen[-1] == f"{prefix}/reply/{tech_user}/acl", seen
            assert not [topic for topic in seen if "/reply/ui/" in topic]
        if proc.poll() is not None:
            pytest.fail(log.read_text())
