"""MQTT over websockets for the UI's page, relayed byte for byte to the broker's TCP listener.

mosquitto 2.0's own websockets listener writes a large message to a browser one
4 KiB chunk per 100 ms main-loop pass (a 272 KB picture took 6.7 s); its TCP
listener does not (docs/performance.md).  The UI server therefore answers a
websocket upgrade on ``/mqtt`` itself and relays the MQTT bytes both
ways between that websocket and one TCP connection to the broker, with
``TCP_NODELAY`` on both sockets.

The relay never reads MQTT: the browser's CONNECT (its user name and password)
goes to the broker unread, and the broker's authentication and ACLs decide
everything, exactly as for any TCP client.  The UI server imports this module
when a page first asks for ``/mqtt`` (:data:`daemon.ui.server.BRIDGE_PATH`), so
a process serving no page does not load the ``websockets`` library.  The websocket protocol itself
(handshake, framing, masking, ping/pong, close, size limits) is the
``websockets`` library's sans-I/O ``ServerProtocol``, driven over the UI
server's own asyncio stream.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from http import HTTPStatus

from websockets.frames import CloseCode, Frame, Opcode
from websockets.http11 import Request
from websockets.protocol import State
from websockets.server import ServerProtocol
from websockets.typing import Subprotocol

from .server import BrokerAddress

log = logging.getLogger(__name__)

#: The websocket subprotocol of MQTT (MQTT 5.0 section 6, MQTT 3.1.1 section 6).
MQTT_SUBPROTOCOL = Subprotocol("mqtt")
#: Largest websocket message accepted from the page, bytes (a request is far smaller;
#: the broker applies its own limit to what it forwards).
MAX_MESSAGE_BYTES = 1 << 20
#: Most bytes read from one side per relay step, and so the largest websocket message
#: sent to the page (MQTT is a byte stream: a picture may go as several messages).
#: asyncio reads a socket 256 KiB at a time, and Chromium takes a 272 KB picture
#: sooner in two messages than in five of 64 KiB (docs/performance.md).
CHUNK_BYTES = 256 * 1024
#: How long connecting to the broker may take, seconds.
CONNECT_TIMEOUT_S = 5.0
#: How long one write may take to drain to either side, seconds.
WRITE_TIMEOUT_S = 10.0
#: How long either side may stay silent before the relay is closed, seconds (a
#: client's MQTT keepalive, 30 s for the reference UI, keeps it busier than this).
IDLE_TIMEOUT_S = 300.0


def _nodelay(writer: asyncio.StreamWriter) -> None:
    sock = writer.get_extra_info("socket")
    if sock is not None:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


async def _send(writer: asyncio.StreamWriter, chunks: list[bytes]) -> None:
    """Write ``chunks`` (an empty chunk: half-close) and drain within the write timeout."""
    for chunk in chunks:
        if chunk:
            writer.write(chunk)
        elif writer.can_write_eof():
            writer.write_eof()
    async with asyncio.timeout(WRITE_TIMEOUT_S):
        await writer.drain()


async def relay(
    head: bytes,
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    broker: BrokerAddress,
) -> None:
    """Answer the upgrade request ``head`` and relay until either side closes.

    A broker that cannot be reached within :data:`CONNECT_TIMEOUT_S` gets the page
    a 502 answer; a request that is no valid websocket handshake, or does not offer
    the ``mqtt`` subprotocol, a 4xx.  Returns when either side closed, stayed idle
    for :data:`IDLE_TIMEOUT_S`, or did not take a write within
    :data:`WRITE_TIMEOUT_S`; the caller closes ``writer``.
    """
    ws = ServerProtocol(subprotocols=[MQTT_SUBPROTOCOL], max_size=MAX_MESSAGE_BYTES)
    ws.receive_data(head)
    request = next((e for e in ws.events_received() if isinstance(e, Request)), None)
    if request is None:
        await _send(writer, ws.data_to_send())
        return
    try:
        async with asyncio.timeout(CONNECT_TIMEOUT_S):
            broker_reader, broker_writer = await asyncio.open_connection(broker.host, broker.port)
    except (OSError, TimeoutError) as exc:
        log.warning("websocket bridge: broker %s:%d unreachable: %s", broker.host, broker.port, exc)
        ws.send_response(ws.reject(HTTPStatus.BAD_GATEWAY, "The broker is unreachable.\n"))
        await _send(writer, ws.data_to_send())
        return
    try:
        ws.send_response(ws.accept(request))
        await _send(writer, ws.data_to_send())
        if ws.state is not State.OPEN:
            return
        _nodelay(writer)
        _nodelay(broker_writer)
        await _pump(ws, reader, writer, broker_reader, broker_writer)
    finally:
        broker_writer.close()
        with contextlib.suppress(OSError):
            await broker_writer.wait_closed()


async def _page_to_broker(
    ws: ServerProtocol,
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    broker_writer: asyncio.StreamWriter,
) -> None:
    """Websocket frames from the page: their payload to the broker; pings and close answered."""
    while ws.state is State.OPEN:
        async with asyncio.timeout(IDLE_TIMEOUT_S):
            data = await reader.read(CHUNK_BYTES)
        if data:
            ws.receive_data(data)
        else:
            ws.receive_eof()
        for frame in ws.events_received():
            if not isinstance(frame, Frame):
                continue
            if frame.opcode in (Opcode.BINARY, Opcode.CONT):
                broker_writer.write(frame.data)
            elif frame.opcode is Opcode.TEXT:
                ws.fail(CloseCode.UNSUPPORTED_DATA, "MQTT over websockets is binary")
        await _send(writer, ws.data_to_send())
        async with asyncio.timeout(WRITE_TIMEOUT_S):
            await broker_writer.drain()


async def _broker_to_page(
    ws: ServerProtocol, writer: asyncio.StreamWriter, broker_reader: asyncio.StreamReader
) -> None:
    """Bytes from the broker: to the page as binary messages; the broker's close closes it."""
    while ws.state is State.OPEN:
        async with asyncio.timeout(IDLE_TIMEOUT_S):
            data = await broker_reader.read(CHUNK_BYTES)
        if data:
            ws.send_binary(data)
        else:
            ws.send_close(CloseCode.NORMAL_CLOSURE, "the broker closed the connection")
        await _send(writer, ws.data_to_send())


async def _pump(
    ws: ServerProtocol,
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    broker_reader: asyncio.StreamReader,
    broker_writer: asyncio.StreamWriter,
) -> None:
    """Relay both ways until either direction ends; OSError and timeouts end it quietly."""
    tasks = [
        asyncio.create_task(_page_to_broker(ws, reader, writer, broker_writer)),
        asyncio.create_task(_broker_to_page(ws, writer, broker_reader)),
    ]
    try:
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    for task in done:
        exc = task.exception()
        if exc is not None and not isinstance(exc, (OSError, TimeoutError)):
            raise exc
