"""Deciding what setup must change: from NodeFacts and Desired to an ordered tuple of actions.

Pure. Everything that makes setup refuse (exit 2) is decided here, before anything is touched.
"""

from __future__ import annotations

from dataclasses import dataclass

from . import access_plan, node_files_plan, profile, reach_plan, shell_plan, sysctl
from .actions import (
    Action,
    AddMember,
    CleanLeftovers,
    CreateDir,
    CreateGroup,
    FixCopy,
    InstallCopy,
    RemoveMember,
    RepairDir,
    RestoreContext,
    SetParanoid,
    WriteFile,
)
from .capabilities import ROOT_EQUIVALENT_FLAG, CapChoice, root_equivalent_refusal, sort_caps, ungranted_root_equivalent
from .desired import Desired
from .errors import RefusedError
from .facts import NodeFacts
from .host import sha256_text
from .job_rules import grant_acl, live_grants, live_paranoid
from .paths import DROPIN_PATH, SYSCTL_DIR, WRAPPER_PATH
from .policy import (
    COPY_MODE,
    MIN_PARANOID,
    TARGET_PARANOID,
    caps_blocked,
    caps_match,
    dir_is_safe,
    expected_caps,
    granted_root_equivalent,
    is_packaged,
    managed_dir,
    one_group_refusal,
    paranoid_blocks_perfmon_on,
    second_group,
)
from .tuples import NamedTuple
from .validate import check_desired, check_dest_path

TYPE_CHECKING = False  # as typing.TYPE_CHECKING (mypy knows the name), without importing typing at run time
if TYPE_CHECKING:
    from typing import Callable


@dataclass(frozen=True)
class Plan:
    actions: tuple[Action, ...]
    caps: CapChoice
    group_origin: str  # "created", "local" or "directory"
    source_path: str
    source_sha256: str
    notes: tuple[str, ...] = ()
    record_missing: bool = False  # no usable setup record: one is written even if nothing else changes
    files: tuple[tuple[str, str], ...] = ()  # (path, sha256) of the node files (node_files.py) for the record

    @property
    def changes(self) -> bool:
        return bool(self.actions)


def plan_dirs(facts: NodeFacts, desired: Desired) -> list[Action]:
    """Outermost first: a directory is repaired before anything inside it is trusted or created,
    so a user cannot swap an inner directory between two repairs."""
    actions: list[Action] = []
    missing: list[str] = []
    for node in reversed(facts.dirs):  # from / down to the copy's directory
        if not node.exists:
            missing.append(node.path)
            continue
        if missing:
            raise RefusedError(f"--dest {desired.dest}: {missing[0]} is missing but {node.path} below it exists")
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
        mode = node.mode & ~0o022 & 0o7777
        actions.append(RepairDir(node.path, "a writable directory above the copy lets others replace it",
                                 mode=mode, was=f"uid {node.uid} mode {node.mode:04o}"))
    actions += [CreateDir(path, "holds the privileged perf") for path in missing]
    return actions


