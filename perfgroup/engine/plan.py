"""Deciding what setup must change: from NodeFacts and Desired to an ordered list of actions.

Pure. Everything that makes setup refuse (exit 2) is decided here, before anything is touched.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from . import profile, sysctl
from .capabilities import CapChoice, FileCaps
from .desired import COPY_MODE, LIBEXEC_ROOT, MIN_PARANOID, Desired
from .errors import RefusedError
from .facts import NodeFacts
from .findings import dir_is_safe, expected_caps
from .perfsource import SYSTEM_DIRS
from .validate import check_abs_path, check_gid, check_group, check_member

DIR_MODE = 0o755
FILE_MODE = 0o644


@dataclass(frozen=True)
class Action:
    """One change to the host. `kind` selects the code in apply.py that performs it."""

    kind: str
    target: str
    summary: str
    why: str
    before: str = ""
    after: str = ""
    params: dict[str, object] = field(default_factory=dict)

    def as_dict(self) -> dict[str, object]:
        return {"kind": self.kind, "target": self.target, "summary": self.summary, "why": self.why}


@dataclass(frozen=True)
class Plan:
    actions: tuple[Action, ...]
    caps: CapChoice
    group_origin: str  # "created", "local" or "directory"
    source_path: str
    source_sha256: str
    notes: tuple[str, ...] = ()

    @property
    def changes(self) -> bool:
        return bool(self.actions)


def managed_dir(path: str, facts: NodeFacts) -> bool:
    """Directories perfgroup owns and may repair: its own tree, or ones setup recorded creating."""
    if path == LIBEXEC_ROOT or path.startswith(LIBEXEC_ROOT + "/"):
        return True
    return facts.state is not None and path in facts.state.created_dirs


def plan_dirs(facts: NodeFacts, desired: Desired) -> list[Action]:
    actions: list[Action] = []
    missing: list[str] = []
    for node in facts.dirs:  # nearest first
        if not node.exists:
            missing.append(node.path)
            continue
        if node.kind == "symlink":
            raise RefusedError(f"--dest {desired.dest} goes through the symlink {node.path}; give the real path")
        if node.kind != "dir":
            raise RefusedError(f"--dest {desired.dest}: {node.path} is not a directory")
        if dir_is_safe(node):
            continue
        if not managed_dir(node.path, facts):
            raise RefusedError(
                f"--dest {desired.dest} is inside {node.path} (owner uid {node.uid}, mode {node.mode:04o}), "
                "which a non-root user can write: they could swap the privileged perf"
            )
        actions.append(Action(
            "repair_dir", node.path, f"make {node.path} root-owned and not group/other-writable",
            "a writable directory above the copy lets others replace it",
            before=f"uid {node.uid} mode {node.mode:04o}", after=f"uid 0 mode {node.mode & ~0o022:04o}",
            params={"mode": node.mode & ~0o022 & 0o7777},
        ))
    for path in reversed(missing):
        actions.append(Action(
            "create_dir", path, f"create directory {path} (root:root 0755)", "holds the privileged perf",
            after="directory root:root 0755",
        ))
    return actions


def check_dest(facts: NodeFacts, desired: Desired) -> None:
    check_abs_path("--dest", desired.dest)
    if desired.dest.endswith("/"):
        raise RefusedError(f"--dest {desired.dest} names a directory; give the file path")
    packaged = {f"{d}/perf" for d in SYSTEM_DIRS}
    for path in (facts.source.path, facts.source.requested):
        if path:
            packaged.add(path)
    if desired.dest in packaged or facts.dest_realpath in facts.packaged_realpaths:
        raise RefusedError(f"--dest {desired.dest} is the packaged perf; perfgroup never modifies it in place")
    if facts.nosuid:
        raise RefusedError(
            f"--dest {desired.dest} is on a nosuid mount: the kernel would ignore its file capabilities"
        )
    node = facts.copy.node
    if node.exists and node.kind not in ("file", "symlink"):
        raise RefusedError(f"--dest {desired.dest} exists and is a {node.kind}")
    recorded = facts.state is not None and facts.state.dest == desired.dest
    if node.exists and not recorded and not managed_dir(desired.dest_dir, facts):
        raise RefusedError(
            f"--dest {desired.dest} already exists and perfgroup did not create it; move it away or choose another path"
        )


def plan_group(facts: NodeFacts, desired: Desired) -> tuple[list[Action], str, list[str]]:
    group = facts.group
    notes: list[str] = []
    if group.gid is None:
        if desired.gid is not None and facts.gid_owner is not None:
            raise RefusedError(f"--gid {desired.gid} already belongs to group {facts.gid_owner}")
        gid_text = f"gid {desired.gid}" if desired.gid is not None else "a system gid"
        return [Action(
            "create_group", desired.group, f"create group {desired.group} ({gid_text})",
            "only its members may run the privileged perf", after=f"group {desired.group}",
            params={"gid": desired.gid},
        )], "created", notes
    if desired.gid is not None and desired.gid != group.gid:
        raise RefusedError(
            f"group {desired.group} exists with gid {group.gid}, not --gid {desired.gid}; perfgroup will not renumber it"
        )
    created_before = facts.state is not None and facts.state.group_created and facts.state.group == desired.group
    if created_before:
        return [], "created", notes
    if group.local:
        notes.append(f"group {desired.group} already exists in /etc/group (gid {group.gid}): adopted, not created")
        return [], "local", notes
    notes.append(
        f"group {desired.group} comes from the directory (LDAP/SSSD, gid {group.gid}): adopted; "
        "its members are managed in the directory, not by perfgroup"
    )
    return [], "directory", notes


def plan_members(facts: NodeFacts, desired: Desired, origin: str) -> list[Action]:
    actions = []
    for name in desired.members:
        if not facts.users.get(name, False):
            raise RefusedError(f"--member {name}: no such user")
        if name in facts.group.members:
            continue
        if origin == "directory":
            raise RefusedError(
                f"--member {name}: group {desired.group} is managed by the directory (LDAP/SSSD); add the member there"
            )
        actions.append(Action(
            "add_member", name, f"add {name} to {desired.group}", "asked with --member",
            after=f"{name} in {desired.group} (effective at their next login)", params={"group": desired.group},
        ))
    return actions


def caps_match(caps: FileCaps | None, choice: CapChoice) -> bool:
    return (
        caps is not None and caps.permitted == choice.caps and caps.effective
        and not caps.inheritable and not caps.namespaced and caps.revision == 2
    )


def copy_needs_reinstall(facts: NodeFacts) -> str | None:
    copy = facts.copy
    node = copy.node
    if not node.exists:
        return "missing"
    if node.kind != "file":
        return f"is a {node.kind}"
    if not copy.is_elf:
        return "not an ELF"
    if node.uid != 0:
        return f"owned by uid {node.uid}"
    if node.nlink != 1:
        return f"has {node.nlink} hard links"
    if copy.sha256 != facts.source.sha256:
        return "content differs from the source perf"
    return None


def plan_copy(facts: NodeFacts, desired: Desired, choice: CapChoice, gid_known: bool) -> list[Action]:
    copy = facts.copy
    after = f"root:{desired.group} 0750 {choice.text()}"
    params: dict[str, object] = {"source": facts.source.path, "caps": sorted(choice.caps), "group": desired.group}
    reason = copy_needs_reinstall(facts)
    if reason is not None:
        return [Action(
            "install_copy", desired.dest, f"install {facts.source.path} as {desired.dest} ({after})",
            f"copy {reason}", before=reason, after=after, params=params,
        )]
    node = copy.node
    problems = []
    if not gid_known or node.gid != facts.group.gid:
        problems.append(f"group gid {node.gid}")
    if node.mode != COPY_MODE:
        problems.append(f"mode {node.mode:04o}")
    if not caps_match(copy.caps, choice):
        problems.append(f"caps {copy.caps.text() if copy.caps else 'none'}")
    if not problems:
        return []
    return [Action(
        "fix_copy", desired.dest, f"set {desired.dest} to {after}", "; ".join(problems) + " differ",
        before=", ".join(problems), after=after, params=params,
    )]


def paranoid_targets(facts: NodeFacts, desired: Desired) -> tuple[int, str]:
    """(value to persist, rendered drop-in). An intact drop-in's value (>= 2) is kept as is."""
    kept = sysctl.intact_value(facts.sysctl_dropin.content, desired.group)
    if kept is not None and kept >= MIN_PARANOID:
        value = kept
    else:
        value = max(facts.paranoid if facts.paranoid is not None else MIN_PARANOID, MIN_PARANOID)
    return value, sysctl.render_dropin(desired.group, value)


