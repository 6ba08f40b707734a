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

from . import host
from .host import owner_mode
from .paths import intent_path
from .trust import state_problem
from .tuples import NamedTuple

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


class Intent(NamedTuple):
    group_created: bool = False
    created_dirs: tuple[str, ...] = ()
    members_added: tuple[str, ...] = ()
    copies: tuple[str, ...] = ()
    paranoid_before: int | None = None
    tracefs_before: tuple[tuple[str, int, int], ...] = ()
    group_gid: int | None = None  # the gid the created group got (a group with another gid is not ours)

    def empty(self) -> bool:
        return self == Intent()


def parse(text: str | None) -> Intent:
    """An unreadable or damaged intent counts as none: it can only add to a record, never take away."""
    if not text:
        return Intent()
    import json  # only a node with a failed run's intent has one to parse

    try:
        data: dict[str, Any] = json.loads(text)
        return Intent(
            group_created=data.get("group_created") is True,
            created_dirs=_strings(data.get("created_dirs")),
            members_added=_strings(data.get("members_added")),
            copies=_strings(data.get("copies")),
            paranoid_before=data["paranoid_before"] if type(data.get("paranoid_before")) is int else None,
            tracefs_before=tuple((str(p), int(m), int(g)) for p, m, g in data.get("tracefs_before") or ()),
            group_gid=data["group_gid"] if type(data.get("group_gid")) is int else None,  # older intents: none
        )
    except (ValueError, TypeError, AttributeError):
        return Intent()


def _strings(value: object) -> tuple[str, ...]:
    return tuple(item for item in value if isinstance(item, str)) if isinstance(value, list) else ()


def still_true(intent: Intent, gid: int | None, members: tuple[str, ...] | frozenset[str]) -> Intent:
    """Only what the node still shows (the group with the gid the run gave it, members still in
    it, paths that exist). A group of that name with another gid, or an intent that names no gid
    (written before gids were), was created by someone else: not claimed."""
    created = intent.group_created and intent.group_gid is not None and intent.group_gid == gid
    return Intent(
        group_created=created,
        created_dirs=tuple(d for d in intent.created_dirs if os.path.isdir(d) and not os.path.islink(d)),
        members_added=tuple(m for m in intent.members_added if m in members),
        copies=tuple(c for c in intent.copies if os.path.lexists(c)),
        paranoid_before=intent.paranoid_before,
        tracefs_before=intent.tracefs_before,
        group_gid=intent.group_gid if created else None,
    )


def read(state_path: str, gid: int | None, members: tuple[str, ...] | frozenset[str]) -> Intent | None:
    """The intent a failed run left (None: there is none). Trusted only if root's alone, as the record."""

    path = intent_path(state_path)
    entry = owner_mode(path)
    if entry is None:
        return None
    if state_problem(entry, "file") is not None:
        return Intent()
    return still_true(parse(host.read_text(path)), gid, members)