def check_dest(facts: NodeFacts, desired: Desired) -> None:
    check_dest_path(desired.dest)
    if desired.dest.endswith("/"):
        raise RefusedError(f"--dest {desired.dest} names a directory; give the file path")
    if is_packaged(desired.dest, facts):
        raise RefusedError(f"--dest {desired.dest} is the packaged perf; perfgroup never modifies it in place")
    blocked = caps_blocked(facts)
    if blocked and not desired.shell:
        raise RefusedError(
            f"--dest {desired.dest} is on {blocked}: the kernel would ignore its file capabilities; "
            "give --shell (members use perf-shell there) or another --dest"
        )
    node = facts.copy.node
    if node.exists and node.kind not in ("file", "symlink"):
        raise RefusedError(f"--dest {desired.dest} exists and is a {node.kind}")
    recorded = facts.state is not None and desired.dest in (facts.state.dest, *facts.state.copies)
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
        gid = access_plan.new_gid(facts.access, desired.gid)
        return [CreateGroup(desired.group, "only its members may run the privileged perf", gid=gid)], "created", notes
    if desired.gid is not None and desired.gid != group.gid:
        raise RefusedError(
            f"group {desired.group} exists with gid {group.gid}, not --gid {desired.gid}; perfgroup will not renumber it"
        )
    created_before = facts.state is not None and facts.state.group_created and facts.state.group == desired.group
    created_before = created_before or (facts.pending is not None and facts.pending.group_created)  # by a failed run
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
    actions: list[Action] = []
    for name in desired.members:
        if not facts.users.get(name, False):
            raise RefusedError(f"--member {name}: no such user")
        if name in facts.group.members:
            continue
        if origin == "directory":
            raise RefusedError(
                f"--member {name}: group {desired.group} is managed by the directory (LDAP/SSSD); add the member there"
            )
        actions.append(AddMember(name, "asked with --member", group=desired.group))
    if desired.members_exclusive:
        others = [name for name in facts.group.members if name not in desired.members]
        if others and origin == "directory":
            raise RefusedError(f"--members-exclusive: group {desired.group} is managed by the directory (LDAP/SSSD); "
                               "change its members there")
        actions += [RemoveMember(name, "not listed (--members-exclusive)", group=desired.group) for name in others]
    return actions


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


def plan_copy(facts: NodeFacts, desired: Desired, choice: CapChoice) -> list[Action]:
    """Install or repair the copy. Either way it ends with the ACL the live grant records ask for
    (job_rules.grant_acl): a running job keeps its perf when the copy is replaced under it, and
    an entry no live record backs is not carried over."""
    caps = tuple(sort_caps(choice.caps))
    source = facts.source.path or ""
    acl = grant_acl(facts.jobs, desired.dest, COPY_MODE)
    acl_for = tuple(f"{g.user} (job {g.job})" for g in live_grants(facts.jobs, desired.dest))
    reason = copy_needs_reinstall(facts)
    if reason is not None:
        return [InstallCopy(desired.dest, f"copy {reason}", source=source, caps=caps, group=desired.group, reason=reason,
                            source_sha256=facts.source.sha256 or "", source_key=facts.source.key, acl=acl,
                            acl_for=acl_for)]
    node = facts.copy.node
    problems = []
    if facts.group.gid is None or node.gid != facts.group.gid:
        problems.append(f"group gid {node.gid}")
    if node.mode != COPY_MODE:
        problems.append(f"mode {node.mode:04o}")
    if not caps_match(facts.copy.caps, choice):
        problems.append(f"caps {facts.copy.caps.text() if facts.copy.caps else 'none'}")
    problems += access_plan.copy_problems(facts, desired.dest)
    if not problems:
        return []
    return [FixCopy(desired.dest, "; ".join(problems) + " differ", caps=caps, group=desired.group,
                    problems=", ".join(problems), acl=acl, acl_for=acl_for)]


