"""``kioskd run`` carries no other command's module; the others still build as before.

Each command group's module (the ledger's CSV export, the updater, the fleet tools,
the UI server, provisioning...) is imported when its command is used
(daemon/cli/lazy.py), so the daemon's resident size does not pay for them
(docs/performance.md, "Memory").  Checked in a fresh interpreter, through click's
own resolution of ``kioskd run``, so what other tests imported does not count.
"""

from __future__ import annotations

from pathlib import Path

import typer
from typer.core import TyperCommand, TyperGroup
from typer.testing import CliRunner

from daemon.cli import app
from tests.cli_tree import root, walk
from tests.fresh_interpreter import probe

_PROBE = """
import json, sys
from typer.main import get_command
from daemon.cli import app
kioskd = get_command(app)
code = kioskd.main(["run", "--config", sys.argv[1]], prog_name="kioskd", standalone_mode=False)
after_run = sorted(sys.modules)
kioskd.main(["ledger", "--help"], prog_name="kioskd", standalone_mode=False)
print(json.dumps([code, after_run, sorted(sys.modules)]))
"""

#: Modules only other commands need, and typer's rich help formatting.
NOT_FOR_RUN = (
    "daemon.cli.fleet",
    "daemon.cli.ledger",
    "daemon.cli.lockers",
    "daemon.cli.provision",
    "daemon.cli.ui",
    "daemon.cli.update",
    "daemon.fleet",
    "daemon.ui.server",
    "daemon.update",
    "provisioning",
    "rich",
    "typer.rich_utils",
)


def _in(module: str, prefixes: tuple[str, ...]) -> bool:
    return any(module == p or module.startswith(p + ".") for p in prefixes)


def test_kioskd_run_imports_no_other_command(tmp_path: Path) -> None:
    missing = tmp_path / "kioskd.toml"  # ``run`` parses its options and fails loading it
    code, after_run, after_ledger = probe(_PROBE, str(missing))
    assert code == 78  # EX_CONFIG: the run command itself ran
    assert "daemon.app" in after_run
    assert [m for m in after_run if _in(m, NOT_FOR_RUN)] == []
    # The probe sees a command's module once it is used (the check is not vacuous).
    assert "daemon.cli.ledger" in after_ledger


def test_every_command_keeps_plain_help_formatting() -> None:
    """Lazily built groups get the root's markup mode, as ``add_typer`` gave them."""
    for node in walk():
        assert isinstance(node.command, TyperGroup | TyperCommand), node.line
        assert node.command.rich_markup_mode is None, node.line


def test_root_help_lists_every_command_in_order() -> None:
    group = root()
    assert isinstance(group, TyperGroup)
    names = group.list_commands(typer.Context(group, info_name="kioskd"))
    assert names[:2] == ["run", "ui"]
    assert {"fleet", "provision", "lockers", "update", "ledger"} <= set(names)
    output = CliRunner().invoke(app, ["--help"], prog_name="kioskd").output
    listed = [line.split()[0] for line in output.partition("Commands:")[2].splitlines() if line]
    assert listed == names
