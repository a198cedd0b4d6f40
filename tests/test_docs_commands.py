"""Every ``kioskd ...`` line in README.md and docs/*.md names real commands and options.

Lines come from fenced code blocks and from inline code spans, wherever ``kioskd``
(or ``path/kioskd``, or ``ExecStart=.../kioskd``) is the command word.  Synopsis
notation is expanded: ``[...]`` is optional, ``a|b`` and ``[--x | --y]`` are
alternatives, so ``kioskd ledger show|export`` checks both subcommands.  Each
variant is parsed by the click parser of each command on its path (an unknown
option, subcommand or extra argument fails), then run with ``--help`` appended.
A few documented commands that need no hardware are run for real.
"""

from __future__ import annotations

import asyncio
import itertools
import re
import shlex
from dataclasses import dataclass
from pathlib import Path

import pytest
import typer
from typer._click.exceptions import UsageError  # typer 0.28 vendors click, unexported
from typer.core import TyperGroup
from typer.testing import CliRunner

from daemon.cli import app
from daemon.config import sim_state_dir
from devices.lockers.audit import AuditLog, audit_path
from tests.cli_tree import PROG, root

REPO = Path(__file__).resolve().parent.parent
DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]

# ``kioskd`` in command position: at the start, after a ``$ `` prompt or sudo, or as
# the program of a systemd ``Exec*=`` line; ``systemctl status kioskd`` is not it.
_COMMAND = re.compile(
    r"^(?:\$\s+)?(?:sudo\s+)?(?:Exec\w*=)?(?:[\w.~/-]*/)?kioskd(?:\s+(?P<args>.*))?$"
)
_FENCE = re.compile(r"^\s*(```|~~~)")
_INLINE = re.compile(r"`([^`\n]+)`")


@dataclass(frozen=True)
class Documented:
    """One documented command line and where it is."""

    where: str
    line: str
    args: tuple[str, ...]


def _shell_words(text: str) -> list[str] | None:
    """The words of ``text`` as a shell reads them, or None if it is not a simple command."""
    try:
        lexer = shlex.shlex(text, posix=True, punctuation_chars="();<>&")
        lexer.whitespace_split = True
        lexer.commenters = "#"
        words = list(lexer)
    except ValueError:
        return None
    if any(word and set(word) <= set("();<>&") for word in words):
        return None  # a label such as "kioskd log (tail)", not a command
    return words


def _from_line(where: str, text: str) -> Documented | None:
    match = _COMMAND.match(text.strip())
    if match is None:
        return None
    words = _shell_words(match["args"] or "")
    if words is None:
        return None
    return Documented(where, text.strip(), tuple(words))


def documented() -> list[Documented]:
    """Every ``kioskd`` command line of the docs, fenced or inline."""
    found: list[Documented] = []
    for doc in DOCS:
        name = doc.relative_to(REPO).as_posix()
        lines = doc.read_text(encoding="utf-8").splitlines()
        fenced = False
        pending = ""
        for number, line in enumerate(lines, 1):
            if _FENCE.match(line):
                fenced, pending = not fenced, ""
                continue
            if fenced:
                # Join shell continuation lines into one command.
                if line.rstrip().endswith("\\"):
                    pending += line.rstrip()[:-1] + " "
                    continue
                entry = _from_line(f"{name}:{number}", pending + line)
                pending = ""
            else:
                # Inline, a bare `kioskd` names the program or its user, not a command.
                spans = (_from_line(f"{name}:{number}", span) for span in _INLINE.findall(line))
                found += [span for span in spans if span is not None and span.args]
                continue
            if entry is not None:
                found.append(entry)
    return found


def expand(words: tuple[str, ...]) -> list[tuple[str, ...]]:
    """Every concrete command a synopsis stands for.

    ``[--x y]``: without and with; ``[--a | --b]``: without, with ``--a``, with ``--b``;
    a word ``a|b``: ``a`` or ``b``.
    """
    choices: list[list[tuple[str, ...]]] = []
    group: list[str] | None = None
    for word in words:
        if group is None and word.startswith("["):
            group, word = [], word[1:]  # noqa: PLW2901 - peel the bracket
        if group is not None:
            closes = word.endswith("]")
            group.append(word.removesuffix("]"))
            if closes:
                alternatives = " ".join(group).split("|")
                choices.append([(), *(tuple(alt.split()) for alt in alternatives)])
                group = None
            continue
        choices.append([(alt,) for alt in word.split("|")] if "|" in word else [(word,)])
    assert group is None, f"unclosed [ in {' '.join(words)}"
    return [tuple(w for part in combo for w in part) for combo in itertools.product(*choices)]


def parse(argv: tuple[str, ...]) -> tuple[str, ...]:
    """The command path ``argv`` reaches; raises click's UsageError where click would.

    Only the option parser runs: no value conversion, no required-option check and
    no callback, so placeholders (``FILE``, ``URL``) and synopses that omit required
    options still parse, but an unknown option, subcommand or argument does not.
    """
    command = root()
    ctx = typer.Context(command, info_name=PROG)
    path: list[str] = []
    args = list(argv)
    while True:
        _, rest, _ = command.make_parser(ctx).parse_args(args=args)
        if not isinstance(command, TyperGroup):
            if rest:
                ctx.fail(f"unexpected extra argument(s) {rest}")
            return tuple(path)
        if not rest:
            return tuple(path)
        name, *args = rest
        sub = command.get_command(ctx, name)
        if sub is None:
            ctx.fail(f"no such command {name!r}")
        path.append(name)
        command, ctx = sub, typer.Context(sub, parent=ctx, info_name=name)


