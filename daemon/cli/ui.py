"""``kioskd ui``: serve the reference kiosk UI on loopback for a daemon that runs elsewhere.

``kioskd run --sim`` serves the UI itself (``--ui-port``); this command is for a
board where kioskd runs under systemd and the kiosk's browser needs the pages.
The broker URL and the UI's broker login come from the config's ``[ui]`` table,
which ``kioskd provision`` writes; run it as a user that can read the config and
the UI's password file (``kioskd``, or root).
"""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path
from typing import Annotated

import typer

from daemon.config import EX_CONFIG, Config, ConfigError, load, read_secret, sim_config
from daemon.ui import DEFAULT_PORT
from daemon.ui.server import BRIDGE_PATH, BrokerAddress, UiCredential, UiError, UiSite, serve_ui

#: Exit status when the port cannot be served (sysexits EX_UNAVAILABLE).
EX_UNAVAILABLE = 69


async def _serve_until_stopped(
    site: UiSite, port: int, credential: UiCredential, broker: BrokerAddress
) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with serve_ui(site, port, credential=credential, broker=broker) as url:
        to = site.ws_url or f"this server's {BRIDGE_PATH}, relayed to {broker.host}:{broker.port}"
        typer.echo(f"kiosk UI: {url}  technician: {url}tech.html  (broker: {to})")
        await stop.wait()


def page_site(cfg: Config, ws_url: str | None = None) -> tuple[UiSite, BrokerAddress]:
    """What ``kioskd ui`` serves for ``cfg``: the page's site and the broker its bridge reaches.

    The page connects to ``ws_url``, else ``[ui] ws_url``, else (the default) this
    server's ``/mqtt`` bridge to the broker's TCP listener ``[mqtt] host:port``.
    """
    site = UiSite(board=cfg.board.id, ws_url=ws_url or cfg.ui.ws_url)
    return site, BrokerAddress(cfg.mqtt.host, cfg.mqtt.port)


def page_login(cfg: Config) -> UiCredential:
    """The UI's broker login from ``[ui]`` (none without ``username``).

    Raises:
        ConfigError: the password file cannot be read.

    """
    if cfg.ui.username is None:
        return UiCredential()
    password = None
    if cfg.ui.password_file is not None:
        password = read_secret(cfg.ui.password_file, "ui.password_file", cfg.source)
    return UiCredential(username=cfg.ui.username, password=password)


def ui(
    *,
    config: Annotated[
        Path | None,
        typer.Option(
            "--config",
            "-c",
            help="kioskd TOML config (board id, broker address, the UI's login).",
            dir_okay=False,
        ),
    ] = None,
    port: Annotated[int, typer.Option(help="Loopback HTTP port (0: a free port).")] = DEFAULT_PORT,
    ws_url: Annotated[
        str | None,
        typer.Option(
            help=(
                "Websockets URL the page connects to (default: [ui] ws_url, else this"
                " server's /mqtt bridge to the broker's TCP listener [mqtt] host:port)."
            )
        ),
    ] = None,
) -> None:
    """Serve the reference kiosk UI on http://127.0.0.1:PORT (without --config: the sim board)."""
    try:
        cfg = load(config, daemon_login=False) if config is not None else sim_config()
        credential = page_login(cfg)
    except ConfigError as exc:
        typer.echo(f"kioskd: invalid config: {exc}", err=True)
        raise typer.Exit(EX_CONFIG) from None
    site, broker = page_site(cfg, ws_url)
    try:
        asyncio.run(_serve_until_stopped(site, port, credential, broker))
    except UiError as exc:
        typer.echo(f"kioskd: {exc}", err=True)
        raise typer.Exit(EX_UNAVAILABLE) from None
