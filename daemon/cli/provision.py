"""``kioskd provision``: turn a fresh board (or an image, ``--root``) into a kiosk.

Guided by default on a terminal; with ``--yes`` (or without a terminal) every
answer comes from flags, a ``--devices`` file, a ``--batch`` file of boards, or
what the last run recorded on the board.  ``--dry-run`` shows what would
change; ``--check`` reports drift between what is installed and what would be
installed (exit 1 on drift).  ``kioskd provision self-test`` exercises every
configured device through the running daemon; ``kioskd provision master-list``
installs an ICAO CSCA master list for the card reader.

Only declarations live here: the daemon imports this module at start, so the
flow (rich, cryptography, ...) is imported when a technician runs it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from provisioning.options import ProvisionOptions

app = typer.Typer(
    name="provision",
    help="Provision this board (or an image with --root): config, broker, units, devices.",
    invoke_without_command=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@app.callback()
def provision(
    ctx: typer.Context,
    *,
    board: Annotated[str | None, typer.Option(help="Board id, e.g. hcm-q6-0001.")] = None,
    tenant: Annotated[str | None, typer.Option(help="Tenant (the operating authority).")] = None,
    site: Annotated[str | None, typer.Option(help="Where the kiosk stands.")] = None,
    fleet_url: Annotated[str | None, typer.Option(help="Fleet broker URL (mqtts://...).")] = None,
    fleet_ca: Annotated[Path | None, typer.Option(help="Fleet CA bundle (PEM).")] = None,
    fleet_cert: Annotated[Path | None, typer.Option(help="Signed board certificate.")] = None,
    fleet_password_file: Annotated[
        Path | None, typer.Option(help="File holding the fleet broker password.")
    ] = None,
    apt_url: Annotated[
        str | None, typer.Option(help="The fleet's signed package repository (https://...).")
    ] = None,
    apt_key: Annotated[
        Path | None, typer.Option(help="Its signing key: the public key, ASCII-armored.")
    ] = None,
    mqtt_port: Annotated[
        int | None, typer.Option(help="Local broker TCP port (default: 1883).")
    ] = None,
    ws_port: Annotated[
        int | None, typer.Option(help="Websockets port for the UI, 0: none (default: 9001).")
    ] = None,
    ws_bind: Annotated[str | None, typer.Option(help="Websockets interface (default: lo).")] = None,
    ui: Annotated[
        list[str] | None, typer.Option(help="MQTT user of a kiosk UI (default: ui).")
    ] = None,
    ui_service: Annotated[
        bool | None,
        typer.Option(
            "--ui-service/--no-ui-service",
            help="Enable kioskd-ui.service, the UI on 127.0.0.1:8080 (default: yes).",
        ),
    ] = None,
    assign: Annotated[
        list[str] | None, typer.Option(help="What a serial port holds: ttyUSB0=coinAcceptor.")
    ] = None,
    devices: Annotated[
        Path | None, typer.Option(help="TOML with [devices.<id>] tables (no detection).")
    ] = None,
    simulate: Annotated[bool, typer.Option(help="Configure every device simulated.")] = False,
    redetect: Annotated[bool, typer.Option(help="Detect hardware again.")] = False,
    pcsc: Annotated[bool, typer.Option(help="Ask pcscd for its readers.")] = True,
    batch: Annotated[
        Path | None, typer.Option(help="TOML [[boards]] or CSV; --root may hold {board}.")
    ] = None,
    root: Annotated[Path, typer.Option(help="Install into this root (image/chroot).")] = Path("/"),
    sysfs_root: Annotated[
        Path | None, typer.Option(help="Detect hardware below this root (default: /).")
    ] = None,
    kioskd_bin: Annotated[str | None, typer.Option(help="kioskd path in the unit.")] = None,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Non-interactive.")] = False,
    dry_run: Annotated[bool, typer.Option(help="Show what would change.")] = False,
    check: Annotated[bool, typer.Option(help="Report drift; exit 1 if any.")] = False,
) -> None:
    """Provision a board: answers, detection, device config, files, users."""
    if ctx.invoked_subcommand is not None:
        return
    from provisioning.flow import main  # noqa: PLC0415 - keeps the daemon's start-up lean

    options = ProvisionOptions(
        board=board,
        tenant=tenant,
        site=site,
        fleet_url=fleet_url,
        fleet_ca=fleet_ca,
        fleet_cert=fleet_cert,
        fleet_password_file=fleet_password_file,
        apt_url=apt_url,
        apt_key=apt_key,
        mqtt_port=mqtt_port,
        ws_port=ws_port,
        ws_bind=ws_bind,
        ui=tuple(ui or ()),
        ui_service=ui_service,
        assign=tuple(assign or ()),
        devices=devices,
        simulate=simulate,
        redetect=redetect,
        pcsc=pcsc,
        batch=batch,
        root=root,
        sysfs_root=sysfs_root,
        kioskd_bin=kioskd_bin,
        yes=yes,
        dry_run=dry_run,
        check=check,
    )
    main(options)


@app.command("self-test")
def self_test(
    *,
    config: Annotated[Path, typer.Option(help="kioskd config of this board.")] = Path(
        "/etc/kioskd/kioskd.toml"
    ),
    credentials: Annotated[Path, typer.Option(help="Technician's broker password file.")] = Path(
        "/etc/kioskd/credentials/technician.password"
    ),
    report: Annotated[Path | None, typer.Option(help="Where to save the JSON report.")] = None,
    device: Annotated[list[str] | None, typer.Option(help="Only this device id.")] = None,
) -> None:
    """Exercise every configured device through the running daemon; save a JSON report."""
    from provisioning.selftest import main  # noqa: PLC0415 - keeps the daemon's start-up lean

    main(config=config, credentials=credentials, report_file=report, only=device)


@app.command("master-list")
def master_list(
    source: Annotated[Path, typer.Argument(help="The master list file (.ml, CMS-signed).")],
    *,
    csca_dir: Annotated[Path, typer.Option(help="The card reader's csca_dir on the board.")] = Path(
        "/etc/kioskd/csca"
    ),
    root: Annotated[Path, typer.Option(help="Install into this root (image/chroot).")] = Path("/"),
    trust: Annotated[
        Path | None,
        typer.Option(help="The publishing state's CSCA certificate (its signer's issuer)."),
    ] = None,
) -> None:
    """Install an ICAO CSCA master list after checking its signature and signer."""
    from provisioning.csca import MasterListRefused, install  # noqa: PLC0415 - keeps start-up lean

    try:
        target, count = install(source, csca_dir, root, trust)
    except MasterListRefused as exc:
        typer.echo(f"refused: {exc}", err=True)
        raise typer.Exit(1) from None
    typer.echo(f'installed {count} CSCAs: {target} (csca_dir = "{csca_dir}")')