DOCUMENTED = documented()
VARIANTS = [(entry, variant) for entry in DOCUMENTED for variant in expand(entry.args)]


def test_the_docs_document_commands() -> None:
    # A floor that catches a broken extractor, not a list to keep in step.
    assert len(DOCUMENTED) > 30
    assert {entry.where.split(":")[0] for entry in DOCUMENTED} >= {
        "README.md",
        "docs/technician.md",
        "docs/coins.md",
        "docs/fleet.md",
        "docs/gpio.md",
    }


@pytest.mark.parametrize(
    ("entry", "argv"),
    VARIANTS,
    ids=[f"{entry.where} {' '.join(argv)}" for entry, argv in VARIANTS],
)
def test_documented_command_parses_and_has_help(entry: Documented, argv: tuple[str, ...]) -> None:
    try:
        path = parse(argv)
    except UsageError as exc:
        pytest.fail(f"{entry.where}: {entry.line}\n  {' '.join(argv)}: {exc.format_message()}")
    result = CliRunner().invoke(app, [*argv, "--help"], prog_name=PROG)
    assert result.exit_code == 0, f"{entry.where}: {entry.line}\n{result.output}"
    assert result.output.startswith(f"Usage: {' '.join((PROG, *path))} "), result.output


@pytest.mark.parametrize(
    "synopsis",
    [
        "kioskd ledger show --bogus",
        "kioskd ledger shwo",
        "kioskd version extra",
        "kioskd run [--sim | --simulate]",
        "kioskd provision self-test --report",
    ],
)
def test_a_wrong_command_does_not_parse(synopsis: str) -> None:
    entry = _from_line("here", synopsis)
    assert entry is not None
    errors = []
    for argv in expand(entry.args):
        try:
            parse(argv)
        except UsageError as exc:
            errors.append(exc.format_message())
    assert errors, f"{synopsis} parses"
    assert re.search(r"(?i)no such|unexpected|requires an argument", errors[0]), errors


def test_prose_and_labels_are_not_commands() -> None:
    assert _from_line("here", "systemctl status kioskd mosquitto") is None
    assert _from_line("here", "kioskd log (tail)") is None
    assert _from_line("here", "ExecStopPost=/usr/bin/kioskd safe-state") is not None


def _example_config(tmp_path: Path) -> Path:
    """The TOML example of docs/configuration.md, with state in ``tmp_path``."""
    text = (REPO / "docs" / "configuration.md").read_text(encoding="utf-8")
    example = text.split("## Example", 1)[1]
    match = re.search(r"```toml\n(.*?)```", example, re.DOTALL)
    assert match is not None, "docs/configuration.md: no ```toml block under ## Example"
    toml = match[1].replace('"/var/lib/kioskd"', f'"{tmp_path / "state"}"')
    toml = toml.replace('"/run/kioskd"', f'"{tmp_path / "run"}"')
    path = tmp_path / "kioskd.toml"
    path.write_text(toml, encoding="utf-8")
    return path


def test_check_config_accepts_the_documented_example(tmp_path: Path) -> None:
    config = _example_config(tmp_path)
    result = CliRunner().invoke(app, ["check-config", str(config)], prog_name=PROG)
    assert result.exit_code == 0, result.output
    assert "board hcm-q6-0001" in result.output


def test_check_config_error_reads_as_documented(tmp_path: Path) -> None:
    """docs/configuration.md quotes the message for ``port = "eighty"``."""
    config = _example_config(tmp_path)
    config.write_text(
        config.read_text(encoding="utf-8").replace("port = 1883", 'port = "eighty"'),
        encoding="utf-8",
    )
    result = CliRunner().invoke(app, ["check-config", str(config)], prog_name=PROG)
    assert result.exit_code == 78, result.output
    documented_line = (
        "kioskd: invalid config: /etc/kioskd/kioskd.toml: key `mqtt.port`: "
        "expected `int`, got `str` (found 'eighty')"
    )
    assert documented_line in (REPO / "docs" / "configuration.md").read_text(encoding="utf-8")
    assert result.output.strip() == documented_line.replace("/etc/kioskd/kioskd.toml", str(config))


def test_safe_state_runs_on_the_documented_example(tmp_path: Path) -> None:
    """``kioskd safe-state --config FILE`` (README) on the example's simulated devices."""
    config = _example_config(tmp_path)
    result = CliRunner().invoke(app, ["safe-state", "--config", str(config)], prog_name=PROG)
    assert result.exit_code == 0, result.output
    assert "printer: safe" in result.output
    assert "coins: safe" in result.output


def test_version_prints_a_version() -> None:
    result = CliRunner().invoke(app, ["version"], prog_name=PROG)
    assert result.exit_code == 0
    assert re.fullmatch(r"\d+\.\d+\.\d+\S*\n", result.output)


def test_lockers_audit_sim_reads_the_board_run_sim_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``kioskd lockers audit --sim`` once read sim.toml's /var/lib/kioskd: silently empty."""
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path))
    runner = CliRunner()
    empty = runner.invoke(app, ["lockers", "audit", "--sim"], prog_name=PROG)
    assert empty.exit_code == 0, empty.output
    assert "no open recorded yet" in empty.output
    path = audit_path(sim_state_dir(), "lockers")
    assert path.is_relative_to(tmp_path)
    path.parent.mkdir(parents=True)
    asyncio.run(AuditLog(path).append(3, "open", "ui1", "r1", "opened"))
    result = runner.invoke(app, ["lockers", "audit", "--sim"], prog_name=PROG)
    assert result.exit_code == 0, result.output
    assert result.output.split("\t")[2:5] == ["open", "3", "opened"]
