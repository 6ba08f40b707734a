"""Helpers shared by the commands: exit codes, errors, root checks, the node lock message."""

from __future__ import annotations

import os
import sys
from typing import Any, NoReturn

import click

from .. import output
from ..engine.desired import Desired, default_dest, state_path
from ..engine.validate import check_abs_path, check_group

EXIT_OK, EXIT_FAILED, EXIT_REFUSED, EXIT_BUSY = 0, 1, 2, 3
LOCK_WAIT = 120.0

SETUP_EPILOG = """\b
Exit codes:
  0  converged and verified (a member profiled system-wide, a non-member was refused)
  1  could not converge or verify (the failed step is named)
  2  refused bad input or an unsafe situation; nothing was changed
  3  another perfgroup run holds the node lock (waited 120 s)
"""

AUDIT_EPILOG = """\b
Exit codes (Nagios plugin convention, worst finding wins):
  0  OK        1  WARNING        2  CRITICAL        3  UNKNOWN (incl. bad arguments)
"""


def fail(code: int, message: str) -> NoReturn:
    output.error(message)
    sys.exit(code)


def require_root(what: str) -> None:
    if os.geteuid() != 0:
        fail(EXIT_REFUSED, f"{what} changes groups and file capabilities: run it as root")


def on_wait(message: str) -> None:
    click.echo(message, err=True)


class NagiosUsageError(click.UsageError):
    exit_code = 3


class NagiosCommand(click.Command):
    """Usage errors exit 3 (UNKNOWN) instead of click's 2, which Nagios would read as CRITICAL."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        try:
            return super().parse_args(ctx, args)
        except click.UsageError as error:
            raise NagiosUsageError(error.message, error.ctx) from None


def desired_from(group: str, dest: str | None, **kwargs: Any) -> Desired:
    check_group(group, kwargs.get("allow_privileged_group", False))
    if dest is not None:
        check_abs_path("--dest", dest)
    return Desired(group=group, dest=dest or default_dest(group), **kwargs)


def desired_to_read(group: str, dest: str | None) -> Desired:
    """For read commands: an existing (even privileged) group; dest from the setup record."""
    from ..engine.facts import load_state

    check_group(group, allow_privileged=True)
    if dest is None:
        state, _ = load_state(state_path(group))
        dest = state.dest if state is not None else default_dest(group)
    return desired_from(group, dest, allow_privileged_group=True)


