"""What a setup run is about to do that no later run could read back from the node.

A run that fails between its first change and the record (a full disk, a read-only state file, a
kill) would otherwise leave things that look like the site's own: the next run finds the group,
the member, the directory already there and records them as adopted, and a lowered
perf_event_paranoid with no memory of its old value. `remove` would then leave them behind. So
before the first change setup writes its intent beside the record; the next record (setup's) or
`remove` folds it in, and it is deleted once a record carries it. Over-claiming is harmless: each
entry is kept only if the node still shows it (facts filter it), and only for what setup plans.
"""

from __future__ import annotations

import os

from .paths import intent_path
from .tuples import NamedTuple

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from .actions import Action
    from .state import State


class Intent(NamedTuple):
    group_created: bool = False
    created_dirs: tuple[str, ...] = ()
    members_added: tuple[str, ...] = ()
    copies: tuple[str, ...] = ()
    paranoid_before: int | None = None
    tracefs_before: tuple[tuple[str, int, int], ...] = ()

    def empty(self) -> bool:
        return self == Intent()


def recorded(state: State | None) -> Intent:
    """The part of a record that an intent adds to (nothing without a record)."""
    if state is None:
        return Intent()
    return Intent(state.group_created, state.created_dirs, state.members_added, state.copies,
                  state.paranoid_before, state.tracefs_before)


def of_plan(actions: tuple[Action, ...], paranoid_now: int | None, state: State | None) -> Intent:
    """What `actions` would make that the record does not already remember. paranoid_now is kept
    only on a node without a record (a record holds the value from before perfgroup's first run)."""
    # Setup's path only: the audit path (findings, facts) must not import the actions' dataclasses.
    from .actions import AddMember, CreateDir, CreateGroup, InstallCopy, RemountTracefs

    known = recorded(state)
    tracefs_known = {point for point, _, _ in known.tracefs_before}
    return Intent(
        group_created=any(isinstance(a, CreateGroup) for a in actions),
        created_dirs=tuple(a.target for a in actions if isinstance(a, CreateDir) and a.target not in known.created_dirs),
        members_added=tuple(a.target for a in actions if isinstance(a, AddMember) and a.target not in known.members_added),
        copies=tuple(a.target for a in actions if isinstance(a, InstallCopy) and a.target not in known.copies),
        paranoid_before=None if state else paranoid_now,
        tracefs_before=tuple((a.target, a.was_mode, a.was_gid) for a in actions
                             if isinstance(a, RemountTracefs) and a.target not in tracefs_known),
    )


def to_json(intent: Intent) -> str:
    import json  # not at import time: the audit path reads no intent on a node that has none

    return json.dumps(intent._asdict(), sort_keys=True) + "\n"


def parse(text: str | None) -> Intent:
    """An unreadable or damaged intent counts as none: it can only add to a record, never take away."""
    if not text:
        return Intent()
    import json

    try:
        data: dict[str, Any] = json.loads(text)
        return Intent(
            group_created=data.get("group_created") is True,
            created_dirs=_strings(data.get("created_dirs")),
            members_added=_strings(data.get("members_added")),
            copies=_strings(data.get("copies")),
            paranoid_before=data["paranoid_before"] if type(data.get("paranoid_before")) is int else None,
            tracefs_before=tuple((str(p), int(m), int(g)) for p, m, g in data.get("tracefs_before") or ()),
        )
    except (ValueError, TypeError, AttributeError):
        return Intent()


def _strings(value: object) -> tuple[str, ...]:
    return tuple(item for item in value if isinstance(item, str)) if isinstance(value, list) else ()


def still_true(intent: Intent, group_exists: bool, members: tuple[str, ...] | frozenset[str]) -> Intent:
    """Only what the node still shows (a group that exists, members still in it, paths that exist)."""
    return Intent(
        group_created=intent.group_created and group_exists,
        created_dirs=tuple(d for d in intent.created_dirs if os.path.isdir(d) and not os.path.islink(d)),
        members_added=tuple(m for m in intent.members_added if m in members),
        copies=tuple(c for c in intent.copies if os.path.lexists(c)),
        paranoid_before=intent.paranoid_before,
        tracefs_before=intent.tracefs_before,
    )


def read(state_path: str, group_exists: bool, members: tuple[str, ...] | frozenset[str]) -> Intent | None:
    """The intent a failed run left (None: there is none). Trusted only if root's alone, as the record."""
    from .host import owner_mode
    from .trust import state_problem

    path = intent_path(state_path)
    entry = owner_mode(path)
    if entry is None:
        return None
    if state_problem(entry, "file") is not None:
        return Intent()
    try:
        with open(path, encoding="utf-8") as handle:
            text = handle.read(1 << 20)
    except OSError:
        return Intent()
    return still_true(parse(text), group_exists, members)


def fold(state: State, intent: Intent | None) -> State:
    """The record as it would be had the failed run finished recording (for remove)."""
    if intent is None:
        return state
    merged = union(recorded(state), intent)
    return state._replace(
        group_created=merged.group_created,
        created_dirs=tuple(sorted(merged.created_dirs)),
        members_added=tuple(sorted(merged.members_added)),
        copies=merged.copies,
        paranoid_before=merged.paranoid_before,
        tracefs_before=merged.tracefs_before,
    )


def union(earlier: Intent | None, later: Intent) -> Intent:
    """The record (or a failed run) before, then a run after it: the earlier values of "before"
    win, the lists add up. The one rule for setup's next record, remove and two failed runs."""
    if earlier is None:
        return later
    tracefs = {point: (mode, gid) for point, mode, gid in later.tracefs_before}
    tracefs.update({point: (mode, gid) for point, mode, gid in earlier.tracefs_before})
    return Intent(
        group_created=earlier.group_created or later.group_created,
        created_dirs=tuple(dict.fromkeys((*earlier.created_dirs, *later.created_dirs))),
        members_added=tuple(dict.fromkeys((*earlier.members_added, *later.members_added))),
        copies=tuple(dict.fromkeys((*earlier.copies, *later.copies))),
        paranoid_before=later.paranoid_before if earlier.paranoid_before is None else earlier.paranoid_before,
        tracefs_before=tuple((p, m, g) for p, (m, g) in sorted(tracefs.items())),
    )
