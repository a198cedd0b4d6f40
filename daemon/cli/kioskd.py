"""``kioskd`` command line: run the daemon, put hardware in its safe state, check a config."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import signal
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, ClassVar

import msgspec
import typer

from daemon import __version__, logs, sim_runtime
from daemon.app import App, limit_malloc_arenas, safe_state_configured
from daemon.config import EX_CONFIG, Config, ConfigError, load, sim_config, sim_state_dir
from daemon.ui import DEFAULT_PORT as UI_DEFAULT_PORT

from .lazy import LazyGroup

if TYPE_CHECKING:
    from daemon.broker import BrokerInfo

EX_UNAVAILABLE = 69


class Commands(LazyGroup):
    """``kioskd``'s commands; the other command groups' modules are imported when used."""

    listing: ClassVar[dict[str, str | None]] = {
        "run": None,
        "ui": "daemon.cli.ui:ui",
        "safe-state": None,
        "check-config": None,
        "version": None,
        "fleet": "daemon.cli.fleet:app",
        "provision": "daemon.cli.provision:app",
        "lockers": "daemon.cli.lockers:app",
        "update": "daemon.cli.update:app",
        "ledger": "daemon.cli.ledger:app",
    }


# Help texts are plain text.  They name TOML tables (``[daemon] state_dir``) and
# defaults (``[/]``) in brackets, which rich markup would swallow as style tags or
# reject with a MarkupError; markdown would drop ``<id>``.  With markup off, typer
# uses click's plain help formatter, which every sub-app inherits from this root
# (``Commands`` passes it to each command group it imports).
app = typer.Typer(
    name="kioskd",
    help="Device daemon of a self-service administrative kiosk.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    cls=Commands,
)

ConfigOption = Annotated[
    Path | None,
    typer.Option("--config", "-c", help="TOML config file.", dir_okay=False),
]
SimOption = Annotated[
    bool,
    typer.Option("--sim", help="Built-in config: every device simulated, embedded broker."),
]


def _print_version(value: bool) -> None:
    if value:
        typer.echo(__version__)
        raise typer.Exit


@app.callback()
def _root(
    _version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_print_version, is_eager=True, help="Print the version and exit."
        ),
    ] = False,
) -> None:
    """Device daemon of a self-service administrative kiosk."""


def _fail(message: str, code: int) -> typer.Exit:
    typer.echo(f"kioskd: {message}", err=True)
    return typer.Exit(code)


def _config(config: Path | None, sim: bool) -> Config:
    if config is None and not sim:
        raise _fail("give --config PATH or --sim", 64)
    try:
        return load(config) if config is not None else sim_config()
    except ConfigError as exc:
        raise _fail(f"invalid config: {exc}", EX_CONFIG) from None


def _setup_logging(level: str) -> None:
    # journald adds timestamps and the unit; keep lines short and greppable.
    # Replaces any handler set on import (python-escpos calls logging.basicConfig()).
    logs.setup(level)


def _announce(config: Config, broker: BrokerInfo, ui: tuple[str, str] | None) -> None:
    """Print where the embedded broker is and what to try; ``ui``: its URL and its bridge's."""
    board = config.board.id
    port = broker.port
    lines = [
        f"kioskd {__version__}: board {board}, embedded broker mqtt://127.0.0.1:{port}",
    ]
    if broker.ws_port is not None:
        lines.append(f"  websockets: ws://127.0.0.1:{broker.ws_port}")
    if ui is not None:
        ui_url, ws_bridge = ui
        lines.append(f"  kiosk UI:   {ui_url}  (technician: {ui_url}tech.html)")
        lines.append(f"  websockets to the broker through the UI server: {ws_bridge}")
    lines += [
        f"  state dir:  {config.daemon.state_dir}",
        "  try:",
        (
            f"    mosquitto_rr -V 5 -p {port} -i ui1 -t kiosk/v1/{board}/req/ui1/cmd/getStatus "
            f"-e kiosk/v1/{board}/reply/ui1/1 -D PUBLISH content-type application/json "
            '-m \'{"requestId":"r1"}\''
        ),
        f"    mosquitto_sub -V 5 -p {port} -t 'kiosk/v1/{board}/#' -v",
        (
            f"    mosquitto_pub -V 5 -p {port} -t kiosk/v1/{board}/sim/scanner/scan "
            '-D PUBLISH content-type application/json -m \'{"text":"HS-000123"}\''
        ),
    ]
    if config.vietqr is not None:
        lines.append(
            f"    mosquitto_rr -V 5 -p {port} -i ui1 -t kiosk/v1/{board}/req/ui1/cmd/vietqrPayload "
            f"-e kiosk/v1/{board}/reply/ui1/2 -D PUBLISH content-type application/json "
            '-m \'{"requestId":"r3","amount":25000,"reference":"HS261205DEMO"}\''
            "   (a VietQR code: docs/payments.md)"
        )
    notes = next((d.id for d in config.devices if d.device_class == "cashAcceptor"), None)
    if notes is not None:
        lines += [
            # Two replies (ack, then the completion once paid): mosquitto_rr stops at the first.
            (
                f"    mosquitto_sub -V 5 -p {port} -t kiosk/v1/{board}/reply/ui1/3 -C 2 -v & "
                f"sleep 0.3; mosquitto_pub -V 5 -p {port} -i ui1 -t "
                f"kiosk/v1/{board}/req/ui1/dev/{notes}/cmd/depositStart "
                f"-D PUBLISH response-topic kiosk/v1/{board}/reply/ui1/3 -D PUBLISH content-type "
                'application/json -m \'{"requestId":"r4","currency":"VND","amountDue":30000}\''
            ),
            (
                f"    mosquitto_pub -V 5 -p {port} -t kiosk/v1/{board}/sim/{notes}/insertNote "
                "-D PUBLISH content-type application/json -m '{\"value\":20000}'"
                "   (a banknote, escrowed then stacked: docs/payments.md)"
            ),
        ]
    lines += [
        "  MQTT 3.1.1 clients send JSON and name their reply topic in replyTo (docs/api.md):",
        (
            f"    mosquitto_sub -V 311 -p {port} -t 'kiosk/v1/{board}/reply/ui2/#' -C 1 & "
            f"sleep 0.3; mosquitto_pub -V 311 -p {port} -t kiosk/v1/{board}/req/ui2/cmd/getStatus "
            f'-m \'{{"requestId":"r2","replyTo":"kiosk/v1/{board}/reply/ui2/1"}}\''
        ),
        "  API document: docs/api.md, docs/asyncapi.json.  Ctrl-C stops it.",
    ]
    typer.echo("\n".join(lines))


