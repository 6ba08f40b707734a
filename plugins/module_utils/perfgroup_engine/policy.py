"""What a correct privileged copy is. Pure; plan.py (what to change) and findings.py (what to
report) both decide from these rules, so the two can never disagree."""

from __future__ import annotations

import stat

from .capabilities import (
    ROOT_EQUIVALENT_CAPS,
    CapChoice,
    FileCaps,
    choice_from_override,
    choose_caps,
)
from .desired import Desired
from .facts import NodeFacts, PathFacts
from .paths import LIBEXEC_ROOT, MODULE_NAME
from .perfsource import SYSTEM_DIRS

# The privileged copy: root-owned, group = the perf group, no access for others.
COPY_MODE = 0o750
DIR_MODE = 0o755
FILE_MODE = 0o644
# Below 2 every user may profile beyond their own processes; the group is meant to be the only way in.
MIN_PARANOID = 2
# What setup sets: the upstream default. Lower opens perf to everyone; 3 and 4 block the group.
TARGET_PARANOID = 2
# Debian's CONFIG_SECURITY_PERF_EVENTS_RESTRICT (3) and Ubuntu's 4 block perf for everyone without
# CAP_SYS_ADMIN: CAP_PERFMON does not pass (seen on Debian's 6.1 kernel).
PERFMON_BLOCKED_FROM = 3
PACKAGED_PERF = tuple(f"{directory}/perf" for directory in SYSTEM_DIRS)
# Filesystems that cannot hold security.capability (no xattrs, or none of the security namespace
# across the network): a copy there would carry no capabilities.
NO_CAPS_FSTYPES = frozenset({"nfs", "nfs4", "cifs", "smb3", "vfat", "msdos", "exfat", "fuse.sshfs"})


def caps_blocked(facts: NodeFacts) -> str:
    """Where the copy would go, why file capabilities cannot work there ("" when they can)."""
    if facts.nosuid:
        return "a nosuid mount"
    if facts.fstype in NO_CAPS_FSTYPES:
        return f"{facts.fstype}, which cannot hold file capabilities"
    return ""


def did_you_mean(group: str, others: tuple[str, ...], command: str = "") -> str:
    """A typo's help: the group perfgroup is set up for, never advice about that group's files."""
    option = f"`perfgroup {command} --group {others[0]}`" if command else f"--group {others[0]}"
    return f"perfgroup is set up on this node for group {' and '.join(others)}, not {group}: did you mean {option}?"


def second_group(facts: NodeFacts) -> bool:
    """No record of this group, but another group's: a typo, or a second group (one per node)."""
    return bool(facts.other_groups) and facts.state_error == "missing" and facts.pending is None


def one_group_refusal(group: str, others: tuple[str, ...]) -> str:
    # Two groups cannot share what is one per node: tracefs's gid= option, /usr/local/bin/perf and
    # the perf/privileged module.
    return (f"{did_you_mean(group, others)} A node has one perfgroup group (tracefs has one gid, "
            f"/usr/local/bin/perf and the {MODULE_NAME} module one owner); to switch, run "
            f"`perfgroup remove --group {others[0]}` first")


def expected_caps(facts: NodeFacts, desired: Desired, audit: bool = False) -> CapChoice:
    """What the copy should carry: the asked override, the recorded one, or the kernel's need."""
    if desired.caps_override is not None:
        return choice_from_override(desired.caps_override)
    if facts.state is not None and facts.state.caps_override and not desired.caps_auto:
        return choice_from_override(frozenset(facts.state.caps))
    allowed = bool(granted_root_equivalent(facts, desired, audit))
    return choose_caps(facts.cap_last_cap, facts.kernel_release, allow_root_equivalent=allowed)


def caps_match(caps: FileCaps | None, choice: CapChoice) -> bool:
    """The copy's capabilities do exactly what was chosen, on this host. A v3 attribute with root
    uid 0 applies on the host just like v2; one for a namespace's root does not."""
    return (
        caps is not None and caps.permitted == choice.caps and caps.effective
        and not caps.inheritable and not caps.namespaced
    )


def granted_root_equivalent(facts: NodeFacts, desired: Desired, audit: bool = False) -> frozenset[str]:
    """The root-equivalent capabilities opted into. Setup: any, with this run's
    --allow-root-equivalent, else none (an earlier run's opt-in is not inherited: each run says it
    again or the record drops it). Audit, which has no such option: the set setup recorded granting."""
    if audit:
        return frozenset(facts.state.root_equivalent_caps) if facts.state is not None else frozenset()
    return ROOT_EQUIVALENT_CAPS if desired.allow_root_equivalent else frozenset()


def root_equivalent(caps: frozenset[str]) -> frozenset[str]:
    return caps & ROOT_EQUIVALENT_CAPS


def dir_is_safe(node: PathFacts) -> bool:
    """A directory above the copy that only root can change."""
    return node.kind == "dir" and node.uid == 0 and not node.mode & (stat.S_IWGRP | stat.S_IWOTH)


def managed_dir(path: str, facts: NodeFacts) -> bool:
    """Directories perfgroup owns and may repair: its own tree, or ones setup recorded creating."""
    if path == LIBEXEC_ROOT or path.startswith(LIBEXEC_ROOT + "/"):
        return True
    return facts.state is not None and path in facts.state.created_dirs


def is_packaged(path: str, facts: NodeFacts) -> bool:
    """The distribution's perf (by name or after resolving symlinks): never modified in place."""
    names = set(PACKAGED_PERF) | {p for p in (facts.source.path, facts.source.requested) if p}
    return path in names or facts.dest_realpath in facts.packaged_realpaths


def paranoid_blocks_perfmon_on(paranoid: int | None, restrict_config: bool | None) -> bool | None:
    """Whether this kernel's perf_event_paranoid keeps a CAP_PERFMON copy from working: True, False,
    or None when the kernel config that decides it cannot be read. 4 is Ubuntu's own patch."""
    if paranoid is None or paranoid < PERFMON_BLOCKED_FROM:
        return False
    if paranoid >= 4 or restrict_config:
        return True
    return None if restrict_config is None else False
