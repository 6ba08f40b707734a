"""perfgroup verify."""

from __future__ import annotations

import click

from .. import output
from ..engine.errors import PerfgroupError, RefusedError
from .common import (
    EXIT_FAILED,
    EXIT_REFUSED,
    fail,
    require_root,
)


@click.command(epilog="\b\nExit codes:\n  0  verified   1  verification failed   2  refused (bad input, not root)")
@click.option("--group", default="perf_users", show_default=True)
@click.option("--dest", metavar="PATH", help="Privileged perf path [default: from the setup record].")
@click.option("--json", "as_json", is_flag=True)
def verify(group: str, dest: str | None, as_json: bool) -> None:
    """Prove it works: run `perf stat -a` through the copy as uid nobody with and without the group."""
    from ..engine import converge
    from ..engine import facts as facts_mod

    try:
        desired = facts_mod.audit_target(group, dest)
    except RefusedError as error:
        fail(EXIT_REFUSED, str(error))
    require_root("verify")
    try:
        result = converge.run_verify(desired)
    except PerfgroupError as error:
        fail(EXIT_FAILED, str(error))
    if as_json:
        output.emit_json(result.as_dict())
    else:
        for line in result.lines():
            output.say(line)
    if not result.ok:
        fail(EXIT_FAILED, "verification failed")