def plan_paranoid(facts: NodeFacts, desired: Desired) -> tuple[list[Action], list[str]]:
    """perf_event_paranoid to 2: below it everyone profiles system-wide; at Debian's 3 or Ubuntu's 4
    CAP_PERFMON does not pass, so the group could not work at all."""
    if desired.image:
        return plan_paranoid_image(facts, desired)
    blocked = paranoid_blocks_perfmon_on(facts.paranoid, facts.perf_restrict_config)
    if desired.keep_paranoid:
        if blocked is not False:
            raise RefusedError(
                f"perf_event_paranoid is {facts.paranoid} and this kernel "
                f"{'blocks' if blocked else 'may block (kernel config unreadable)'} perf for everyone without "
                "CAP_SYS_ADMIN, members included; drop --keep-paranoid so setup sets 2 (others keep per-process, "
                "user-space-only perf)"
            )
        return [], []
    actions: list[Action] = []
    notes: list[str] = []
    live = facts.paranoid
    if live is not None and live in live_paranoid(facts.jobs):
        # A heal (a perf upgrade's hook) during a --job-paranoid job must not take the job's value
        # away; its epilog restores the recorded one, and the audit says job.grant_active.
        notes.append(f"perf_event_paranoid {live} belongs to a running job (--job-paranoid): left to its epilog")
    elif live is None or live < MIN_PARANOID:
        actions.append(SetParanoid(sysctl.PROC_PATH, "below 2 every user can profile beyond their own processes",
                                   value=TARGET_PARANOID, was=live))
    elif blocked is not False and live != TARGET_PARANOID:
        actions.append(SetParanoid(
            sysctl.PROC_PATH, f"{live} blocks CAP_PERFMON on this kernel: the group could not profile at all",
            value=TARGET_PARANOID, was=live,
        ))
        notes.append(
            f"perf_event_paranoid {live} -> {TARGET_PARANOID} (the upstream default): non-members may again profile "
            "their own processes in user space, nothing more; system-wide and kernel profiling stay with the group"
        )
    text = sysctl.render_dropin(desired.group, TARGET_PARANOID)
    if facts.sysctl_dropin.content != text:
        actions.append(WriteFile(desired.sysctl_path, "persist perf_event_paranoid across reboots", content=text,
                                 old=facts.sysctl_dropin.content, step="write_sysctl"))
    return actions, notes


def plan_paranoid_image(facts: NodeFacts, desired: Desired) -> tuple[list[Action], list[str]]:
    """An image: only the boot-time drop-in (the build host's kernel is not the nodes')."""
    if desired.keep_paranoid:
        return [], ["--keep-paranoid in an image: nodes boot with the kernel's own perf_event_paranoid "
                    "(Debian's 3 and Ubuntu's 4 block the group; the boot unit's audit would say so)"]
    text = sysctl.render_dropin(desired.group, TARGET_PARANOID)
    if facts.sysctl_dropin.content == text:
        return [], []
    return [WriteFile(desired.sysctl_path, "nodes boot with perf_event_paranoid 2", content=text,
                      old=facts.sysctl_dropin.content, step="write_sysctl")], []


def image_notes(facts: NodeFacts, desired: Desired) -> list[str]:
    if not desired.image:
        return []
    kernel = (f"capabilities chosen for the image's kernel {facts.kernel_release}" if facts.kernel_release else
              "the image carries no kernel under /lib/modules: capabilities chosen for a kernel with CAP_PERFMON (5.8+)")
    return [
        "image: cpio-packed images (Warewulf, xCAT) drop file capabilities; the enabled boot unit "
        f"perfgroup-heal-{desired.group}.service restores them, the sysctl and tracefs access at every boot",
        kernel + "; nothing live was read or changed on this build host",
    ]


def plan_profile(facts: NodeFacts, desired: Desired) -> list[Action]:
    text = profile.render(desired.group, desired.dest_dir)
    if facts.profile.content == text:
        return []
    return [WriteFile(desired.profile_path, "members find the privileged perf first on PATH", content=text,
                      old=facts.profile.content, step="write_profile")]


def plan_selinux(facts: NodeFacts, desired: Desired, actions: list[Action]) -> list[Action]:
    """With SELinux enabled, a new or re-permissioned copy gets its policy label back."""
    touched = any(isinstance(a, (InstallCopy, FixCopy)) for a in actions)
    if facts.selinux is None or not touched:
        return []
    return [RestoreContext(desired.dest, "SELinux is enabled: the copy needs the policy's label, not its temp file's")]


def selinux_notes(facts: NodeFacts) -> list[str]:
    if facts.selinux != "enforcing":
        return []
    return ["SELinux is enforcing: the policy may deny members perf_event or capability2 { perfmon } even with the "
            "file capabilities; check `ausearch -m avc -c perf` after a member's first run"]


