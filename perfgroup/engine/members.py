"""Group membership for the perf group: list, add, remove (local groups only)."""

from __future__ import annotations

import grp
import pwd

from . import apply
from .desired import state_path
from .errors import RefusedError
from .facts import group_facts, load_state, user_exists
from .plan import Action
from .validate import check_member, check_name


def listing(group: str) -> dict[str, object]:
    facts = group_facts(check_name("group", group))
    if facts.gid is None:
        raise RefusedError(f"group {group} does not exist")
    primary = sorted(entry.pw_name for entry in pwd.getpwall() if entry.pw_gid == facts.gid)
    return {
        "group": group, "gid": facts.gid, "source": "local" if facts.local else "directory",
        "members": sorted(facts.members), "primary_members": primary,
    }


def _local_group(group: str) -> None:
    facts = group_facts(check_name("group", group))
    if facts.gid is None:
        raise RefusedError(f"group {group} does not exist; run `perfgroup setup --group {group}` first")
    if not facts.local:
        raise RefusedError(f"group {group} is managed by the directory (LDAP/SSSD); change its members there")


def check(group: str, users: list[str]) -> None:
    """Refuse a directory or missing group, and bad or unknown user names."""
    _local_group(group)
    for user in users:
        check_member(user)
        if not user_exists(user):
            raise RefusedError(f"no such user {user!r}")


def change(group: str, users: list[str], add: bool) -> list[str]:
    """Add or remove users; returns those actually changed. Validates everything first."""
    check(group, users)
    current = set(grp.getgrnam(group).gr_mem)
    changed: list[str] = []
    for user in dict.fromkeys(users):
        if add and user not in current:
            apply.add_member(Action("add_member", user, "", "", params={"group": group}))
            changed.append(user)
        elif not add and user in current:
            apply.remove_member(user, group)
            changed.append(user)
    if changed:
        record(group, changed, add)
    return changed


def record(group: str, users: list[str], add: bool) -> None:
    """Keep the setup record's members_added in step, so `remove` undoes these additions too."""
    path = state_path(group)
    state, _ = load_state(path)
    if state is None:
        return
    members = set(state.members_added)
    members = members | set(users) if add else members - set(users)
    apply.write_file(path, state._replace(members_added=tuple(sorted(members))).to_json(), step="write_state")
