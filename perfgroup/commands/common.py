"""What every command shares: options built from the engine's one table, the command class that
turns engine errors into the documented exit code and one stderr line, and the root check."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import IO, Any, Callable, NoReturn, TypeVar

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
    """Engine errors and click's usage errors become one line on stderr and the exit code the
    command's table documents; the --help epilog is generated from the same table."""

    def __init__(self, *args: Any, exit_table: str, **kwargs: Any) -> None:
        kwargs.setdefault("epilog", errors.epilog(exit_table))
        super().__init__(*args, **kwargs)
        self.exit_table = exit_table

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        try:
            return super().parse_args(ctx, args)
        except click.UsageError as error:
            # The code the table documents for a refusal (audit: UNKNOWN, 3, for monitoring), and
            # this command's --help in the line even where click gave the error no context.
            raise one_line_error(error, errors.exit_code(self.exit_table, errors.REFUSED), ctx) from None

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except PerfgroupError as error:
            fail(self.exit_table, error.outcome, str(error))
        except Exit as outcome:
            if str(outcome):
                fail(self.exit_table, outcome.outcome, str(outcome))
            sys.exit(errors.exit_code(self.exit_table, outcome.outcome))


class OneLineError(click.UsageError):
    """A click error (unknown option, bad value, missing argument, unknown command) rendered as
    every perfgroup error is: one line on stderr (click's own show() prints the usage, a hint and
    the message on three or four), naming the command's --help."""

    def show(self, file: IO[Any] | None = None) -> None:
        message = self.format_message()
        if self.ctx is not None:
            message = f"{message[:-1] if message.endswith('.') else message} (try '{self.ctx.command_path} --help')"
        output.error(message)


def one_line_error(error: click.ClickException, code: int | None = None,
                   ctx: click.Context | None = None) -> OneLineError:
    """`error` as a OneLineError: click's message (with its option names and suggestions), the
    context it names (else `ctx`) and its exit code or `code` (click keeps it as a class attribute)."""
    code = error.exit_code if code is None else code
    cls = type(f"OneLineError{code}", (OneLineError,), {"exit_code": code})
    return cls(error.format_message(), getattr(error, "ctx", None) or ctx)  # type: ignore[no-any-return]


# Not an error to put on one line: a group given no command prints its help (click >= 8.2: on
# stderr, exit 2), as `perfgroup members` does.
_SHOWN_AS_CLICK_DOES: tuple[type[Exception], ...] = tuple(
    cls for cls in (getattr(click.exceptions, "NoArgsIsHelpError", None),) if cls is not None)


@contextmanager
def one_line_errors() -> Iterator[None]:
    """Every click error raised inside becomes a OneLineError (the top-level group wraps its own
    parsing and everything it invokes in this: every command and subcommand)."""
    try:
        yield
    except click.ClickException as error:
        if isinstance(error, (OneLineError, *_SHOWN_AS_CLICK_DOES)):
            raise
        raise one_line_error(error) from None


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
