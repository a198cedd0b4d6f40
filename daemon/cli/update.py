"""``kioskd update``: the technician's side of updates (docs/updates.md).

``install`` and ``resume`` run the updater's copy in its state directory with
Debian's ``/usr/bin/python3`` (as the boot and fleet services do), never the
package being replaced; ``gate`` is what the updater runs from a new version.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
from pathlib import Path
from typing import Annotated

import typer

from daemon.update import updater

app = typer.Typer(
    name="update",
    help="Update kioskd from the fleet's signed repository behind a health gate (as root).",
    no_args_is_help=True,
    add_completion=False,
)
PYTHON = "/usr/bin/python3"


def _updater(*args: str) -> int:
    if os.geteuid() != 0:
        typer.echo("kioskd update: run it as root (it installs packages)", err=True)
        return 2
    copy = updater.STATE / "updater.py"
    if not copy.exists():
        updater.install_copy()
    return subprocess.run([PYTHON, str(copy), *args], check=False).returncode  # noqa: S603


@app.command("install")
def install(
    version: Annotated[str, typer.Argument(help="A version published in the repository.")],
    window: Annotated[float, typer.Option(help="Seconds the new version has to pass the gate.")] = (
        updater.Settings.window_s
    ),
) -> None:
    """Install VERSION; exit 0 committed, 1 rolled back (health gate failed), 2 refused."""
    raise typer.Exit(_updater("--window", str(window), "start", version))


@app.command("resume")
def resume() -> None:
    """Finish or roll back an interrupted update (kioskd-update-resume.service does at boot)."""
    raise typer.Exit(_updater("resume"))


@app.command("status")
def status() -> None:
    """The installed version and the last update's state, target and reason."""
    data = updater.Updater().status()
    for key in ("state", "version", "target", "reason", "requestId", "time"):
        if data.get(key):
            typer.echo(f"{key}: {data[key]}")


@app.command("gate")
def gate(
    config: Annotated[Path, typer.Option(help="kioskd config of this board.")] = Path(
        "/etc/kioskd/kioskd.toml"
    ),
    credentials: Annotated[Path, typer.Option(help="Technician's broker password file.")] = Path(
        "/etc/kioskd/credentials/technician.password"
    ),
    window: Annotated[float, typer.Option(help="Seconds to pass it.")] = updater.Settings.window_s,
) -> None:
    """The health gate of this version's running daemon (the updater runs it); exit 1: failed."""
    from daemon.config import ConfigError, load  # noqa: PLC0415 - lean start of other commands
    from daemon.update.gate import GateError, check  # noqa: PLC0415

    try:
        cfg = load(config)
        password = credentials.read_text(encoding="utf-8").splitlines()[0]
        typer.echo(asyncio.run(check(cfg, password, window)))
    except (ConfigError, OSError, IndexError) as exc:
        typer.echo(f"gate: {exc}", err=True)
        raise typer.Exit(2) from None
    except GateError as exc:
        typer.echo(f"gate failed: {exc}", err=True)
        raise typer.Exit(1) from None
