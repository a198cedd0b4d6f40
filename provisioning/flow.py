"""The provisioning flow behind ``kioskd provision``: answers, detection, files, users.

Guided by default on a terminal; with ``--yes`` (or without a terminal) every
answer comes from flags, a ``--devices`` file or a ``--batch`` file of boards.
Each step prints a pass/fail line.  ``--dry-run`` shows what would change,
``--check`` reports drift between the installed tree and what would be
installed (exit 1 on drift).  ``kioskd provision self-test`` exercises every
configured device through the running daemon.
"""

from __future__ import annotations

import csv
import os
import shutil
import subprocess
import sys
import tempfile
import tomllib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import msgspec
import typer
from rich.console import Console
from rich.markup import escape
from rich.prompt import Prompt
from rich.table import Table

from . import detect, files, plan, proposal
from .options import ProvisionOptions

EX_DRIFT = 1
EX_FAILED = 2
SYSUSERS_TIMEOUT_S = 30

console = Console(highlight=False)


class StepFailed(Exception):
    """A provisioning step failed; the message says why."""


@contextmanager
def step(name: str) -> Iterator[None]:
    """Print ``✓ name`` or ``✗ name: why`` around one step."""
    try:
        yield
    except (StepFailed, plan.PlanError, proposal.ProposalError, OSError) as exc:
        console.print(f"[red]✗[/red] {escape(name)}: {escape(str(exc))}")
        raise typer.Exit(EX_FAILED) from None
    console.print(f"[green]✓[/green] {escape(name)}")


def _kioskd_bin() -> str:
    found = shutil.which("kioskd")
    return str(Path(found).resolve()) if found else str(Path(sys.argv[0]).resolve())


def _parse_assign(values: tuple[str, ...]) -> dict[str, str]:
    result = {}
    for value in values:
        port, sep, device_class = value.partition("=")
        if not sep:
            raise StepFailed(f"--assign wants PORT=CLASS, got {value!r}")
        result[port] = device_class
    return result


def _devices_file(path: Path) -> dict[str, dict[str, Any]]:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise StepFailed(f"{path}: {exc}") from None
    devices = data.get("devices")
    if not isinstance(devices, dict):
        raise StepFailed(f"{path}: no [devices.<id>] tables")
    return devices


def _show_inventory(inventory: detect.Inventory) -> None:
    table = Table(title="Detected hardware", show_lines=False)
    for column in ("kind", "node", "VID:PID", "what"):
        table.add_column(column)
    for found in inventory.devices:
        what = " ".join(filter(None, [found.label, *(f"{k}={v}" for k, v in found.detail.items())]))
        table.add_row(found.kind, found.node, found.usb.vid_pid if found.usb else "", what)
    for reader in inventory.pcsc_readers:
        table.add_row("pcsc", reader, "", "PC/SC reader")
    console.print(table)


def _edit(text: str) -> str:
    editor = os.environ.get("VISUAL") or os.environ.get("EDITOR") or "nano"
    with tempfile.NamedTemporaryFile("w", suffix=".toml", delete=False, encoding="utf-8") as tmp:
        tmp.write(text)
    try:
        subprocess.run([editor, tmp.name], check=False)  # noqa: S603 - the technician's editor
        return Path(tmp.name).read_text(encoding="utf-8")
    finally:
        Path(tmp.name).unlink(missing_ok=True)


def _confirm_devices(devices: dict[str, dict[str, Any]], notes: list[str]) -> dict[str, Any]:
    """Show the proposed devices; the technician accepts, edits or refuses them."""
    while True:
        text = plan.to_toml({"devices": devices})
        console.print("[bold]Proposed devices[/bold]")
        console.print(text, markup=False)
        for note in notes:
            console.print(f"[yellow]![/yellow] {escape(note)}")
        choice = Prompt.ask("Use this device config?", choices=["y", "e", "n"], default="y")
        if choice == "y":
            return devices
        if choice == "n":
            raise StepFailed("the technician refused the device config")
        try:
            devices = tomllib.loads(_edit(text)).get("devices", {})
        except tomllib.TOMLDecodeError as exc:
            console.print(f"[red]not valid TOML:[/red] {escape(str(exc))}")


def _ask(answers: dict[str, Any]) -> None:
    """Prompt for what flags did not say (interactive mode)."""
    answers["board"] = Prompt.ask("Board id (e.g. hcm-q6-0001)", default=answers.get("board"))
    answers["tenant"] = Prompt.ask("Tenant", default=answers.get("tenant") or "default")
    answers["site"] = Prompt.ask("Site", default=answers.get("site") or "")
    url = Prompt.ask("Fleet broker URL (empty: none)", default=answers.get("fleet_url") or "")
    answers["fleet_url"] = url or None
    if url and not answers.get("fleet_ca"):
        answers["fleet_ca"] = Prompt.ask("Fleet CA file")


def _sysusers(root: Path) -> str:
    """Create the kioskd user in the target's /etc/passwd (systemd-sysusers --root).

    The sysusers.d file is provisioning's copy in /etc, or the Debian package's.
    """
    exe = shutil.which("systemd-sysusers")
    if exe is None:
        return "systemd-sysusers not found: the user is created at first boot"
    conf = files.target(root, "/etc/sysusers.d/kioskd.conf")
    if not conf.exists():
        conf = files.target(root, "/usr/lib/sysusers.d/kioskd.conf")
    try:
        subprocess.run(  # noqa: S603 - fixed arguments
            [exe, f"--root={root}", str(conf)],
            check=True,
            capture_output=True,
            timeout=SYSUSERS_TIMEOUT_S,
        )
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as exc:
        raise StepFailed(f"systemd-sysusers failed: {exc}") from None
    return ""


