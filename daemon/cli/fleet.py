"""``kioskd fleet ...``: the fleet operator's tools (monitor, exporter, staged releases)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
from collections.abc import Coroutine
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer

from daemon.fleet.feed import FleetBroker
from daemon.uplink.transport import TransportError

app = typer.Typer(
    name="fleet",
    help="Fleet operator's tools: live monitor, Prometheus exporter, staged releases.",
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
T = TypeVar("T")


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


def _run(main: Coroutine[Any, Any, T]) -> T | None:
    """Run ``main``; None after Ctrl-C; exit 69 when the broker or a file is unusable."""
    try:
        with contextlib.suppress(KeyboardInterrupt):
            return asyncio.run(main)
    except (TransportError, ValueError, OSError) as exc:
        typer.echo(f"kioskd fleet: {exc}", err=True)
        raise typer.Exit(69) from None
    return None


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


@app.command()
def update(  # noqa: PLR0917 - one argument per CLI option
    version: Annotated[
        str, typer.Argument(help="The kioskd package version, as published in the repository.")
    ],
    broker: BrokerOption,
    board: Annotated[
        list[str] | None, typer.Option("--board", help="This board id (repeat for several).")
    ] = None,
    site: Annotated[
        str | None,
        typer.Option("--site", help="Every board of this site (the site its birth names)."),
    ] = None,
    percent: Annotated[
        int | None,
        typer.Option("--percent", min=0, max=100, help="The stable sample of kioskd fleet sample."),
    ] = None,
    every: Annotated[bool, typer.Option("--all", help="Every board.")] = False,
    timeout: Annotated[
        float,
        typer.Option("--timeout", min=1.0, help="Seconds to wait for the outcomes once sent."),
    ] = 600.0,
    ca: CaOption = None,
    cert: CertOption = None,
    key: KeyOption = None,
    username: UserOption = None,
    password_file: PasswordOption = None,
    tenant: TenantOption = "+",
) -> None:
    """Send update VERSION to a stage's boards and follow each to committed, rolled back or refused.

    Exit 0: every target committed; 1: any did not (rolled back, refused, down, or no
    outcome within the timeout); 2: nothing sent (bad version or targets, no match).
    """
    from rich.console import Console  # noqa: PLC0415 - see watch

    from daemon.fleet.rollout import Rollout, Selection, Target, render, run_rollout  # noqa: PLC0415

    def progress(target: Target) -> None:
        reason = f": {target.reason}" if target.reason else ""
        typer.echo(f"{target.name}: {target.state}{reason}", err=True)

    try:
        selection = Selection(tuple(board or ()), site, percent, every=every)
        rollout = Rollout(version, selection, on_change=progress)
    except ValueError as exc:
        typer.echo(f"kioskd fleet update: {exc}", err=True)
        raise typer.Exit(2) from None
    logging.basicConfig(
        level="WARNING", format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr
    )
    target = _broker(broker, ca, cert, key, username, password_file)
    targets = _run(run_rollout(target, rollout, timeout=timeout, tenant=tenant))
    if targets is None:
        typer.echo("kioskd fleet update: interrupted; boards may still be updating", err=True)
        raise typer.Exit(1)
    if not targets:
        typer.echo("kioskd fleet update: no board on the broker matches; nothing sent", err=True)
        raise typer.Exit(2)
    Console().print(render(targets, version))
    raise typer.Exit(0 if all(t.state == "committed" for t in targets) else 1)
