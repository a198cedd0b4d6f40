"""The embedded broker: a private mosquitto child process for ``kioskd run --sim``.

It listens on loopback TCP and on a websockets listener bound to ``lo``, with
``set_tcp_nodelay true`` and ``persistence false``.  The child gets
PR_SET_PDEATHSIG (SIGKILL), so it dies with the daemon even after ``kill -9``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import pwd
import shutil
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

from devices.runtime.process import owned_child

log = logging.getLogger(__name__)


class BrokerError(RuntimeError):
    """The embedded broker could not be started."""


@dataclass(frozen=True, slots=True)
class BrokerInfo:
    """Where the embedded broker listens."""

    host: str
    port: int
    ws_port: int | None
    config_path: Path


def port_free(port: int, host: str = "127.0.0.1") -> bool:
    """True if nothing listens on ``host:port`` (TCP)."""
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port free right now on ``host``."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def broker_config(port: int, ws_port: int | None) -> str:
    """mosquitto.conf text of the embedded (development) broker: anonymous, loopback only."""
    lines = [
        "# kioskd embedded broker (development and simulation only)",
        # Run as whoever started it: a privilege drop would clear PR_SET_PDEATHSIG.
        f"user {pwd.getpwuid(os.getuid()).pw_name}",
        "per_listener_settings false",
        "allow_anonymous true",
        "persistence false",
        "set_tcp_nodelay true",
        "log_dest stderr",
        "log_type error",
        "log_type warning",
        f"listener {port} 127.0.0.1",
    ]
    if ws_port is not None:
        # A websockets listener ignores an IP bind address; the interface name binds it.
        lines += [f"listener {ws_port} lo", "protocol websockets"]
    return "\n".join(lines) + "\n"


def _write_config(runtime_dir: Path, text: str) -> Path:
    runtime_dir.mkdir(parents=True, exist_ok=True)
    conf = runtime_dir / "mosquitto.conf"
    conf.write_text(text, encoding="utf-8")
    return conf


async def _wait_listening(port: int, proc: asyncio.subprocess.Process, timeout: float) -> None:
    loop = asyncio.get_running_loop()
    until = loop.time() + timeout
    while True:
        if proc.returncode is not None:
            raise BrokerError(f"mosquitto exited with status {proc.returncode}")
        try:
            async with asyncio.timeout(0.5):
                _, writer = await asyncio.open_connection("127.0.0.1", port)
        except (OSError, TimeoutError):
            if loop.time() > until:
                raise BrokerError(
                    f"mosquitto did not listen on port {port} within {timeout} s"
                ) from None
            await asyncio.sleep(0.02)
        else:
            writer.close()
            await writer.wait_closed()
            return


@contextlib.asynccontextmanager
async def embedded_broker(
    runtime_dir: Path,
    *,
    port: int,
    ws_port: int | None,
    mosquitto: str = "mosquitto",
    start_timeout: float = 5.0,
) -> AsyncIterator[BrokerInfo]:
    """Run mosquitto for the duration of the context.

    A port that is taken (a system mosquitto, say) is replaced by a free one;
    :class:`BrokerInfo` says which ports were used.

    Raises:
        BrokerError: mosquitto is missing, exits, or does not listen within
            ``start_timeout`` seconds.

    """
    exe = shutil.which(mosquitto)
    if exe is None:
        raise BrokerError(
            f"{mosquitto!r} not found: install it (apt-get install mosquitto) or run ./dev sim",
        )
    if not port_free(port):
        port = free_port()
    if ws_port is not None and not port_free(ws_port):
        ws_port = free_port()
    conf = await asyncio.to_thread(_write_config, runtime_dir, broker_config(port, ws_port))
    proc = await asyncio.create_subprocess_exec(
        exe,
        "-c",
        str(conf),
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.DEVNULL,
        # Its own session: a Ctrl-C meant for the daemon must not stop the broker first.
        **owned_child(),
    )
    try:
        await _wait_listening(port, proc, start_timeout)
        log.info("embedded broker on 127.0.0.1:%d (websockets %s)", port, ws_port)
        yield BrokerInfo("127.0.0.1", port, ws_port, conf)
    finally:
        if proc.returncode is None:
            proc.terminate()
            try:
                async with asyncio.timeout(3):
                    await proc.wait()
            except TimeoutError:
                proc.kill()
                await proc.wait()
