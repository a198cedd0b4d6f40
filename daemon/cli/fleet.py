"""``kioskd fleet ...``: the fleet operator's tools (live monitor, Prometheus exporter)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
from collections.abc import Coroutine
from pathlib import Path
from typing import Annotated, Any

import typer

from daemon.fleet.feed import FleetBroker
from daemon.uplink.transport import TransportError

app = typer.Typer(
    name="fleet",
    help="Fleet operator's tools: live monitor, Prometheus exporter, staged-release samples.",
    no_args_is_help=True,
)

BrokerOption = Annotated[
    str, typer.Option("--broker", help="Fleet broker: mqtts://host[:8883] or mqtt://host[:1883].")
]
CaOption = Annotated[
    Path | None, typer.Option("--ca", help="CA certificate pinned for the broker.")
]
CertOption = Annotated[Path | None, typer.Option("--cert", help="Operator client certificate.")]
KeyOption = Annotated[Path | None, typer.Option("--key", help="Key of the client certificate.")]
UserOption = Annotated[str | None, typer.Option("--username", help="MQTT user name.")]
PasswordOption = Annotated[
    Path | None, typer.Option("--password-file", help="File whose first line is the password.")
]
TenantOption = Annotated[str, typer.Option("--tenant", help="Only this tenant ('+': all).")]


def _broker(  # noqa: PLR0917 - one argument per CLI option
    url: str,
    ca: Path | None,
    cert: Path | None,
    key: Path | None,
    username: str | None,
    password_file: Path | None,
    client_id: str | None = None,
) -> FleetBroker:
    return FleetBroker(
        url=url,
        ca_file=None if ca is None else str(ca),
        cert_file=None if cert is None else str(cert),
        key_file=None if key is None else str(key),
        username=username,
        password_file=None if password_file is None else str(password_file),
        client_id=client_id,
    )


def _run(main: Coroutine[Any, Any, None]) -> None:
    try:
        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(main)
    except (TransportError, ValueError, OSError) as exc:
        typer.echo(f"kioskd fleet: {exc}", err=True)
        raise typer.Exit(69) from None


@app.command()
def watch(  # noqa: PLR0917 - one argument per CLI option
    broker: BrokerOption,
    ca: CaOption = None,
    cert: CertOption = None,
    key: KeyOption = None,
    username: UserOption = None,
    password_file: PasswordOption = None,
    tenant: TenantOption = "+",
) -> None:
    """Live table of every board: status, last seen, degraded devices, paper, outbox, temp."""
    # Imported here: `kioskd run` must not pay for rich.live and prometheus-client.
    from daemon.fleet.watch import run_watch  # noqa: PLC0415

    logging.basicConfig(
        level="ERROR", format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr
    )
    _run(run_watch(_broker(broker, ca, cert, key, username, password_file), tenant=tenant))


@app.command()
def exporter(  # noqa: PLR0917 - one argument per CLI option
    broker: BrokerOption,
    listen: Annotated[
        str, typer.Option("--listen", help="HOST:PORT of /metrics.")
    ] = "127.0.0.1:9108",
    ca: CaOption = None,
    cert: CertOption = None,
    key: KeyOption = None,
    username: UserOption = None,
    password_file: PasswordOption = None,
    tenant: TenantOption = "+",
    share_group: Annotated[
        str | None,
        typer.Option(
            "--share-group",
            help="MQTT 5 shared subscription group: run several exporters with the same name.",
        ),
    ] = None,
    client_id: Annotated[str | None, typer.Option("--client-id", help="MQTT client id.")] = None,
) -> None:
    """Prometheus exporter: fleet telemetry as metrics labelled by tenant, board and device."""
    from daemon.fleet.exporter import run_exporter  # noqa: PLC0415 - see watch

    logging.basicConfig(
        level="INFO", format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr
    )
    target = _broker(broker, ca, cert, key, username, password_file, client_id)
    _run(run_exporter(target, listen, tenant=tenant, share_group=share_group))


@app.command()
def sample(
    percent: Annotated[int, typer.Option(min=0, max=100, help="Size of the sample in percent.")],
    boards: Annotated[
        list[str] | None, typer.Argument(help="Board ids (default: one per line on stdin).")
    ] = None,
) -> None:
    """Print the boards in a staged release's stable sample (sha256 of the id mod 100 < PERCENT)."""
    from daemon.fleet.stage import in_sample  # noqa: PLC0415

    for board in boards or [line.strip() for line in sys.stdin if line.strip()]:
        if in_sample(board, percent):
            typer.echo(board)
