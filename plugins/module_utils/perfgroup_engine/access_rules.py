"""Judging access the mode bits do not show: who holds the group and how, ACLs above and on the
copy, processes that kept the capabilities or the group's gid, copies left behind, the record's own safety. Pure
functions of NodeFacts (rules layer); access_facts.py reads, access_plan.py repairs.
"""

from __future__ import annotations

from .access_facts import Holder, Holding, Lingering, ProcessScan, password_set
from .acl import R, W, X
from .desired import Desired
from .facts import NodeFacts
from .finding import CRITICAL, WARNING, Finding
from .job_rules import granted_users, unbacked
from .paths import GSHADOW, STATE_DIR
from .policy import managed_dir
from .trust import state_problem

TYPE_CHECKING = False  # as typing.TYPE_CHECKING (mypy knows the name), without importing typing at run time
if TYPE_CHECKING:
    from typing import Iterator


def holders(facts: NodeFacts) -> list[dict[str, str]]:
    """Everyone who holds the group, and how (the audit JSON's `holders`)."""
    group, access = facts.group, facts.access
    found: list[Holder] = [Holder(u, "member") for u in group.members]
    if access.gshadow is not None:
        _, admins, members = access.gshadow
        found += [Holder(u, "gshadow_member") for u in members if u not in group.members]
        found += [Holder(u, "gshadow_admin") for u in admins]
    found += [Holder(u, "primary_gid") for u in access.primary_members]
    found += [Holder(u, "same_gid_group") for u in access.same_gid_members]
    return [h._asdict() for h in dict.fromkeys(found)]


def member_names(facts: NodeFacts) -> set[str]:
    names = set(facts.group.members) | set(facts.access.primary_members)
    if facts.access.gshadow is not None:
        names |= set(facts.access.gshadow[2])
    return names


def rule_access(facts: NodeFacts, desired: Desired) -> Iterator[Finding]:

    access = facts.access
    setup = f"perfgroup setup --group {desired.group}"
    acl = unbacked(access.copy_acl, facts.jobs)  # a live job's grant is job.grant_active
    if acl is not None and facts.copy.node.kind == "file":
        open_to = acl.grants(R | X, skip_root=False)
        yield Finding(
            "copy.acl", CRITICAL if open_to else WARNING,
            f"{desired.dest} has an ACL beyond its mode bits ({acl.text() or 'extended entries'})"
            + (": named users/groups can run it with its capabilities" if open_to else ""),
            f"setfacl -b {desired.dest}  # or: {setup}",
        )
    for dir_acl in access.dir_acls:
        writers = dir_acl.grants(W)
        if dir_acl.kind == "access" and writers:
            yield Finding(
                "path.acl", CRITICAL,
                f"{dir_acl.path} (above {desired.dest}) has an ACL letting {dir_acl.text()} write: "
                "they can swap the privileged perf",
                f"setfacl -b {dir_acl.path}",
            )
        elif dir_acl.kind == "default" and _managed(dir_acl.path, facts):
            yield Finding(
                "path.acl_default", WARNING,
                f"{dir_acl.path} has a default ACL ({dir_acl.text()}): files created there inherit it", setup,
            )
        else:
            # Not (yet) a way in, but access the mode bits do not show: one write bit added to an
            # entry, or a copy made there by other means, and it is. Setup strips what it creates.
            yield Finding(
                "path.acl_other", WARNING,
                f"{dir_acl.path} (above {desired.dest}) has {'a default' if dir_acl.kind == 'default' else 'an'} "
                f"ACL with entries beyond owner/group/other: {dir_acl.text() or 'a mask'}",
                f"setfacl -{'k' if dir_acl.kind == 'default' else 'b'} {dir_acl.path}  # once nothing there needs it",
            )
    if access.gshadow is not None:
        password, admins, members = access.gshadow
        if password_set(password):
            yield Finding(
                "group.password", CRITICAL,
                f"group {desired.group} has a password in {access.password_file}: anyone who knows it can "
                f"`sg {desired.group}`",
                f"gpasswd -R {desired.group}  # or: {setup}",
            )
        hidden = [u for u in members if u not in facts.group.members]
        if hidden:
            # newgrp replaces the group's member list with gshadow's and asks its members no password.
            yield Finding(
                "group.gshadow_members", CRITICAL,
                f"{', '.join(hidden)} are members of {desired.group} through {GSHADOW} only: `newgrp "
                f"{desired.group}` asks them no password, yet /etc/group and `perfgroup members list` do not show them",
                f"gpasswd -d USER {desired.group}",
            )
        if admins:
            yield Finding(
                "group.gshadow_admins", CRITICAL,
                f"{', '.join(admins)} administer {desired.group} ({GSHADOW}): they can add themselves",
                f"gpasswd -A '' {desired.group}",
            )
    if access.primary_members:
        yield Finding(
            "group.primary_members", WARNING,
            f"{', '.join(access.primary_members)} have {desired.group} as primary group: always members",
            "usermod -g OTHERGROUP USER",
        )
    if access.same_gid_names:
        yield Finding(
            "group.duplicate_gid", CRITICAL,
            f"gid {facts.group.gid} also has the name(s) {', '.join(access.same_gid_names)}: their members run "
            "the privileged perf too",
            f"groupmod -g NEWGID {access.same_gid_names[0]}",
        )
    holding = member_names(facts) | granted_users(facts.jobs)  # a running job's granted user: job.grant_active
    stray = [p for p in access.lingering if p.user not in holding]
    if stray:
        yield Finding(
            "process.lingering", WARNING,
            "processes of non-members still hold capabilities: " + lingering_text(stray),
            "kill PID  # after checking what it is",
        )
    held = strays(facts)
    if held:
        yield Finding(
            "process.holds_group", CRITICAL,
            f"processes of non-members still hold group {desired.group} (gid {facts.group.gid}) and can run "
            f"{desired.dest}: " + holding_text(held),
            f"kill {' '.join(str(p.pid) for p in held)}  # or end the user's session",
        )
    for path in access.orphans:
        yield Finding(
            "copy.orphan", CRITICAL,
            f"{path} is a privileged copy left behind (not the current copy): whoever holds its group can run it",
            setup,
        )
    for what, entry, kind in (("state directory " + STATE_DIR, access.state_dir, "dir"),
                              ("setup record " + desired.state_path, access.state_file, "file")):
        problem = state_problem(entry, kind)
        if problem:
            yield Finding(
                "state.unsafe", CRITICAL,
                f"the {what} {problem}: whoever can change it decides what remove deletes", setup,
            )


