"""Refusals and repairs for access the mode bits do not show (plan layer): facts in
access_facts.py, findings in access_rules.py.
"""

from __future__ import annotations

from .access_facts import AccessFacts, password_set
from .access_rules import holding_text
from .acl import W
from .actions import Action, DeleteCopy, DeleteDir, LockGroupPassword, RepairDir, SecurePath
from .desired import Desired
from .errors import RefusedError
from .facts import NodeFacts
from .job_rules import lost_grants, unbacked
from .paths import LIBEXEC_ROOT, STATE_DIR
from .policy import managed_dir
from .trust import state_problem


def copy_problems(facts: NodeFacts, dest: str) -> list[str]:
    """For plan_copy: an ACL on the copy is repaired like a wrong mode, both ways: an entry no
    live grant record backs goes, a live grant's missing entry comes back (job_rules.grant_acl)."""
    acl = unbacked(facts.access.copy_acl, facts.jobs)  # heal keeps a running job's grant
    lost = lost_grants(facts.access.copy_acl, facts.jobs, dest)
    return ([f"ACL {acl.text() or 'extended'}"] if acl is not None else []) + (
        [f"no ACL entry for the live grant of {', '.join(f'{g.user} (job {g.job})' for g in lost)}"] if lost else [])


def new_gid(access: AccessFacts, asked: int | None) -> int:
    """The gid of a group setup creates: --gid unless running processes still hold it (they would
    join the new group), else as `groupadd --system` would pick, the highest free system gid, but
    skipping every gid a process still holds (an old group's, kept by a session that outlived it)
    and users' primary gids."""
    if asked is not None:
        if asked in access.held_gids:
            raise RefusedError(
                f"--gid {asked} is still held by running processes: "
                f"{holding_text(access.holding) or 'unknown processes'}; they would hold the new group: "
                "end them or choose another gid"
            )
        return asked
    low, high = access.sys_gids
    taken = set(access.used_gids) | set(access.held_gids)
    for gid in range(high, low - 1, -1):
        if gid not in taken:
            return gid
    raise RefusedError(
        f"no free system gid between {low} and {high} (SYS_GID_MIN/SYS_GID_MAX of /etc/login.defs) that no "
        "group, user or running process uses; give one with --gid"
    )


def plan(facts: NodeFacts, desired: Desired) -> tuple[list[Action], list[Action]]:
    """Refusals and repairs for what the mode bits do not show (raises RefusedError): the repairs
    that go before the copy is installed, and the deletions of copies left behind (after it)."""

    access = facts.access
    actions: list[Action] = []
    if facts.group.gid is not None and access.same_gid_names:
        raise RefusedError(
            f"group {desired.group} shares gid {facts.group.gid} with {', '.join(access.same_gid_names)}: their "
            "members would run the privileged perf; give the group its own gid first"
        )
    for kind, entry in (("dir", access.state_dir), ("file", access.state_file)):
        problem = state_problem(entry, kind)
        if problem is None or entry is None:
            continue
        path = STATE_DIR if kind == "dir" else desired.state_path
        if entry[0] != 0 or entry[2] != kind:
            raise RefusedError(f"{path} {problem}: the setup record cannot be trusted; inspect it and fix by hand")
        actions.append(SecurePath(path, "others could rewrite what remove deletes", mode=entry[1] & ~0o022))
    if access.gshadow is not None and password_set(access.gshadow[0]):
        actions.append(LockGroupPassword(desired.group, "a group password lets anyone who knows it in"))
    for acl in access.dir_acls:
        writers = acl.grants(W)
        if managed_dir(acl.path, facts):
            node = next(n for n in facts.dirs if n.path == acl.path)
            actions.append(RepairDir(acl.path, "an ACL on a directory above the copy", mode=node.mode & ~0o022,
                                     was=f"ACL {acl.text()}"))
        elif acl.kind == "access" and writers:
            raise RefusedError(
                f"--dest {desired.dest} is inside {acl.path}, whose ACL lets {acl.text()} write: "
                "they could swap the privileged perf"
            )
    before = list({a.target: a for a in actions}.values())  # a directory with both ACLs: one repair
    left = [DeleteCopy(path, "a privileged copy left behind") for path in access.orphans]
    return before, left + emptied_dirs(facts, desired)


def emptied_dirs(facts: NodeFacts, desired: Desired) -> list[Action]:
    """Directories setup created outside its own tree for a copy that is now left behind (the
    destination moved): deleted with it, if empty, deepest first. Kept, a created directory that
    no longer holds a copy would look like any of the site's (trust.created_dir_trusted)."""
    if facts.state is None or not facts.access.orphans:
        return []
    keep = {desired.dest, *(p for p in facts.state.copies if p not in facts.access.orphans)}
    dirs = [d for d in facts.state.created_dirs
            if d != LIBEXEC_ROOT and not d.startswith(LIBEXEC_ROOT + "/")
            and any(o.startswith(d + "/") for o in facts.access.orphans)
            and not any(k.startswith(d + "/") for k in keep)]
    return [DeleteDir(d, "held only a copy left behind") for d in sorted(dirs, key=len, reverse=True)]
