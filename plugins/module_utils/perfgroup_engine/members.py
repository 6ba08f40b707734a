"""Group membership for the perf group: list, add, remove, sync (local groups only).

Planned like setup: facts (the group, the users) -> actions with something to do -> apply, then
the setup record's `members_added` is kept in step so `remove` undoes these additions too.
"""

from __future__ import annotations

import pwd

from . import access_facts, access_rules, apply, reach_facts
from .actions import Action, AddMember, RemoveMember
from .errors import RefusedError
from .facts import GroupFacts, group_facts, other_groups, user_exists
from .host import load_state
from .paths import state_path
from .policy import did_you_mean
from .validate import check_member, check_name


def listing(group: str) -> dict[str, object]:
    facts = group_facts(check_name("group", group))
    if facts.gid is None:
        raise missing_group(group, other_groups(group))
    primary = sorted(entry.pw_name for entry in pwd.getpwall() if entry.pw_gid == facts.gid)
    return {
        "group": group, "gid": facts.gid, "source": "local" if facts.local else "directory",
        "members": sorted(facts.members), "primary_members": primary,
    }


def missing_group(group: str, others: tuple[str, ...]) -> RefusedError:
    """A group that does not exist: a typo of the group perfgroup is set up for, or not set up yet."""
    if others:
        return RefusedError(f"group {group} does not exist; {did_you_mean(group, others)}")
    return RefusedError(f"group {group} does not exist; run `perfgroup setup --group {group}` first")


# add: only add; remove: only remove; sync: the users are the whole list (add them, remove anyone else).
MODES = ("add", "remove", "sync")


def plan(facts: GroupFacts, users: list[str], known: dict[str, bool], mode: str,
         others: tuple[str, ...] = ()) -> tuple[Action, ...]:
    """Pure: refuse a directory or missing group and unknown users; else the changes needed."""
    if facts.gid is None:
        raise missing_group(facts.name, others)
    if not facts.local:
        raise RefusedError(f"group {facts.name} is managed by the directory (LDAP/SSSD); change its members there")
    for user in users:
        check_member(user)
        if not known.get(user, False):
            raise RefusedError(f"no such user {user!r}")
    if mode == "sync" and not users:
        raise RefusedError("members sync with no user would empty the group; name the members "
                           "(to take people out: perfgroup members remove USER...)")
    actions: list[Action] = []
    for user in dict.fromkeys(users):
        if mode != "remove" and user not in facts.members:
            actions.append(AddMember(user, f"asked with `members {mode}`", group=facts.name))
        elif mode == "remove" and user in facts.members:
            actions.append(RemoveMember(user, "asked with `members remove`", group=facts.name))
    if mode == "sync":
        actions += [RemoveMember(user, "not listed (`members sync`)", group=facts.name)
                    for user in facts.members if user not in users]
    return tuple(actions)


def read_and_plan(group: str, users: list[str], mode: str) -> tuple[Action, ...]:
    facts = group_facts(check_name("group", group))
    others = other_groups(group) if facts.gid is None else ()
    return plan(facts, users, {user: user_exists(user) for user in users}, mode, others)


def change(group: str, users: list[str], mode: str) -> tuple[list[str], list[str]]:
    """Add and/or remove users (validated first); returns those actually added and removed."""
    done: list[Action] = []
    apply.perform(read_and_plan(group, users, mode), on_done=done.append)
    added = [action.target for action in done if isinstance(action, AddMember)]
    removed = [action.target for action in done if isinstance(action, RemoveMember)]
    if done:
        record(group, added, removed)
    return added, removed


def record(group: str, added: list[str], removed: list[str]) -> None:
    """Keep the setup record's members_added in step, so `remove` undoes these additions too."""
    path = state_path(group)
    state, _ = load_state(path)
    if state is None:
        return
    members = (set(state.members_added) | set(added)) - set(removed)
    apply.write_file(path, state._replace(members_added=tuple(sorted(members))).to_json(), step="write_state")


def image_note(changed: bool) -> list[str]:
    """On a node booted from an image, /etc/group comes from the image at every boot."""
    if not changed or not reach_facts.stateless_root():
        return []
    return ["this node booted from an image (/ is in memory): the change is gone at the next boot; make it in the "
            "image (perfgroup setup --root DIR --member USER) or with the role (perf_users_members)"]


def remaining(group: str, users: list[str]) -> list[str]:
    """After `members remove`: the removed users' processes that still hold the capabilities or
    the group's gid (a running session keeps its groups until it ends)."""
    gid = group_facts(group).gid  # the scan reads /proc here, in the flow; the rule only words it
    return access_rules.remaining_notes(access_facts.scan_processes(gid=gid), set(users), gid, set(users))