def acl_holes(facts: NodeFacts) -> list[str]:
    """After setup applied: paths an ACL still opens (someone added one while it ran)."""
    holes = [a.path for a in facts.access.dir_acls if a.kind == "access" and a.grants(W)]
    acl = unbacked(facts.access.copy_acl, facts.jobs)
    return holes + ([acl.path] if acl is not None and acl.grants(R | X, skip_root=False) else [])


def strays(facts: NodeFacts) -> list[Holding]:
    """Processes holding the group's gid whose user is no member (what `members list` shows, plus
    gshadow's members). A process whose uids are all root's is left out: root runs the copy (and
    anything else) without the group; once it switches to a user, that uid is the one judged."""
    if facts.group.gid is None:
        return []
    members = member_names(facts)
    return [p for p in facts.access.holding if p.uid != 0 and p.user not in members]


def holding_text(found: tuple[Holding, ...] | list[Holding]) -> str:
    return "; ".join(f"pid {p.pid} ({p.user})" for p in found)


def lingering_text(found: tuple[Lingering, ...] | list[Lingering]) -> str:
    return "; ".join(f"pid {p.pid} ({p.user}: {','.join(p.caps)})" for p in found)


def _managed(path: str, facts: NodeFacts) -> bool:

    return managed_dir(path, facts)


def remaining_notes(scan: ProcessScan, users: set[str] | None, gid: int | None,
                    gid_users: set[str] | None) -> list[str]:
    """Lines for `members remove` and `remove`: processes of `users` that still hold the
    capabilities, and of `gid_users` that still hold `gid` (None: any user but root)."""
    notes = []
    found = [p for p in scan.lingering if users is None or p.user in users]
    if found:
        notes.append("still holding capabilities (end them to take the access away): " + lingering_text(found))
    held = [p for p in scan.holding if p.uid != 0 and (gid_users is None or p.user in gid_users)]
    if gid is not None and held:
        notes.append(f"still holding gid {gid} (end them or the user's session to take the access away): "
                     + holding_text(held))
    return notes
