"""A loopback HTTP/1.1 server for the reference UI's static files (GET and HEAD only).

The bundle is small (under 1 MiB), so every file is read into memory when the
server starts and requests never touch the disk.  ``/config.json`` tells the
page where the broker's websockets listener is and which board to talk to.
A browser must load the UI from ``http://127.0.0.1``: a ``file:`` or ``data:``
page may not open a websocket to a local address.

``/credential.json`` gives the page its broker login, to the page alone: only
with the request header ``X-Kioskd-UI: 1`` (a cross-origin ``fetch`` with a
custom header is preflighted, and this server answers no preflight and sends
no CORS header, so another local page can neither send it nor read the
answer), only for a ``Host`` of this server's own loopback origin (a
DNS-rebound name is refused), never when the browser says the request is
cross-site (``Sec-Fetch-Site``), and with ``Cache-Control: no-store``.
Every response forbids framing.  At most :data:`MAX_CONNECTIONS` clients are
served at once (a page's MQTT websocket counts as one); beyond, a client gets
503 at once.

Given the broker's TCP address, the server also answers a websocket upgrade on
``/mqtt`` and relays MQTT between the page and the broker (``bridge.py``), and
``/config.json`` sends the page there unless a websockets URL was configured.
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
#: Connections served at once; more are answered 503 and closed.
MAX_CONNECTIONS = 16
#: How long a connection over the cap may take to send its head before its 503, seconds.
OVER_CAP_READ_S = 0.5
#: The header a request for the credential must carry (a cross-origin fetch sending it
#: is preflighted, and the preflight fails).
CREDENTIAL_HEADER = "x-kioskd-ui"
CREDENTIAL_PATH = "/credential.json"
_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".json": "application/json",
    ".svg": "image/svg+xml",
}
_REASONS = {
    200: "OK",
    400: "Bad Request",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    503: "Service Unavailable",
}


#: The URL path of the page's MQTT websocket (``ws://127.0.0.1:PORT/mqtt``).
BRIDGE_PATH = "/mqtt"


@dataclass(frozen=True, slots=True)
class BrokerAddress:
    """The broker's MQTT TCP listener the ``/mqtt`` bridge relays to."""

    host: str
    port: int


def is_upgrade(path: str, fields: Mapping[str, str]) -> bool:
    """Whether a request for ``path`` with header ``fields`` asks for the MQTT websocket."""
    return path == BRIDGE_PATH and fields.get("upgrade", "").lower() == "websocket"


class UiError(RuntimeError):
    """The UI server could not start (port taken, no bundle)."""


class UiSite(msgspec.Struct, frozen=True, rename="camel"):
    """What ``/config.json`` tells the page.

    Attributes:
        board: the board id, e.g. ``sim-0001``.
        ws_url: where the page connects, e.g. ``ws://127.0.0.1:8080/mqtt`` (this
            server's bridge) or a broker's own websockets listener; None: this
            server's bridge (``serve_ui`` fills it in once its port is bound).

    """

    board: str
    ws_url: str | None = None


class UiCredential(msgspec.Struct, frozen=True):
    """The page's broker login (``/credential.json``); both None: an anonymous broker.

    Attributes:
        username: the UI's broker user, e.g. ``ui``.
        password: its password.

    """

    username: str | None = None
    password: str | None = None


@dataclass(frozen=True, slots=True)
class _Resource:
    body: bytes
    content_type: str


