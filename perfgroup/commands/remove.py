"""perfgroup remove."""

from __future__ import annotations

from typing import Any

from .. import output
from .common import LOCK_WAIT, command, dry_run_option, engine_options, json_option, on_wait, require_root


@command("remove")
@engine_options("remove")
@dry_run_option
@json_option
def remove(group: str, root: str | None, dry_run: bool, as_json: bool) -> None:
    """Undo what setup recorded: the copy, its drop-ins, the units (stopped first), members it added,
    the group if it made it, tracefs's mode and the live perf_event_paranoid as setup found them.

    Everything setup did not create is kept (an adopted group). perf_event_paranoid goes back to
    the recorded value only from the 2 setup set, and never below 2 (that would open profiling to
    every user: remove says so instead). Without a usable setup record it refuses rather than
    guess, unless nothing of perfgroup's is left (then there is nothing to remove: exit 0).

    --root DIR takes perfgroup out of a node image the same way, from the image's own record.
    """
    from ..engine.validate import check_group

    check_group(group, allow_privileged=True)
    require_root("remove")
    document = _remove_image(root, group, dry_run) if root is not None else _remove_here(group, dry_run)
    if as_json:
        output.emit_json(document if root is None else {**document, "image": root})
        return
    done = set(document["done"])
    for step in document["steps"]:
        mark = "would" if dry_run else ("done" if step in done else "skip")
        output.say(f"  {mark:5} {output.escape(step)}")
    for note in document["notes"]:
        output.say(f"note: {output.escape(note)}")


def _remove_here(group: str, dry_run: bool) -> dict[str, Any]:
    from ..engine import remove as remove_mod

    steps, done, notes = remove_mod.run(group, dry_run, LOCK_WAIT, on_wait)
    return remove_mod.document(steps, done, notes, dry_run)


def _remove_image(root: str, group: str, dry_run: bool) -> dict[str, Any]:
    """Remove inside a node image: the engine runs chrooted there, from the image's record."""
    from .. import image_root

    answer = image_root.run(image_root.check_root(root), {"command": "remove", "group": group, "dry_run": dry_run,
                                                         "lock_wait": LOCK_WAIT})
    image_root.raise_for(answer, str(answer.get("error") or "failed"))
    return {key: value for key, value in answer.items() if key != "outcome"}
