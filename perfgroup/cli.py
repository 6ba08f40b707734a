"""The perfgroup command line. Each command lives in perfgroup/commands/ and is imported only
when it runs (click's lazy-loading pattern), so `perfgroup audit` from monitoring pays for
click and the audit, nothing else. Every rule lives in engine/."""

from __future__ import annotations

import importlib
from typing import Any

import click

from .engine import VERSION

COMMANDS = {
    "setup": "perfgroup.commands.setup:setup",
    "audit": "perfgroup.commands.audit:audit",
    "verify": "perfgroup.commands.verify:verify",
    "remove": "perfgroup.commands.remove:remove",
    "members": "perfgroup.commands.members:members",
    "deploy": "perfgroup.commands.deploy:deploy",
}


class LazyGroup(click.Group):
    """The top-level group: loads each command when it runs, and is the one place click's own
    errors (unknown option or command, bad or missing value, at any level) become perfgroup's one
    stderr line with the same exit code (commands/common.py: one_line_errors)."""

    def make_context(self, info_name: str | None, args: list[str], parent: click.Context | None = None,
                     **extra: Any) -> click.Context:
        from .commands.common import one_line_errors  # with the first command module: no cost of its own

        with one_line_errors():
            return super().make_context(info_name, args, parent, **extra)

    def invoke(self, ctx: click.Context) -> Any:
        from .commands.common import one_line_errors

        with one_line_errors():
            return super().invoke(ctx)

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in COMMANDS:
            return None
        module, name = COMMANDS[cmd_name].split(":")
        command = getattr(importlib.import_module(module), name)
        assert isinstance(command, click.Command)
        return command


@click.group(cls=LazyGroup, invoke_without_command=True,
             context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(VERSION, "-V", "--version", prog_name="perfgroup")
@click.pass_context
def main(ctx: click.Context) -> None:
    """Give a group of users perf (system-wide and kernel profiling) without root.

    perfgroup installs a dedicated copy of perf that only members of one group may run, carrying
    the least file capabilities this kernel needs (cap_perfmon, or cap_sys_admin before Linux
    5.8), keeps perf_event_paranoid >= 2 for everyone else, and proves it by running perf.

    \b
    Typical use, as root:
      perfgroup setup --group perf_users --member alice --member bob
      perfgroup audit                       # read-only, Nagios exit codes, --json
      perfgroup remove --group perf_users   # undo exactly what setup did

    Without a command it prints this help and exits 0. Each command's --help lists its exit codes.
    """
    if ctx.invoked_subcommand is None:
        click.echo(ctx.get_help())


