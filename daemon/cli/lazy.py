"""A typer command group whose sub-commands are imported when first used.

``kioskd run`` is the daemon: importing every command group's module with it
(the ledger's CSV export, the updater, the fleet tools, the UI server...) costs
the daemon memory for code it never runs.  :class:`LazyGroup` names those
commands by module instead, and builds each one's click command the first time
click asks for it: to run it, to list it in ``--help``, or to complete it.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any, ClassVar

import typer
from typer.core import TyperGroup
from typer.main import get_command_from_info, get_group_from_info
from typer.models import CommandInfo, TyperInfo

if TYPE_CHECKING:
    from typer._click import Command, Context


class LazyGroup(TyperGroup):
    """A ``TyperGroup`` with commands given by name, imported on first use.

    Subclasses set :attr:`listing`: every command of the group in the order
    ``--help`` lists them, each with ``"module:attribute"`` (a ``typer.Typer``,
    mounted as a group under its own name, or a command function) or None for a
    command the group's own module defines.  Commands defined there but not
    listed come last.  A lazily built command inherits this group's markup mode
    and suggestions, as a sub-app added with ``add_typer`` does (typer passes
    the root's ``rich_markup_mode`` down only at build time).
    """

    listing: ClassVar[dict[str, str | None]] = {}

    def list_commands(self, ctx: Context) -> list[str]:  # noqa: ARG002 - click's signature
        """Every command, in :attr:`listing` order, without importing any."""
        names = [name for name, target in self.listing.items() if target or name in self.commands]
        return names + [name for name in self.commands if name not in self.listing]

    def get_command(self, ctx: Context, cmd_name: str) -> Command | None:  # noqa: ARG002
        """The command ``cmd_name``, imported and built the first time it is asked for."""
        command = self.commands.get(cmd_name)
        target = self.listing.get(cmd_name)
        if command is None and target is not None:
            command = self._build(cmd_name, target)
            self.commands[cmd_name] = command
        return command

    def resolve_command(
        self, ctx: Context, args: list[str]
    ) -> tuple[str | None, Command | None, list[str]]:
        """As typer's, with every lazy command built first when the name is unknown.

        Typer suggests close names (``ledgr``: "Did you mean 'ledger'?") from the
        built commands only.
        """
        if args and args[0] not in self.commands and args[0] not in self.listing:
            for name in self.list_commands(ctx):
                self.get_command(ctx, name)
        return super().resolve_command(ctx, args)

    def _build(self, name: str, target: str) -> Command:
        module, _, attribute = target.partition(":")
        found: Any = getattr(importlib.import_module(module), attribute)
        # The root's pretty exceptions are off: ``pretty_exceptions_short`` only
        # marks tracebacks for them.
        if isinstance(found, typer.Typer):
            return get_group_from_info(
                TyperInfo(found),
                pretty_exceptions_short=True,
                suggest_commands=self.suggest_commands,
                rich_markup_mode=self.rich_markup_mode,
            )
        return get_command_from_info(
            CommandInfo(name=name, callback=found),
            pretty_exceptions_short=True,
            rich_markup_mode=self.rich_markup_mode,
        )
