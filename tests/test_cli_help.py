"""``--help`` works for every ``kioskd`` command and shows each help text as written.

The commands come from walking the click tree (tests/cli_tree.py), so a command
added later is covered without editing this file.  ``kioskd provision --help``
once crashed with a rich ``MarkupError``: its help text held ``[/]``; other texts
naming TOML tables (``[daemon] state_dir``) lost the brackets silently.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from daemon.cli import app
from tests.cli_tree import Node, walk

NODES = list(walk())


def _squeeze(text: str) -> str:
    # The formatter wraps, indents and breaks on hyphens; compare without whitespace.
    return "".join(text.split())


def _help_texts(node: Node) -> list[str]:
    """The command's own help and each parameter's, as the source spells them."""
    own = (node.command.help or "").partition("\f")[0]
    texts = [own] if own.strip() else []
    texts += [help_ for param in node.command.params if (help_ := getattr(param, "help", None))]
    return texts


def test_the_tree_has_every_group_and_command() -> None:
    lines = {node.line for node in NODES}
    # A sanity floor, not the list: the walk must reach nested commands.
    assert {"kioskd", "kioskd provision", "kioskd provision self-test"} <= lines
    assert len(lines) == len(NODES) > 10


@pytest.mark.parametrize("node", NODES, ids=lambda node: node.line)
def test_help_exits_0_with_usage_and_every_help_text(node: Node) -> None:
    result = CliRunner().invoke(app, [*node.path, "--help"], prog_name="kioskd")
    assert result.exception is None or isinstance(result.exception, SystemExit), (
        f"{node.line} --help raised {result.exception!r}\n{result.output}"
    )
    assert result.exit_code == 0, result.output
    assert result.output.lstrip().startswith(f"Usage: {node.line}"), result.output
    assert "Traceback" not in result.output
    shown = _squeeze(result.output)
    for text in _help_texts(node):
        assert _squeeze(text) in shown, f"{node.line} --help does not show {text!r} as written"


@pytest.mark.parametrize("words", [(), ("provision",)], ids=["kioskd", "kioskd provision"])
def test_installed_script_prints_help(words: tuple[str, ...]) -> None:
    """The console script itself, in a plain non-UTF-8 terminal (a serial console)."""
    script = Path(sys.executable).with_name("kioskd")
    if not script.exists():
        pytest.skip(f"no console script next to {sys.executable}")
    env = {**os.environ, "LANG": "C", "LC_ALL": "C", "COLUMNS": "80", "TERM": "dumb"}
    done = subprocess.run(
        [str(script), *words, "--help"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"Usage: {' '.join(('kioskd', *words))}"), done.stdout
    assert not done.stderr, done.stderr