def _headers(
    status: int, resource: _Resource | None, *, allow: str | None = None, store: bool = True
) -> bytes:
    lines = [
        f"HTTP/1.1 {status} {_REASONS[status]}",
        f"Content-Length: {len(resource.body) if resource else 0}",
        "Connection: close",
        "Cache-Control: no-cache" if store else "Cache-Control: no-store",
        "X-Content-Type-Options: nosniff",
        "Referrer-Policy: no-referrer",
        # The page may talk only to its own origin and a loopback broker, and no page
        # may frame it (a frame could be driven by clicks the citizen cannot see).
        (
            "Content-Security-Policy: default-src 'self'; connect-src 'self' "
            "ws://127.0.0.1:* ws://localhost:*; img-src 'self' blob: data:; "
            "worker-src 'self' blob:; frame-ancestors 'none'"
        ),
        "X-Frame-Options: DENY",
    ]
    if resource is not None:
        lines.append(f"Content-Type: {resource.content_type}")
    if allow is not None:
        lines.append(f"Allow: {allow}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("ascii")


def load_resources(
    root: Path, site: UiSite, credential: UiCredential | None = None
) -> dict[str, _Resource]:
    """Read every file under ``root`` into memory, keyed by URL path, plus the two JSON files.

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
    resources[CREDENTIAL_PATH] = _Resource(
        msgspec.json.encode(credential or UiCredential()), _TYPES[".json"]
    )
    return resources


def _fields(head: bytes) -> dict[str, str]:
    """Header fields of a request head, names in lower case (the last of a repeated name)."""
    fields = {}
    for line in head.decode("latin-1").split("\r\n")[1:]:
        name, sep, value = line.partition(":")
        if sep:
            fields[name.strip().lower()] = value.strip()
    return fields


def _may_read_credential(fields: Mapping[str, str], origins: frozenset[str]) -> bool:
    """Whether a credential request comes from this server's own page (see the module doc)."""
    if fields.get(CREDENTIAL_HEADER) != "1":
        return False
    if "http://" + fields.get("host", "") not in origins:
        return False
    if fields.get("sec-fetch-site", "same-origin") != "same-origin":
        return False
    return fields.get("origin", next(iter(origins))) in origins


async def _respond(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    resources: Mapping[str, _Resource],
    origins: frozenset[str],
    *,
    bridge: bool,
) -> bytes | None:
    """Answer one request; returns its head instead when it asks for the MQTT websocket."""
    try:
        async with asyncio.timeout(HEAD_TIMEOUT_S):
            head = await reader.readuntil(b"\r\n\r\n")
    except (TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
        return None
    return head if _answer(head, writer, resources, origins, bridge=bridge) else None


def _answer(
    head: bytes,
    writer: asyncio.StreamWriter,
    resources: Mapping[str, _Resource],
    origins: frozenset[str],
    *,
    bridge: bool,
) -> bool:
    """Write the answer to the request ``head``; True: it asks for the MQTT websocket instead."""
    request_line = head.split(b"\r\n", 1)[0].decode("latin-1")
    parts = request_line.split(" ")
    if len(parts) != 3 or not parts[2].startswith("HTTP/1."):  # noqa: PLR2004 - method, target, version
        writer.write(_headers(400, None))
        return False
    method, target, _ = parts
    if method not in {"GET", "HEAD"}:
        writer.write(_headers(405, None, allow="GET, HEAD"))
        return False
    path = unquote(urlsplit(target).path)
    if bridge and method == "GET" and is_upgrade(path, _fields(head)):
        return True
    resource = resources.get(path)
    if resource is None:
        writer.write(_headers(404, None))
        return False
    if path == CREDENTIAL_PATH:
        if not _may_read_credential(_fields(head), origins):
            writer.write(_headers(403, None, store=False))
            return False
        writer.write(_headers(200, resource, store=False))
    else:
        writer.write(_headers(200, resource))
    if method == "GET":
        writer.write(resource.body)
    return False


@contextlib.asynccontextmanager
async def serve_ui(
    site: UiSite,
    port: int,
    *,
    host: str = "127.0.0.1",
    root: Path = STATIC_DIR,
    credential: UiCredential | None = None,
    broker: BrokerAddress | None = None,
    max_connections: int = MAX_CONNECTIONS,
) -> AsyncIterator[str]:
    """Serve the UI on ``http://host:port/`` for the duration of the context; yields that URL.

    ``port`` 0 picks a free port.  Only files present under ``root`` at start are
    served; a path is looked up as a key, never joined to the file system.
    ``credential`` is the page's broker login (none: an anonymous broker).
    ``broker``: the MQTT TCP listener ``/mqtt`` relays to (none: no bridge); a
    ``site`` without ``ws_url`` sends the page to that bridge.

    Raises:
        UiError: no bundle under ``root``, the port cannot be bound, or ``site``
            names no websockets URL and there is no bridge.

    """
    if site.ws_url is None and broker is None:
        raise UiError("the UI needs a websockets URL or a broker to bridge to")
    resources: Mapping[str, _Resource] = {}
    origins: frozenset[str] = frozenset()
    active = 0

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal active
        active += 1
        try:
            if active > max_connections:
                # Read the head first (briefly): closing on unread bytes resets the
                # connection, and the client would see no answer at all.
                with contextlib.suppress(
                    TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError
                ):
                    async with asyncio.timeout(OVER_CAP_READ_S):
                        await reader.readuntil(b"\r\n\r\n")
                writer.write(_headers(503, None))
            else:
                head = await _respond(reader, writer, resources, origins, bridge=broker is not None)
                if head is not None and broker is not None:
                    # Loaded by the first page that connects (the websockets library).
                    from .bridge import relay  # noqa: PLC0415

                    await relay(head, reader, writer, broker)
            async with asyncio.timeout(WRITE_TIMEOUT_S):
                await writer.drain()
        except (OSError, TimeoutError):
            pass  # the client went away; nothing to clean beyond the socket
        finally:
            active -= 1
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()

    try:
        server = await asyncio.start_server(
            handle, host, port, limit=MAX_HEAD_BYTES, start_serving=False
        )
    except OSError as exc:
        raise UiError(f"cannot serve the UI on {host}:{port}: {exc.strerror}") from None
    async with server:
        bound = server.sockets[0].getsockname()[1]
        url = f"http://{host}:{bound}/"
        origins = frozenset({f"http://{host}:{bound}", f"http://localhost:{bound}"})
        if site.ws_url is None:
            site = msgspec.structs.replace(site, ws_url=f"ws://{host}:{bound}{BRIDGE_PATH}")
        resources = await asyncio.to_thread(load_resources, root, site, credential)
        await server.start_serving()
        log.info("reference UI on %s (page connects to %s)", url, site.ws_url)
        yield url
