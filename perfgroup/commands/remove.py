"""perfgroup remove."""

from __future__ import annotations

from .. import output
from .common import LOCK_WAIT, command, dry_run_option, engine_options, json_option, on_wait, require_root


@command("remove")
@engine_options("remove")
@dry_run_option
@json_option
def remove(group: str, dry_run: bool, as_json: bool) -> None:
    """Undo what setup recorded: the copy, its drop-ins, members it added, the group if it made it.

    Everything setup did not create is kept (an adopted group, the live perf_event_paranoid).
    Without a usable setup record it refuses rather than guess, unless nothing of perfgroup's is
    left (then there is nothing to remove: exit 0).
    """
    from ..engine import remove as remove_mod
    from ..engine.validate import check_group

    check_group(group, allow_privileged=True)
    require_root("remove")
    steps, done, notes = remove_mod.run(group, dry_run, LOCK_WAIT, on_wait)
    if as_json:
        output.emit_json({
            "dry_run": dry_run, "changed": bool(done),
            "steps": [s.summary for s in steps], "done": [s.summary for s in steps if s in done], "notes": notes,
        })
        return
    for step in steps:
        mark = "would" if dry_run else ("done" if step in done else "skip")
        output.say(f"  {mark:5} {output.escape(step.summary)}")
    for note in notes:
        output.say(f"note: {output.escape(note)}")