async def _serve(config: Config, mqtt_port: int, ws_port: int | None, ui_port: int) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with contextlib.AsyncExitStack() as stack:
        broker: BrokerInfo | None = None
        if config.broker.embedded:
            broker = await _start_broker(stack, config, mqtt_port, ws_port)
            mqtt = msgspec.structs.replace(config.mqtt, host=broker.host, port=broker.port)
            config = config.replace(mqtt=mqtt)
            ws_port = broker.ws_port
        else:
            ws_port = config.broker.ws_port
        ui = await _serve_ui(stack, config, ui_port) if ui_port else None
        if broker is not None:
            _announce(config, broker, ui)
        await App(config).run(stop)


async def _start_broker(
    stack: contextlib.AsyncExitStack, config: Config, mqtt_port: int, ws_port: int | None
) -> BrokerInfo:
    """Run the embedded mosquitto (``[broker] embedded``) until ``stack`` closes.

    Raises:
        typer.Exit: EX_UNAVAILABLE, mosquitto did not start (the reason on stderr).

    """
    from daemon.broker import BrokerError, embedded_broker  # noqa: PLC0415 - only when embedded

    broker = embedded_broker(
        Path(config.daemon.runtime_dir) / "broker",
        port=mqtt_port,
        ws_port=ws_port,
        mosquitto=config.broker.mosquitto,
    )
    try:
        return await stack.enter_async_context(broker)
    except BrokerError as exc:
        raise _fail(str(exc), EX_UNAVAILABLE) from None