def _report(changes: list[files.Change], *, quiet_unchanged: bool = True) -> None:
    for change in changes:
        if quiet_unchanged and change.action is files.Action.UNCHANGED and not change.pending:
            continue
        pending = f" (owner {change.pending} created at first boot)" if change.pending else ""
        detail = f": {change.detail}" if change.detail else ""
        console.print(f"  {change.action.value:9} {change.path}{detail}{pending}", markup=False)


def provision_one(answers: plan.Answers, root: Path, *, dry_run: bool, check: bool) -> int:
    """Install (or check) one board; returns the exit status."""
    with step(f"plan for board {answers.board}"):
        wanted = plan.plan(answers, root)
    unchecked = plan.validate({"devices": answers.devices, "board": {"id": answers.board}})
    for device_id in unchecked:
        console.print(
            f"  [yellow]![/yellow] {device_id}: its driver is not on this machine: not checked"
        )
    if check:
        # Secrets would be new on a tree without them: that is drift too.
        drift = [c for c in files.drift(root, wanted) if c.action is not files.Action.UNCHANGED]
        if drift:
            console.print(f"[red]✗[/red] drift in {escape(str(root))}:")
            _report(drift)
            return EX_DRIFT
        console.print(f"[green]✓[/green] {escape(str(root))}: no drift ({len(wanted)} files)")
        return 0
    with step("dry run: nothing written" if dry_run else f"install into {root}"):
        changes = files.apply(root, wanted, dry_run=dry_run)
        if not dry_run and any(c.pending for c in changes):
            note = _sysusers(root)
            if note:
                console.print(f"  {note}", markup=False)
            changes = [
                c if c.action is not files.Action.UNCHANGED else later
                for c, later in zip(changes, files.apply(root, wanted), strict=True)
            ]
        _report(changes)
    changed = sum(c.action is not files.Action.UNCHANGED for c in changes)
    console.print(f"{changed} of {len(changes)} files {'would change' if dry_run else 'changed'}")
    return 0


def _batch(path: Path) -> list[dict[str, Any]]:
    try:
        if path.suffix == ".csv":
            with path.open(encoding="utf-8", newline="") as handle:
                return [{k: v for k, v in row.items() if v} for row in csv.DictReader(handle)]
        boards = tomllib.loads(path.read_text(encoding="utf-8")).get("boards", [])
    except (OSError, tomllib.TOMLDecodeError, csv.Error) as exc:
        raise StepFailed(f"{path}: {exc}") from None
    if not isinstance(boards, list):
        raise StepFailed(f"{path}: [[boards]] must be an array of tables")
    return boards


def _answers(data: dict[str, Any]) -> plan.Answers:
    try:
        return msgspec.convert(data, plan.Answers, strict=False)
    except msgspec.ValidationError as exc:
        raise StepFailed(f"invalid answers: {exc}") from None


def main(options: ProvisionOptions) -> None:
    """Provision one board, or each of a batch; exits with the status (typer.Exit)."""
    batch = options.batch
    interactive = not options.yes and sys.stdin.isatty() and batch is None and not options.check
    flags: dict[str, Any] = options.answers()
    try:
        if options.fleet_password_file is not None:
            flags["fleet_password"] = options.fleet_password_file.read_text().splitlines()[0]
        status = 0
        for row in _batch(batch) if batch is not None else [{}]:
            name = str(row.get("board") or flags.get("board") or "")
            board_root = Path(str(options.root).replace("{board}", name))
            # What the last run recorded, then the batch row, then flags.
            answers: dict[str, Any] = {**plan.recorded(board_root), **row, **flags}
            answers.setdefault("kioskd_bin", _kioskd_bin())
            if interactive:
                _ask(answers)
            _require_board(answers)
            with step("device config"):
                _devices(answers, options, interactive=interactive)
            status = max(
                status,
                provision_one(
                    _answers(answers), board_root, dry_run=options.dry_run, check=options.check
                ),
            )
    except (StepFailed, plan.PlanError, OSError) as exc:
        console.print(f"[red]✗[/red] {escape(str(exc))}")
        raise typer.Exit(EX_FAILED) from None
    if status:
        raise typer.Exit(status)


def _require_board(answers: dict[str, Any]) -> None:
    if not answers.get("board"):
        raise StepFailed("no board id: give --board (or run on a terminal)")


def _devices(answers: dict[str, Any], options: ProvisionOptions, *, interactive: bool) -> None:
    """Fill ``answers["devices"]`` and udev rules: simulated, from a file, recorded or detected."""
    if options.simulate:
        answers["devices"] = plan.sim_devices()
        answers["udev_rules"] = ""
        return
    if options.devices is not None:
        answers["devices"] = _devices_file(options.devices)
        return
    if "devices" in answers and not options.redetect and not options.assign:
        return
    readers = detect.pcsc_reader_names if options.pcsc else tuple
    inventory = detect.detect(options.sysfs_root or Path("/"), readers)
    _show_inventory(inventory)
    proposed = proposal.propose(inventory, _parse_assign(options.assign))
    answers["udev_rules"] = proposed.udev_rules()
    if interactive:
        answers["devices"] = _confirm_devices(proposed.devices, proposed.notes)
        return
    for note in proposed.notes:
        console.print(f"  [yellow]![/yellow] {escape(note)}")
    answers["devices"] = proposed.devices