def planned_files(desired: Desired) -> tuple[tuple[str, str], ...]:
    """(path, sha256) of every file setup writes, for the record."""
    files = [(desired.profile_path, profile.render(desired.group, desired.dest_dir))]
    if not desired.keep_paranoid:
        files.append((desired.sysctl_path, sysctl.render_dropin(desired.group, TARGET_PARANOID)))
    return tuple((path, sha256_text(text)) for path, text in files)


def check_power(facts: NodeFacts, desired: Desired, choice: CapChoice) -> list[str]:
    """Root-equivalent capabilities need the loud opt-in; with it the plan says so loudly."""
    dangerous = sort_caps(choice.root_equivalent)
    if not dangerous:
        return []
    ungranted = ungranted_root_equivalent(choice.caps, granted_root_equivalent(facts, desired))
    if ungranted:
        if facts.state is not None and facts.state.caps_override and desired.caps_override is None:
            raise RefusedError(root_equivalent_refusal(
                f"the recorded --caps {','.join(sort_caps(choice.caps))}", ungranted,
                "The opt-in is not remembered: pass it again to keep them, or --caps auto; "))
        raise RefusedError(root_equivalent_refusal(
            "this kernel has no CAP_PERFMON: a perf group needs them", ungranted,
            "Alternatives: per-job access on exclusive nodes (batch prolog/epilog), or lowering "
            "perf_event_paranoid for everyone; "))
    return [f"MEMBERS CAN BECOME ROOT: the copy carries {','.join(dangerous)} (allowed with {ROOT_EQUIVALENT_FLAG})"]


def recorded_files(facts: NodeFacts) -> tuple[tuple[str, str], ...]:
    """(path, sha256) of every file the setup record says perfgroup wrote."""
    return facts.state.files if facts.state else ()


class Decided(NamedTuple):
    """What the planners decide before the source perf matters (each planner runs once)."""

    group_actions: list[Action]
    origin: str
    notes: list[str]
    choice: CapChoice
    dirs: list[Action]
    members: list[Action]
    paranoid: tuple[list[Action], list[str]]
    access: tuple[list[Action], list[Action]]
    tracefs: tuple[list[Action], list[str]]


def preflight(facts: NodeFacts, desired: Desired) -> Decided:
    """Every refusal that does not need the source perf: run before --install-perf touches the
    node, so bad input or an unsafe destination never gets a package installed."""
    check_desired(desired)
    if second_group(facts):
        raise RefusedError(one_group_refusal(desired.group, facts.other_groups))
    for path, problem in facts.unsafe_targets:
        raise RefusedError(f"{problem}: perfgroup will not write {path} there, which root or members run or read; "
                           "make every directory above it root's alone first")
    dirs = plan_dirs(facts, desired)
    check_dest(facts, desired)
    group_actions, origin, notes = plan_group(facts, desired)
    members = plan_members(facts, desired, origin)
    paranoid = plan_paranoid(facts, desired)
    choice = expected_caps(facts, desired)
    notes += check_power(facts, desired, choice)
    notes += shell_plan.plan(facts.shell, desired, facts.cap_last_cap)
    if copy_skipped(facts, desired):
        notes.append(f"file capabilities do not work on this mount ({desired.dest_dir} is on {caps_blocked(facts)}): "
                     "members use perf-shell; no privileged copy is installed")
    access = access_plan.plan(facts, desired)
    node_files_plan.refuse_foreign(facts.node_files, desired.artifacts, desired.group, recorded_files(facts))
    # refuses an ambiguous fstab
    tracefs = reach_plan.plan_tracefs(facts.reach, desired.group, facts.group.gid, desired.tracefs, desired.image)
    return Decided(group_actions, origin, notes, choice, dirs, members, paranoid, access, tracefs)


def copy_skipped(facts: NodeFacts, desired: Desired) -> bool:
    """Where file capabilities cannot work (nosuid, no xattrs) and members have perf-shell: no copy."""
    return bool(caps_blocked(facts)) and desired.shell