async def _serve_ui(
    stack: contextlib.AsyncExitStack, config: Config, ui_port: int
) -> tuple[str, str]:
    """Serve the reference UI on ``ui_port`` (a free port if taken) until ``stack`` closes.

    The page connects to the UI server's own bridge to the broker's TCP listener.
    Returns the UI's URL and the bridge's.

    Raises:
        typer.Exit: EX_UNAVAILABLE, the UI cannot be served (the reason on stderr).

    """
    # The UI server only when a UI is served (its websockets library with the first page).
    from daemon.broker import free_port, port_free  # noqa: PLC0415
    from daemon.ui.server import (  # noqa: PLC0415
        BRIDGE_PATH,
        BrokerAddress,
        UiError,
        UiSite,
        serve_ui,
    )

    site = UiSite(board=config.board.id)
    port = ui_port if port_free(ui_port) else free_port()
    broker_tcp = BrokerAddress(config.mqtt.host, config.mqtt.port)
    try:
        ui_url = await stack.enter_async_context(serve_ui(site, port, broker=broker_tcp))
    except UiError as exc:
        raise _fail(str(exc), EX_UNAVAILABLE) from None
    return ui_url, "ws" + ui_url.removeprefix("http").rstrip("/") + BRIDGE_PATH


@app.command()
def run(
    *,
    config: ConfigOption = None,
    sim: SimOption = False,
    mqtt_port: Annotated[int, typer.Option(help="Embedded broker TCP port.")] = 1883,
    ws_port: Annotated[int, typer.Option(help="Embedded broker websockets port (0: none).")] = 9001,
    state_dir: Annotated[Path | None, typer.Option(help="Override [daemon] state_dir.")] = None,
    log_level: Annotated[str | None, typer.Option(help="debug, info, warning or error.")] = None,
    ui_port: Annotated[
        int | None,
        typer.Option(
            help=f"Reference UI on this loopback port (--sim: {UI_DEFAULT_PORT}, 0: none).",
        ),
    ] = None,
) -> None:
    """Run the daemon (--sim: every device simulated, with an embedded broker)."""
    cfg = _config(config, sim)
    with contextlib.ExitStack() as stack:
        daemon = cfg.daemon
        if sim and config is None:
            daemon = msgspec.structs.replace(
                daemon,
                state_dir=str(sim_state_dir()),
                runtime_dir=str(stack.enter_context(sim_runtime.runtime_dir())),
            )
        if state_dir is not None:
            daemon = msgspec.structs.replace(daemon, state_dir=str(state_dir))
        if log_level is not None:
            daemon = msgspec.structs.replace(daemon, log_level=log_level)
        cfg = cfg.replace(daemon=daemon)
        _setup_logging(cfg.daemon.log_level)
        limit_malloc_arenas()
        ui_on = ui_port if ui_port is not None else (UI_DEFAULT_PORT if sim else 0)
        asyncio.run(_serve(cfg, mqtt_port, ws_port or None, ui_on))


@app.command("safe-state")
def safe_state(config: ConfigOption = None, sim: SimOption = False) -> None:
    """Put every configured device in its safe state, without the daemon (ExecStopPost)."""
    cfg = _config(config, sim)
    _setup_logging(cfg.daemon.log_level)
    env_dir = Path(tempfile.mkdtemp(prefix="kioskd-safe-"))
    try:
        from devices.base import DeviceEnv  # noqa: PLC0415 - only this command needs it

        # --sim: the board of ``kioskd run --sim``, whose simulated acceptor may outlive it.
        state_dir = sim_state_dir() if sim and config is None else Path(cfg.daemon.state_dir)
        env = DeviceEnv(cfg.board.id, state_dir, env_dir)
        results = asyncio.run(safe_state_configured(cfg, env))
    finally:
        shutil.rmtree(env_dir, ignore_errors=True)
    failed = {k: v for k, v in results.items() if v is not None}
    for device_id in results:
        typer.echo(
            f"{device_id}: {'FAILED ' + failed[device_id] if device_id in failed else 'safe'}"
        )
    if failed:
        raise typer.Exit(1)


@app.command("check-config")
def check_config(path: Annotated[Path, typer.Argument(dir_okay=False)]) -> None:
    """Validate a config file and list its devices."""
    cfg = _config(path, sim=False)
    typer.echo(f"{path}: board {cfg.board.id}, {len(cfg.devices)} devices")
    for entry in cfg.devices:
        typer.echo(f"  {entry.id}: {entry.device_class} ({entry.driver})")


@app.command()
def version() -> None:
    """Print the version."""
    typer.echo(__version__)


def main() -> None:
    """Console script entry point."""
    app()
