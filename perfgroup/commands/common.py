"""Helpers shared by the commands: exit codes, errors, root checks, the node lock message."""

from __future__ import annotations

import os
import sys
from typing import NoReturn

import click

from .. import output

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
