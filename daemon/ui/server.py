"""A loopback HTTP/1.1 server for the reference UI's static files (GET and HEAD only).

The bundle is small (under 1 MiB), so every file is read into memory when the
server starts and requests never touch the disk.  ``/config.json`` tells the
page where the broker's websockets listener is and which board to talk to.
A browser must load the UI from ``http://127.0.0.1``: a ``file:`` or ``data:``
page may not open a websocket to a local address.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import mimetypes
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlsplit

import msgspec

log = logging.getLogger(__name__)

STATIC_DIR = Path(__file__).parent / "static"
#: Longest request head accepted, bytes (request line and headers).
MAX_HEAD_BYTES = 8192
#: How long a client may take to send its request head, seconds.
HEAD_TIMEOUT_S = 10.0
#: How long a response may take to drain to the client, seconds.
WRITE_TIMEOUT_S = 10.0
_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".json": "application/json",
    ".svg": "image/svg+xml",
}
_REASONS = {200: "OK", 400: "Bad Request", 404: "Not Found", 405: "Method Not Allowed"}


class UiError(RuntimeError):
    """The UI server could not start (port taken, no bundle)."""


class UiSite(msgspec.Struct, frozen=True, rename="camel"):
    """What ``/config.json`` tells the page.

    Attributes:
        board: the board id, e.g. ``sim-0001``.
        ws_url: the broker's websockets listener, e.g. ``ws://127.0.0.1:9001``.

    """

    board: str
    ws_url: str


@dataclass(frozen=True, slots=True)
class _Resource:
    body: bytes
    content_type: str


def _headers(status: int, resource: _Resource | None, *, allow: str | None = None) -> bytes:
    lines = [
        f"HTTP/1.1 {status} {_REASONS[status]}",
        f"Content-Length: {len(resource.body) if resource else 0}",
        "Connection: close",
        "Cache-Control: no-cache",
        "X-Content-Type-Options: nosniff",
        "Referrer-Policy: no-referrer",
        # The page may talk only to its own origin and a loopback broker.
        (
            "Content-Security-Policy: default-src 'self'; connect-src 'self' "
            "ws://127.0.0.1:* ws://localhost:*; img-src 'self' blob: data:; "
            "worker-src 'self' blob:"
        ),
    ]
    if resource is not None:
        lines.append(f"Content-Type: {resource.content_type}")
    if allow is not None:
        lines.append(f"Allow: {allow}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("ascii")


def load_resources(root: Path, site: UiSite) -> dict[str, _Resource]:
    """Read every file under ``root`` into memory, keyed by URL path, plus ``/config.json``.

    Blocking file reads: call it before the loop serves, or in a thread.

    Raises:
        UiError: ``root`` has no ``index.html`` (the bundle was never built).

    """
    if not (root / "index.html").is_file():
        raise UiError(f"no UI bundle in {root}: build it with ./dev setup")
    resources: dict[str, _Resource] = {}
    for path in sorted(root.rglob("*")):
        if not path.is_file():
            continue
        url = "/" + path.relative_to(root).as_posix()
        content_type = _TYPES.get(path.suffix) or (
            mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        )
        resources[url] = _Resource(path.read_bytes(), content_type)
    resources["/"] = resources["/index.html"]
    resources["/config.json"] = _Resource(msgspec.json.encode(site), _TYPES[".json"])
    return resources


async def _respond(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    resources: Mapping[str, _Resource],
) -> None:
    try:
        async with asyncio.timeout(HEAD_TIMEOUT_S):
            head = await reader.readuntil(b"\r\n\r\n")
    except (TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
        return
    request_line = head.split(b"\r\n", 1)[0].decode("latin-1")
    parts = request_line.split(" ")
    if len(parts) != 3 or not parts[2].startswith("HTTP/1."):  # noqa: PLR2004 - method, target, version
        writer.write(_headers(400, None))
        return
    method, target, _ = parts
    if method not in {"GET", "HEAD"}:
        writer.write(_headers(405, None, allow="GET, HEAD"))
        return
    resource = resources.get(unquote(urlsplit(target).path))
    if resource is None:
        writer.write(_headers(404, None))
        return
    writer.write(_headers(200, resource))
    if method == "GET":
        writer.write(resource.body)


@contextlib.asynccontextmanager
async def serve_ui(
    site: UiSite,
    port: int,
    *,
    host: str = "127.0.0.1",
    root: Path = STATIC_DIR,
) -> AsyncIterator[str]:
    """Serve the UI on ``http://host:port/`` for the duration of the context; yields that URL.

    ``port`` 0 picks a free port.  Only files present under ``root`` at start are
    served; a path is looked up as a key, never joined to the file system.

    Raises:
        UiError: no bundle under ``root``, or the port cannot be bound.

    """
    resources = await asyncio.to_thread(load_resources, root, site)

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await _respond(reader, writer, resources)
            async with asyncio.timeout(WRITE_TIMEOUT_S):
                await writer.drain()
        except (OSError, TimeoutError):
            pass  # the client went away; nothing to clean beyond the socket
        finally:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()

    try:
        server = await asyncio.start_server(handle, host, port, limit=MAX_HEAD_BYTES)
    except OSError as exc:
        raise UiError(f"cannot serve the UI on {host}:{port}: {exc.strerror}") from None
    bound = server.sockets[0].getsockname()[1]
    url = f"http://{host}:{bound}/"
    log.info("reference UI on %s (broker %s)", url, site.ws_url)
    async with server:
        yield url
