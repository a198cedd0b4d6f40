"""The ``kioskd`` command tree as click sees it, walked from the root: no hand-kept list.

Typer builds click commands from ``daemon.cli.app``; every group (``TyperGroup``)
lists its subcommands, so a command added anywhere in the tree is found here.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

import typer
from typer.core import TyperGroup
from typer.main import get_command

from daemon.cli import app

if TYPE_CHECKING:
    from typer._click import Command

PROG = "kioskd"


@dataclass(frozen=True)
class Node:
    """One command or group: its words after ``kioskd`` and its click command."""

    path: tuple[str, ...]
    command: Command

    @property
    def line(self) -> str:
        """``kioskd`` and the words, as typed."""
        return " ".join((PROG, *self.path))


def root() -> Command:
    """The click command typer builds for ``kioskd``."""
    return get_command(app)


def walk() -> Iterator[Node]:
    """Every command and group of ``kioskd``, the root first, depth first."""
    yield from _walk(Node((), root()), typer.Context(root(), info_name=PROG))


def _walk(node: Node, ctx: typer.Context) -> Iterator[Node]:
    yield node
    group = node.command
    if not isinstance(group, TyperGroup):
        return
    for name in group.list_commands(ctx):
        sub = group.get_command(ctx, name)
        assert sub is not None, f"{node.line}: lists {name!r} but cannot build it"
        yield from _walk(
            Node((*node.path, name), sub), typer.Context(sub, parent=ctx, info_name=name)
        )
