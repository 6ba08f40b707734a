"""perfgroup remove."""

from __future__ import annotations

import click

from .. import output
from ..engine.errors import ConvergeError, LockedError, RefusedError
from ..engine.validate import check_group
from .common import (
    EXIT_BUSY,
    EXIT_FAILED,
    EXIT_REFUSED,
    LOCK_WAIT,
    SETUP_EPILOG,
    fail,
    on_wait,
    require_root,
)


@click.command(epilog=SETUP_EPILOG.replace("converged and verified (a member profiled system-wide, a non-member was refused)", "removed (or nothing left to remove)"))
@click.option("--group", default="perf_users", show_default=True)
@click.option("--dry-run", is_flag=True, help="Print what would be removed.")
@click.option("--json", "as_json", is_flag=True)
def remove(group: str, dry_run: bool, as_json: bool) -> None:
    """Undo what setup recorded: the copy, its drop-ins, members it added, the group if it made it.

    Everything setup did not create is kept (an adopted group, the live perf_event_paranoid).
    Without a usable setup record it refuses rather than guess.
    """
    from ..engine import remove as remove_mod
    from ..engine.apply import node_lock

    try:
        check_group(group, allow_privileged=True)
    except RefusedError as error:
        fail(EXIT_REFUSED, str(error))
    require_root("remove")
    try:
        remove_mod.load(group)  # refuse before taking the lock, so a refusal writes nothing
        if dry_run:
            result = remove_mod.remove(group, dry_run=True)
        else:
            with node_lock(LOCK_WAIT, on_wait):
                result = remove_mod.remove(group, dry_run=False)
    except LockedError as error:
        fail(EXIT_BUSY, str(error))
    except RefusedError as error:
        fail(EXIT_REFUSED, str(error))
    except ConvergeError as error:
        fail(EXIT_FAILED, f"could not finish removing at step {error}")
    if as_json:
        output.emit_json({
            "dry_run": dry_run, "changed": bool(result.done),
            "steps": [s.summary for s in result.steps], "done": [s.summary for s in result.done], "notes": result.notes,
        })
        return
    for step in result.steps:
        mark = "would" if dry_run else ("done" if step in result.done else "skip")
        output.say(f"  {mark:5} {step.summary}")
    for note in result.notes:
        output.say(f"note: {note}")