def make(facts: NodeFacts, desired: Desired) -> Plan:
    """The ordered changes that converge this node, or RefusedError explaining why not."""
    decided = preflight(facts, desired)
    if facts.source.error or not facts.source.path or not facts.source.sha256:
        raise RefusedError(facts.source.error or "source perf could not be read")
    origin, notes, choice = decided.origin, list(decided.notes), decided.choice
    paranoid_actions, paranoid_notes = decided.paranoid
    secure, left_behind = decided.access
    actions: list[Action] = [
        *decided.group_actions, *secure, *decided.dirs, *([] if copy_skipped(facts, desired) else plan_copy(facts, desired, choice)),
        *left_behind, *plan_profile(facts, desired), *paranoid_actions, *decided.members,
        *node_files_plan.plan(facts.node_files, desired.artifacts, desired.node_entry, desired.group, recorded_files(facts)),
    ]
    notes += paranoid_notes
    actions += plan_selinux(facts, desired, actions)
    notes += selinux_notes(facts)
    notes += image_notes(facts, desired)
    tracefs_actions, tracefs_notes = decided.tracefs
    actions += tracefs_actions
    notes += tracefs_notes
    if facts.leftovers:
        actions.append(CleanLeftovers(desired.dest_dir, "an interrupted run left them", paths=facts.leftovers))
    notes += facts.record_untrusted
    if facts.state is None:
        notes.append(f"no usable setup record ({facts.state_error}): one will be written to {desired.state_path}")
    if facts.source.requested and facts.source.requested != facts.source.path:
        notes.append(f"{facts.source.requested} is a wrapper; the ELF it runs is {facts.source.path}")
    return Plan(
        actions=tuple(actions), caps=choice, group_origin=origin, source_path=facts.source.path,
        source_sha256=facts.source.sha256, notes=tuple(notes), record_missing=facts.state is None,
        files=node_files_plan.recorded(facts.node_files, desired.artifacts, desired.node_entry),
    )


# What setup changes for everyone on the node, not only for members: the top of every plan says it
# first. (kind or path test, what to say); one line per kind of change, in this order.
MACHINE_WIDE: tuple[tuple[Callable[[str, str], bool], str], ...] = (
    (lambda kind, target: kind == "set_paranoid", "{summary}, live: the kernel's profiling policy for every user"),
    (lambda kind, target: target.startswith(f"{SYSCTL_DIR}/"),
     "kernel.perf_event_paranoid 2 at every boot ({target})"),
    (lambda kind, target: kind in ("remount_tracefs", "persist_tracefs", "edit_fstab") or target == DROPIN_PATH,
     "tracefs mount options (gid=GROUP, mode 0750), live and at boot: one tracefs per kernel; others keep no access"),
    (lambda kind, target: target == WRAPPER_PATH,
     f"{WRAPPER_PATH} in front of every user's perf: members get the privileged copy, everyone else the stock perf"),
    (lambda kind, target: "/perfgroup-heal-" in target and not target.endswith(".wants"),
     "a boot unit that re-converges the node at every boot (perfgroup-heal-GROUP.service)"),
    (lambda kind, target: target.startswith(("/etc/apt/", "/etc/dnf/")),
     "a package-manager hook: every perf upgrade is re-copied ({target})"),
    (lambda kind, target: target.startswith(("/etc/slurm/prolog.d/", "/etc/slurm/epilog.d/")),
     "a Slurm prolog and epilog run for every job: exclusive jobs that request the feature get the "
     "privileged perf for the job (docs/slurm.md)"),
    (lambda kind, target: target.startswith("/etc/sudoers.d/"),
     "a sudoers drop-in: members may start perf-shell ({target})"),
)


def machine_wide(actions: list[dict[str, str]]) -> list[str]:
    """Plain data in (a plan's actions as dicts, also from an image), one line per machine-wide change out."""
    said: list[str] = []
    for test, words in MACHINE_WIDE:
        hit = next((a for a in actions if test(a["kind"], a["target"])), None)
        if hit is not None:
            said.append(words.format(summary=hit["summary"], target=hit["target"]))
    return said
