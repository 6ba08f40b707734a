"""A setup run's intent from its plan, and how an intent joins a record (plan layer: record
building). What an intent is and how it is read: intent_facts.py.
"""

from __future__ import annotations

import json

from .actions import Action, AddMember, CreateDir, CreateGroup, InstallCopy, RemountTracefs
from .intent_facts import Intent
from .state import State


def recorded(state: State | None) -> Intent:
    """The part of a record that an intent adds to (nothing without a record)."""
    if state is None:
        return Intent()
    return Intent(state.group_created, state.created_dirs, state.members_added, state.copies,
                  state.paranoid_before, state.tracefs_before, state.gid if state.group_created else None)


def of_plan(actions: tuple[Action, ...], paranoid_now: int | None, state: State | None) -> Intent:
    """What `actions` would make that the record does not already remember. paranoid_now is kept
    only on a node without a record (a record holds the value from before perfgroup's first run)."""
    # Setup's path only: the audit path (findings, facts) must not import the actions' dataclasses.

    known = recorded(state)
    tracefs_known = {point for point, _, _ in known.tracefs_before}
    group = next((a for a in actions if isinstance(a, CreateGroup)), None)
    return Intent(
        group_created=group is not None,
        group_gid=group.gid if group is not None else None,
        created_dirs=tuple(a.target for a in actions if isinstance(a, CreateDir) and a.target not in known.created_dirs),
        members_added=tuple(a.target for a in actions if isinstance(a, AddMember) and a.target not in known.members_added),
        copies=tuple(a.target for a in actions if isinstance(a, InstallCopy) and a.target not in known.copies),
        paranoid_before=None if state else paranoid_now,
        tracefs_before=tuple((a.target, a.was_mode, a.was_gid) for a in actions
                             if isinstance(a, RemountTracefs) and a.target not in tracefs_known),
    )


def to_json(intent: Intent) -> str:
    return json.dumps(intent._asdict(), sort_keys=True) + "\n"


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
        group_gid=earlier.group_gid if earlier.group_created else later.group_gid,
    )
