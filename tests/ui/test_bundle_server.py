"""The committed UI bundle matches its sources; the loopback server serves it and nothing else."""

from __future__ import annotations

import asyncio
import re
import subprocess
import sys
from pathlib import Path

import msgspec
import pytest

from daemon.ui.bundle import STATIC_DIR, problems, sources_digest, stamp
from daemon.ui.server import MAX_CONNECTIONS, UiCredential, UiError, UiSite, serve_ui

SITE = UiSite(board="test-0001", ws_url="ws://127.0.0.1:9")


def test_committed_bundle_is_built_from_the_committed_sources() -> None:
    found = problems()
    assert found == [], f"{found}: run ./dev setup (needs node/npm) and commit daemon/ui/static"


def test_a_changed_source_or_an_edited_bundle_file_is_noticed(tmp_path: Path) -> None:
    web, static = tmp_path / "web", tmp_path / "static"
    (web / "src").mkdir(parents=True)
    (web / "data").mkdir()
    for name in ("package.json", "package-lock.json", "build.mjs", "src/kiosk.js", "data/d.json"):
        (web / name).write_text(name, encoding="utf-8")
    static.mkdir()
    (static / "kiosk.js").write_text("built", encoding="utf-8")
    before = sources_digest(web)
    stamp(web, static)
    assert problems(web, static) == []
    (web / "src" / "kiosk.js").write_text("changed", encoding="utf-8")
    assert sources_digest(web) != before
    assert problems(web, static) == ["the sources changed since the bundle was built"]
    stamp(web, static)
    (static / "kiosk.js").write_text("edited by hand", encoding="utf-8")
    assert problems(web, static) == [
        "static/kiosk.js differs from the build that BUILD.json records"
    ]


async def _get(port: int, request: bytes) -> tuple[str, dict[str, str], bytes]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(request)
    await writer.drain()
    raw = await asyncio.wait_for(reader.read(), 5)
    writer.close()
    await writer.wait_closed()
    head, _, body = raw.partition(b"\r\n\r\n")
    status, *lines = head.decode("latin-1").split("\r\n")
    headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines)}
    return status, headers, body