def plan_paranoid(facts: NodeFacts, desired: Desired) -> list[Action]:
    if desired.keep_paranoid:
        return []
    actions = []
    value, text = paranoid_targets(facts, desired)
    if facts.paranoid is None or facts.paranoid < MIN_PARANOID:
        actions.append(Action(
            "set_paranoid", sysctl.PROC_PATH, f"raise kernel.perf_event_paranoid {facts.paranoid} -> {value}",
            "below 2 every user can profile system-wide; the group is meant to be the only way in",
            before=str(facts.paranoid), after=str(value), params={"value": value},
        ))
    if facts.sysctl_dropin.content != text:
        actions.append(write_file_action(desired.sysctl_path, facts.sysctl_dropin.content, text, "persist perf_event_paranoid across reboots", "write_sysctl"))
    return actions


def write_file_action(path: str, before: str | None, text: str, why: str, step: str) -> Action:
    verb = "create" if before is None else "rewrite"
    return Action("write_file", path, f"{verb} {path}", why, before=before or "", after=text,
                  params={"content": text, "step": step})


def plan_profile(facts: NodeFacts, desired: Desired) -> list[Action]:
    text = profile.render(desired.group, desired.dest_dir)
    if facts.profile.content == text:
        return []
    return [write_file_action(desired.profile_path, facts.profile.content, text, "members find the privileged perf first on PATH", "write_profile")]


