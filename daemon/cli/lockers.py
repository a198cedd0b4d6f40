"""``kioskd lockers``: the technician opens and assigns compartments and reads the open audit.

``open`` and ``assign`` go through the running daemon over MQTT, exactly like a
kiosk UI's request (the daemon owns the lock lines, serialises the bank's
commands, sees the door open and writes the audit row); they need the daemon
and its broker.  They ask as the ``technician`` broker user (a staff user: ``assign``
and an ``open`` without a code are staff operations), on ``req/technician/...``;
on a board whose broker has users, its password is read from ``--credentials``.
``audit`` reads the append-only audit table from the state directory, so it also
works while the daemon is stopped.
"""

from __future__ import annotations

import asyncio
import secrets
import socket
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import aiomqtt
import msgspec
import typer

from daemon.api.topics import Topics
from daemon.config import EX_CONFIG, Config, ConfigError, load, sim_config, sim_state_dir
from daemon.mqtt.codec import JSON_CODEC
from daemon.mqtt.link import NODELAY, publish_properties
from devices.lockers.audit import audit_path, read_audit

EX_UNAVAILABLE = 69
EX_NOPERM = 77
#: The broker user (and client id) the technician's commands ask as.
TECHNICIAN = "technician"
#: Seconds beyond the command's own deadline to wait for its completion.
REPLY_MARGIN_S = 5.0

app = typer.Typer(
    name="lockers",
    help="Technician commands for the result-return lockers.",
    no_args_is_help=True,
)

ConfigOption = Annotated[
    Path | None, typer.Option("--config", "-c", help="TOML config file.", dir_okay=False)
]
SimOption = Annotated[bool, typer.Option("--sim", help="The built-in simulation config.")]
DeviceOption = Annotated[str, typer.Option(help="Device id of the locker bank.")]
PortOption = Annotated[
    int | None, typer.Option(help="Broker port (default: [mqtt] port; `run --sim` prints it).")
]
TimeoutOption = Annotated[
    int, typer.Option(help="How long the door may take to be opened, ms.", min=100, max=180_000)
]
Compartment = Annotated[int, typer.Argument(min=1, help="Compartment number, from 1.")]
CodeOption = Annotated[
    str | None,
    typer.Option(help="The dossier code printed on the citizen's slip (see each command)."),
]
CredentialsOption = Annotated[
    Path,
    typer.Option(
        help="The technician's broker password file (read when [mqtt] has a username).",
        dir_okay=False,
    ),
]
DEFAULT_CREDENTIALS = Path("/etc/kioskd/credentials/technician.password")


def _config(config: Path | None, sim: bool) -> Config:
    if config is None and not sim:
        typer.echo("kioskd lockers: give --config PATH or --sim", err=True)
        raise typer.Exit(64)
    try:
        return load(config) if config is not None else sim_config()
    except ConfigError as exc:
        typer.echo(f"kioskd lockers: invalid config: {exc}", err=True)
        raise typer.Exit(EX_CONFIG) from None


async def request(
    config: Config,
    device: str,
    command: str,
    params: dict[str, Any],
    timeout_s: float,
    *,
    password: str | None = None,
) -> dict[str, Any]:
    """Send one device command as the technician and return its completion.

    ``password`` is the technician's; None connects without a user (``--sim``, a
    test broker).

    Raises:
        aiomqtt.MqttError: the broker is unreachable or refused the login.
        TimeoutError: no completion within ``timeout_s`` seconds.

    """
    topics = Topics(config.board.id)
    client_id = TECHNICIAN
    request_id = f"technician-{secrets.token_hex(8)}"
    reply = topics.reply(client_id, request_id)
    props = publish_properties(JSON_CODEC.content_type, request_id.encode())
    props.ResponseTopic = reply
    payload = JSON_CODEC.encode({"requestId": request_id, **params})
    async with aiomqtt.Client(
        config.mqtt.host,
        config.mqtt.port,
        identifier=client_id,
        username=TECHNICIAN if password is not None else None,
        password=password,
        protocol=aiomqtt.ProtocolVersion.V5,
        timeout=config.mqtt.connect_timeout,
        socket_options=[NODELAY],
    ) as client:
        await client.subscribe(reply, qos=1)
        await client.publish(
            topics.request(client_id, command, device), payload, qos=1, properties=props
        )
        async with asyncio.timeout(timeout_s):
            async for message in client.messages:
                answer = JSON_CODEC.decode(bytes(message.payload))
                if isinstance(answer, dict) and answer.get("type") == "completion":
                    return answer
    raise TimeoutError  # pragma: no cover - the iterator ends only on disconnect


