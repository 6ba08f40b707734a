"""What every command shares: options built from the engine's one table, the command class that
turns engine errors into the documented exit code and one stderr line, and the root check."""

from __future__ import annotations

import os
import sys
from typing import Any, Callable, NoReturn, TypeVar

import click

from .. import output
from ..engine import errors, options
from ..engine.errors import PerfgroupError, RefusedError

F = TypeVar("F", bound=Callable[..., Any])
LOCK_WAIT = options.LOCK_WAIT_SECONDS


class Exit(Exception):
    """A command's outcome that is not an engine error (e.g. a failed verification after a
    successful converge); rendered like one."""

    def __init__(self, outcome: str, message: str = "") -> None:
        super().__init__(message)
        self.outcome = outcome


class PerfgroupCommand(click.Command):
    """Engine errors become one line on stderr and the exit code the command's table documents;
    the --help epilog is generated from the same table."""

    def __init__(self, *args: Any, exit_table: str, **kwargs: Any) -> None:
        kwargs.setdefault("epilog", errors.epilog(exit_table))
        super().__init__(*args, **kwargs)
        self.exit_table = exit_table

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        try:
            return super().parse_args(ctx, args)
        except click.UsageError as error:
            code = errors.exit_code(self.exit_table, errors.REFUSED)
            if code != error.exit_code:  # audit: a bad argument is UNKNOWN (3) for monitoring
                raise _usage_error(error, code) from None
            raise

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except PerfgroupError as error:
            fail(self.exit_table, error.outcome, str(error))
        except Exit as outcome:
            if str(outcome):
                fail(self.exit_table, outcome.outcome, str(outcome))
            sys.exit(errors.exit_code(self.exit_table, outcome.outcome))


def _usage_error(error: click.UsageError, code: int) -> click.UsageError:
    """The same usage error with another exit code (click keeps it as a class attribute)."""
    cls = type(f"UsageError{code}", (click.UsageError,), {"exit_code": code})
    return cls(error.message, error.ctx)  # type: ignore[no-any-return]


def command(exit_table: str, **kwargs: Any) -> Callable[[F], click.Command]:
    return click.command(cls=PerfgroupCommand, exit_table=exit_table, **kwargs)


def fail(exit_table: str, outcome: str, message: str) -> NoReturn:
    output.error(message)
    sys.exit(errors.exit_code(exit_table, outcome))


def engine_options(command_name: str, *, skip: tuple[str, ...] = ()) -> Callable[[F], F]:
    """The click options of a command, from the engine's options table."""

    def decorate(function: F) -> F:
        for option in reversed(options.for_command(command_name)):
            if option.name not in skip:
                function = _click_option(option)(function)
        return function

    return decorate


def _click_option(option: options.Option) -> Callable[[F], F]:
    help_text = option.help
    if option.kind == "bool" and option.default:
        decls = [f"{option.cli_flag}/--no-{option.cli_flag[2:]}", option.name]
        return click.option(*decls, default=True, show_default=True, help=help_text)
    decls = [option.cli_flag, *option.old_flags, option.name]
    if option.kind == "bool":
        return click.option(*decls, is_flag=True, help=help_text)
    kwargs: dict[str, Any] = {"help": help_text, "metavar": option.metavar or None}
    if option.kind == "list":
        kwargs["multiple"] = True
    elif option.kind == "int":
        kwargs["type"] = int
    if option.choices:
        kwargs["type"] = click.Choice(option.choices)
    if option.default not in (None, ()):
        kwargs.update(default=option.default, show_default=True)
    return click.option(*decls, **kwargs)


def dry_run_option(function: F) -> F:
    return click.option("--dry-run", is_flag=True, help="Print the plan and change nothing.")(function)


def json_option(function: F) -> F:
    return click.option("--json", "as_json", is_flag=True, help="Machine-readable result on stdout.")(function)


def verbose_option(help_text: str) -> Callable[[F], F]:
    return click.option("-v", "--verbose", count=True, help=help_text)


def require_root(what: str, because: str = "changes groups and file capabilities") -> None:
    if os.geteuid() != 0:
        raise RefusedError(f"{what} {because}: run it as root")


def on_wait(message: str) -> None:
    click.echo(message, err=True)