async def test_server_serves_the_bundle_and_the_page_config() -> None:
    async with serve_ui(SITE, 0) as url:
        port = int(url.rsplit(":", 1)[1].strip("/"))
        assert url == f"http://127.0.0.1:{port}/"
        status, headers, body = await _get(port, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        assert status == "HTTP/1.1 200 OK"
        assert headers["content-type"] == "text/html; charset=utf-8"
        assert body == (STATIC_DIR / "index.html").read_bytes()
        assert "connect-src 'self' ws://127.0.0.1:*" in headers["content-security-policy"]
        assert "frame-ancestors 'none'" in headers["content-security-policy"]
        assert headers["x-frame-options"] == "DENY"
        assert not any(name.startswith("access-control-") for name in headers)
        status, headers, body = await _get(port, b"GET /config.json?x=1 HTTP/1.1\r\n\r\n")
        assert msgspec.json.decode(body) == {"board": "test-0001", "wsUrl": "ws://127.0.0.1:9"}
        status, headers, body = await _get(port, b"HEAD /kiosk.js HTTP/1.1\r\n\r\n")
        assert status == "HTTP/1.1 200 OK"
        assert body == b""
        assert int(headers["content-length"]) == (STATIC_DIR / "kiosk.js").stat().st_size
        assert headers["content-type"] == "text/javascript; charset=utf-8"


@pytest.mark.parametrize(
    ("request_line", "status"),
    [
        (b"GET /../bundle.py HTTP/1.1", "404 Not Found"),
        (b"GET /%2e%2e/server.py HTTP/1.1", "404 Not Found"),
        (b"GET /nothing.js HTTP/1.1", "404 Not Found"),
        (b"POST / HTTP/1.1", "405 Method Not Allowed"),
        (b"GET /", "400 Bad Request"),
    ],
)
async def test_server_refuses_what_it_does_not_serve(request_line: bytes, status: str) -> None:
    async with serve_ui(SITE, 0) as url:
        port = int(url.rsplit(":", 1)[1].strip("/"))
        got, _, _ = await _get(port, request_line + b"\r\n\r\n")
        assert got == f"HTTP/1.1 {status}"


async def test_a_taken_port_or_a_missing_bundle_is_an_error(tmp_path: Path) -> None:
    async with serve_ui(SITE, 0) as url:
        port = int(url.rsplit(":", 1)[1].strip("/"))
        with pytest.raises(UiError, match="cannot serve the UI"):
            async with serve_ui(SITE, port):
                pass
    with pytest.raises(UiError, match="no UI bundle"):
        async with serve_ui(SITE, 0, root=tmp_path):
            pass


def test_kioskd_ui_command_serves_on_loopback(tmp_path: Path) -> None:
    config = tmp_path / "kioskd.toml"
    # The daemon's password file is not read (its unit cannot read it): absent here.
    absent = tmp_path / "absent" / "kioskd.password"
    config.write_text(
        f'[board]\nid = "cli-0001"\n[mqtt]\nport = 9555\npassword_file = "{absent}"\n',
        encoding="utf-8",
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "daemon", "ui", "--config", str(config), "--port", "0"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        found = re.search(r"kiosk UI: (http://127\.0\.0\.1:(\d+)/)", line)
        assert found, line
        # The page connects to this server's bridge, which relays to [mqtt] host:port.
        assert "broker: this server's /mqtt, relayed to 127.0.0.1:9555" in line
        port = int(found[2])
        _, _, body = asyncio.run(_get(port, b"GET /config.json HTTP/1.1\r\n\r\n"))
        want = {"board": "cli-0001", "wsUrl": f"ws://127.0.0.1:{port}/mqtt"}
        assert msgspec.json.decode(body) == want
    finally:
        proc.terminate()
        assert proc.wait(10) == 0


LOGIN = UiCredential(username="ui", password="s3cret-ui")


def _port(url: str) -> int:
    return int(url.rsplit(":", 1)[1].strip("/"))


async def test_the_credential_goes_to_the_page_alone() -> None:
    async with serve_ui(SITE, 0, credential=LOGIN) as url:
        port = _port(url)
        own = f"Host: 127.0.0.1:{port}\r\n".encode()
        asked = b"GET /credential.json HTTP/1.1\r\n" + own + b"X-Kioskd-UI: 1\r\n"
        status, headers, body = await _get(port, asked + b"Sec-Fetch-Site: same-origin\r\n\r\n")
        assert status == "HTTP/1.1 200 OK"
        assert msgspec.json.decode(body) == {"username": "ui", "password": "s3cret-ui"}
        assert headers["cache-control"] == "no-store"
        assert headers["x-frame-options"] == "DENY"
        assert not any(name.startswith("access-control-") for name in headers)
        refused = [
            b"GET /credential.json HTTP/1.1\r\n" + own + b"\r\n",  # no custom header
            asked + b"Origin: http://127.0.0.1:1\r\n\r\n",  # another local origin
            asked + b"Sec-Fetch-Site: same-site\r\n\r\n",
            asked + b"Sec-Fetch-Site: cross-site\r\n\r\n",
            # A DNS-rebound name resolving to 127.0.0.1 is not this server's origin.
            b"GET /credential.json HTTP/1.1\r\nHost: evil.example:%d\r\nX-Kioskd-UI: 1\r\n\r\n"
            % port,
            # The preflight of a cross-origin fetch with the header gets no CORS answer.
            b"OPTIONS /credential.json HTTP/1.1\r\n" + own + b"Origin: http://localhost:1\r\n"
            b"Access-Control-Request-Headers: x-kioskd-ui\r\n\r\n",
        ]
        for request in refused:
            status, headers, body = await _get(port, request)
            assert status in ("HTTP/1.1 403 Forbidden", "HTTP/1.1 405 Method Not Allowed"), request
            assert b"s3cret" not in body
            assert not any(name.startswith("access-control-") for name in headers)


async def test_connections_beyond_the_cap_get_503() -> None:
    async with serve_ui(SITE, 0) as url:
        port = _port(url)
        # Clients that connect and say nothing hold their slot until the head timeout.
        idle = [await asyncio.open_connection("127.0.0.1", port) for _ in range(MAX_CONNECTIONS)]
        try:
            await asyncio.sleep(0.1)
            status, _, _ = await _get(port, b"GET / HTTP/1.1\r\n\r\n")
            assert status == "HTTP/1.1 503 Service Unavailable"
        finally:
            for _, writer in idle:
                writer.close()
        await asyncio.sleep(0.1)
        status, _, _ = await _get(port, b"GET / HTTP/1.1\r\n\r\n")
        assert status == "HTTP/1.1 200 OK"