def _run_command(
    config: Config,
    *,
    port: int | None,
    device: str,
    command: str,
    compartment: int,
    timeout_ms: int,
    code: str | None = None,
    credentials: Path,
) -> None:
    if port is not None:
        config = config.replace(mqtt=msgspec.structs.replace(config.mqtt, port=port))
    password = None
    if config.mqtt.username is not None:
        # A broker with users: ask as the technician, never with the daemon's own login.
        try:
            password = credentials.read_text(encoding="utf-8").splitlines()[0]
        except (OSError, IndexError) as exc:
            typer.echo(f"kioskd lockers: cannot read {credentials}: {exc}", err=True)
            raise typer.Exit(EX_NOPERM) from None
    params: dict[str, Any] = {"compartment": compartment, "timeoutMs": timeout_ms}
    if code is not None:
        params["code"] = code
    # The daemon answers only once the door is seen open: say so before the wait.
    typer.echo(
        f"{device}: {command} {compartment}: waiting up to {timeout_ms / 1000:g} s"
        " for its door to be opened",
        err=True,
    )
    try:
        done = asyncio.run(
            request(
                config,
                device,
                command,
                params,
                timeout_ms / 1000 + REPLY_MARGIN_S,
                password=password,
            )
        )
    except (aiomqtt.MqttError, OSError, socket.gaierror) as exc:
        typer.echo(f"kioskd lockers: cannot reach the daemon's broker: {exc}", err=True)
        raise typer.Exit(EX_UNAVAILABLE) from None
    except TimeoutError:
        typer.echo("kioskd lockers: the daemon did not answer (is it running?)", err=True)
        raise typer.Exit(EX_UNAVAILABLE) from None
    code = done.get("completionCode")
    if code == "success":
        typer.echo(f"{device}: compartment {compartment} is open")
        return
    typer.echo(f"{device}: {command} {compartment}: {code}: {done.get('errorDescription', '')}")
    raise typer.Exit(1)


def _door_command(command: str, help_text: str) -> None:
    """Register ``kioskd lockers COMMAND``: the device command ``command`` through the daemon.

    ``open`` and ``assign`` take the same options and differ only in the device
    command they send and in their help (``help_text``, shown by ``--help``).
    """

    def door_command(
        compartment: Compartment,
        *,
        config: ConfigOption = None,
        sim: SimOption = False,
        device: DeviceOption = "lockers",
        port: PortOption = None,
        timeout_ms: TimeoutOption = 60_000,
        code: CodeOption = None,
        credentials: CredentialsOption = DEFAULT_CREDENTIALS,
    ) -> None:
        _run_command(
            _config(config, sim),
            port=port,
            device=device,
            command=command,
            compartment=compartment,
            timeout_ms=timeout_ms,
            code=code,
            credentials=credentials,
        )

    door_command.__doc__ = help_text
    app.command(command)(door_command)


_door_command(
    "open",
    """Open a compartment; succeeds once its door is seen open.

    With --code: a citizen's collection (the code is checked, and used up once the
    door opened).  Without: a staff open, which leaves the compartment's code as it is.
    """,
)
_door_command(
    "assign",
    """Open a compartment to load it (audited as a staff load).

    With --code, the citizen opens it later with that code (the dossier code on the
    slip); the daemon keeps only a salted hash.  Without, its code stays as it is.
    """,
)


@app.command("audit")
def audit(
    *,
    config: ConfigOption = None,
    sim: SimOption = False,
    device: DeviceOption = "lockers",
    state_dir: Annotated[Path | None, typer.Option(help="Override [daemon] state_dir.")] = None,
) -> None:
    """Print every recorded open of a locker bank, oldest first (times in UTC)."""
    cfg = _config(config, sim)
    if state_dir is None:
        # --sim reads the board that ``kioskd run --sim`` runs, not sim.toml's default.
        state_dir = sim_state_dir() if config is None else Path(cfg.daemon.state_dir)
    path = audit_path(state_dir, device)
    if not path.exists():
        typer.echo(f"kioskd lockers: no open recorded yet (no {path})", err=True)
        return
    for row in read_audit(path):
        when = datetime.fromtimestamp(row.ts_ms / 1000, UTC).isoformat(timespec="seconds")
        typer.echo(
            f"{row.id}\t{when}\t{row.action}\t{row.compartment}\t{row.outcome}\t"
            f"{row.client_id}\t{row.request_id}"
        )