def preflight(facts: NodeFacts, desired: Desired) -> None:
    """Every refusal that does not need the source perf: run before --install-perf touches the
    node, so bad input or an unsafe destination never gets a package installed."""
    check_group(desired.group, desired.allow_privileged_group)
    check_gid(desired.gid)
    for member in desired.members:
        check_member(member)
    plan_dirs(facts, desired)
    check_dest(facts, desired)
    plan_members(facts, desired, plan_group(facts, desired)[1])


def make(facts: NodeFacts, desired: Desired) -> Plan:
    """The ordered changes that converge this node, or RefusedError explaining why not."""
    preflight(facts, desired)
    if facts.source.error or not facts.source.path or not facts.source.sha256:
        raise RefusedError(facts.source.error or "source perf could not be read")
    dir_actions = plan_dirs(facts, desired)
    group_actions, origin, notes = plan_group(facts, desired)
    member_actions = plan_members(facts, desired, origin)
    choice = expected_caps(facts, desired)
    actions = [
        *group_actions, *dir_actions,
        *plan_copy(facts, desired, choice, gid_known=facts.group.gid is not None),
        *plan_profile(facts, desired), *plan_paranoid(facts, desired), *member_actions,
    ]
    if facts.leftovers:
        actions.append(Action("clean_leftovers", desired.dest_dir, f"delete {len(facts.leftovers)} leftover temp files",
                              "an interrupted run left them", params={"paths": list(facts.leftovers)}))
    if facts.state is None:
        notes.append(f"no usable setup record ({facts.state_error}): one will be written")
        actions.append(Action("write_state", desired.state_path, f"record this setup in {desired.state_path}",
                              "remove and audit rely on it"))
    if facts.source.requested and facts.source.requested != facts.source.path:
        notes.append(f"{facts.source.requested} is a wrapper; the ELF it runs is {facts.source.path}")
    return Plan(
        actions=tuple(actions), caps=choice, group_origin=origin,
        source_path=facts.source.path, source_sha256=facts.source.sha256, notes=tuple(notes),
    )
