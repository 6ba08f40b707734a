"""Audit rules: from NodeFacts to findings. Pure; every rule is a small function tested with data.

Each finding has a stable id (monitoring keys on it), a severity, a message and the command that
fixes it. Severities follow the Nagios plugin convention so `audit` exits 0/1/2/3.
"""

from __future__ import annotations

import stat

from . import access_rules, errors, job_rules, reach_rules, shell_rules, sysctl
from .capabilities import PROFILING_CAPS, sort_caps
from .desired import Desired
from .facts import NodeFacts, PathFacts
from .finding import CRITICAL, OK, WARNING, Finding
from .finding import worst as worst_severity
from .paths import SHELL_COMMAND, intent_path, shell_helper_path, shell_paths, sudoers_path
from .perfsource import os_label
from .policy import (
    COPY_MODE,
    MIN_PARANOID,
    TARGET_PARANOID,
    caps_blocked,
    did_you_mean,
    dir_is_safe,
    expected_caps,
    granted_root_equivalent,
    paranoid_blocks_perfmon_on,
    root_equivalent,
    second_group,
)

TYPE_CHECKING = False  # as typing.TYPE_CHECKING (mypy knows the name), without importing typing at run time
if TYPE_CHECKING:
    from typing import Callable, Iterator


def worst(findings: list[Finding]) -> str:
    return worst_severity(f.severity for f in findings)


def exit_code(findings: list[Finding]) -> int:
    return errors.exit_code("audit", worst(findings))


def _setup(desired: Desired) -> str:
    return f"perfgroup setup --group {desired.group}"


if TYPE_CHECKING:
    Rule = Callable[[NodeFacts, Desired], Iterator[Finding]]


def rule_state(facts: NodeFacts, desired: Desired) -> Iterator[Finding]:
    if facts.pending is not None:
        yield Finding(
            "state.incomplete", WARNING,
            f"a setup run did not finish: {intent_path(desired.state_path)} holds what it meant to record",
            _setup(desired),
        )
    for line in facts.record_untrusted:
        yield Finding("state.untrusted", WARNING, line, f"inspect {desired.state_path}; {_setup(desired)} records afresh")
    if facts.state is not None:
        yield Finding("state.present", OK, f"setup record {desired.state_path} read (updated {facts.state.updated_at or 'unknown'})")
    elif facts.state_error == "missing":
        yield Finding(
            "state.missing", WARNING,
            f"no setup record at {desired.state_path}: drift against the source perf cannot be judged",
            _setup(desired),
        )
    else:
        yield Finding(
            "state.unusable", WARNING,
            f"setup record {desired.state_path} is {facts.state_error}: judged from the host alone",
            _setup(desired),
        )


def rule_group(facts: NodeFacts, desired: Desired) -> Iterator[Finding]:
    group = facts.group
    if group.gid is None:
        yield Finding("group.missing", CRITICAL, f"group {desired.group} does not exist", _setup(desired))
        return
    where = "/etc/group" if group.local else "the directory (NSS), not /etc/group"
    members = ", ".join(group.members) or "none listed"
    yield Finding("group.present", OK, f"group {group.name} gid {group.gid} from {where}; members: {members}")
    if facts.state is not None and facts.state.gid != group.gid:
        yield Finding(
            "group.gid_changed", WARNING,
            f"group {group.name} now has gid {group.gid}, setup recorded {facts.state.gid}",
            _setup(desired),
        )


def _mode_findings(node: PathFacts, desired: Desired) -> Iterator[Finding]:
    mode = node.mode
    fix = f"chmod 0750 {desired.dest}  # or: {_setup(desired)}"
    if mode & (stat.S_ISUID | stat.S_ISGID | stat.S_ISVTX):
        yield Finding("copy.setid", CRITICAL, f"{desired.dest} has setuid/setgid/sticky bits (mode {mode:04o})", fix)
    if mode & 0o007:
        yield Finding(
            "copy.world_access", CRITICAL,
            f"{desired.dest} is accessible to non-members (mode {mode:04o}): everyone gets its capabilities",
            fix,
        )
    if mode & stat.S_IWGRP:
        yield Finding(
            "copy.group_writable", CRITICAL,
            f"{desired.dest} is writable by group members (mode {mode:04o}): a member can replace privileged code",
            fix,
        )
    if mode != COPY_MODE and not mode & (stat.S_ISUID | stat.S_ISGID | stat.S_ISVTX | 0o007 | stat.S_IWGRP):
        yield Finding("copy.mode", WARNING, f"{desired.dest} mode {mode:04o} is not 0750: members may be unable to run it", fix)


def rule_copy_file(facts: NodeFacts, desired: Desired) -> Iterator[Finding]:
    node = facts.copy.node
    if not node.exists:
        yield Finding("copy.missing", CRITICAL, f"privileged perf {desired.dest} does not exist", _setup(desired))
        return
    if node.kind != "file":
        yield Finding("copy.not_file", CRITICAL, f"{desired.dest} is a {node.kind}, not a regular file", _setup(desired))
        return
    if facts.copy.is_elf is None:
        yield Finding(
            "copy.unverifiable", WARNING,
            f"{desired.dest} changed since setup and this user cannot read it to check its content",
            f"perfgroup audit --group {desired.group}  # as root",
        )
    elif not facts.copy.is_elf:
        yield Finding("copy.not_elf", CRITICAL, f"{desired.dest} is not an ELF executable", _setup(desired))
    if node.uid != 0:
        yield Finding("copy.owner", CRITICAL, f"{desired.dest} is owned by uid {node.uid}, not root", _setup(desired))
    if facts.group.gid is not None and node.gid != facts.group.gid:
        yield Finding(
            "copy.group", CRITICAL,
            f"{desired.dest} belongs to gid {node.gid}, not {desired.group} ({facts.group.gid})", _setup(desired),
        )
    yield from _mode_findings(node, desired)
    if node.nlink > 1:
        yield Finding(
            "copy.hardlinked", WARNING,
            f"{desired.dest} has {node.nlink} hard links: another name carries the same capabilities",
            _setup(desired),
        )
    if node.mode == COPY_MODE and node.uid == 0 and node.nlink == 1 and node.gid == facts.group.gid:
        yield Finding("copy.ok", OK, f"{desired.dest} root:{desired.group} 0750, one link")


def rule_caps(facts: NodeFacts, desired: Desired) -> Iterator[Finding]:
    copy = facts.copy
    if copy.node.kind != "file":
        return
    choice = expected_caps(facts, desired, audit=True)
    fix = _setup(desired)
    if copy.caps_error:
        yield Finding("caps.unreadable", CRITICAL, f"{desired.dest}: {copy.caps_error}", fix)
        return
    caps = copy.caps
    if caps is None or not caps.permitted:
        yield Finding("caps.missing", CRITICAL, f"{desired.dest} has no file capabilities (expected {choice.text()})", fix)
        return
    if caps.namespaced:
        yield Finding(
            "caps.namespaced", CRITICAL,
            f"{desired.dest} carries v3 capabilities for namespace root uid {caps.rootid}: ineffective on the host",
            fix,
        )
    if not caps.effective:
        yield Finding("caps.not_effective", CRITICAL, f"{desired.dest} capabilities lack the effective bit ({caps.text()})", fix)
    if caps.inheritable:
        yield Finding("caps.inheritable", WARNING, f"{desired.dest} has inheritable capabilities ({caps.text()})", fix)
    have = caps.permitted
    missing = choice.caps - have
    extra = have - choice.caps
    if choice.core and choice.core in missing:
        yield Finding("caps.missing", CRITICAL, f"{desired.dest} lacks {choice.core} (has {caps.text()}, expected {choice.text()})", fix)
    elif missing:
        yield Finding("caps.incomplete", WARNING, f"{desired.dest} lacks {','.join(sort_caps(missing))} ({choice.reason})", fix)
    yield from _power_findings(facts, desired, have, extra)
    if not missing and not extra and caps.effective and not caps.namespaced:
        yield Finding("caps.ok", OK, f"{desired.dest} has {choice.text()} ({choice.reason})")


def _power_findings(facts: NodeFacts, desired: Desired, have: frozenset[str], extra: frozenset[str]) -> Iterator[Finding]:
    """Capabilities beyond profiling: members run their own code with them (perf script). The
    opt-in covers exactly the root-equivalent capabilities setup recorded granting, nothing else."""
    fix = _setup(desired)
    dangerous = root_equivalent(have)
    recorded = granted_root_equivalent(facts, desired, audit=True)
    granted = dangerous & recorded
    if granted:
        yield Finding(
            "caps.root_equivalent", WARNING,
            f"{desired.dest} carries {','.join(sort_caps(granted))}: every member can become root "
            "(allowed on purpose with --allow-root-equivalent)", fix,
        )
    if dangerous - granted:
        yield Finding(
            "caps.excessive", CRITICAL,
            f"{desired.dest} carries {','.join(sort_caps(dangerous - granted))}: every member can become root "
            "(perf script runs their code with the copy's capabilities)"
            + ("; setup granted only " + ",".join(sort_caps(recorded)) if recorded else ""), fix,
        )
    unexpected = extra - dangerous
    beyond = unexpected - PROFILING_CAPS
    if beyond:
        yield Finding(
            "caps.excessive", CRITICAL,
            f"{desired.dest} carries {','.join(sort_caps(beyond))}: power beyond profiling for every member", fix,
        )
    elif unexpected:
        yield Finding("caps.extra", WARNING, f"{desired.dest} carries unexpected {','.join(sort_caps(unexpected))}", fix)


def rule_path(facts: NodeFacts, desired: Desired) -> Iterator[Finding]:
    unsafe = False
    for node in facts.dirs:
        if not node.exists:
            continue
        if node.kind == "symlink":
            unsafe = True
            yield Finding("path.symlink", WARNING, f"{node.path} (above {desired.dest}) is a symlink", "use a --dest without symlinks")
        elif not dir_is_safe(node):
            unsafe = True
            yield Finding(
                "path.unsafe", CRITICAL,
                f"{node.path} (above {desired.dest}) is owned by uid {node.uid} mode {node.mode:04o}: "
                "a non-root user can swap the privileged perf",
                f"chown root:root {node.path} && chmod go-w {node.path}",
            )
    if not unsafe:
        yield Finding("path.ok", OK, f"every directory above {desired.dest} is root-owned and not group/other-writable")
    if facts.nosuid:
        yield Finding(
            "mount.nosuid", CRITICAL,
            f"{desired.dest_dir} is on a nosuid mount: the kernel ignores the file capabilities",
            "choose a --dest on a filesystem mounted without nosuid",
        )


def rule_drift(facts: NodeFacts, desired: Desired) -> Iterator[Finding]:
    copy, source, state = facts.copy, facts.source, facts.state
    if copy.node.kind != "file" or copy.sha256 is None:
        return
    fix = _setup(desired)
    if source.error:
        yield Finding("source.unusable", WARNING, f"source perf: {source.error}", fix)
    if state is not None and state.dest == desired.dest:
        if copy.sha256 != state.copy_sha256:
            yield Finding(
                "copy.modified", CRITICAL,
                f"{desired.dest} content changed since setup (sha256 {copy.sha256[:12]}, recorded {state.copy_sha256[:12]})",
                fix,
            )
        elif state.source_sha256 and copy.sha256 != state.source_sha256:
            # What setup installed is not what it hashed from its source (a source swapped while
            # setup copied it; review finding 4): true whatever the source holds now.
            yield Finding(
                "copy.not_source", CRITICAL,
                f"{desired.dest} is not the perf setup copied it from (sha256 {copy.sha256[:12]}, "
                f"{state.source} was {state.source_sha256[:12]})",
                fix,
            )
        elif source.sha256 and source.path == state.source and source.sha256 != state.source_sha256:
            yield Finding(
                "copy.stale", WARNING,
                f"source {state.source} changed since setup (upgraded?): {desired.dest} is an old perf",
                fix,
            )
        elif source.path and source.path != state.source:
            yield Finding("copy.stale", WARNING, f"the system perf is now {source.path}, the copy was made from {state.source}", fix)
        else:
            yield Finding("copy.current", OK, f"{desired.dest} matches what setup installed from {state.source}")
    elif source.sha256 and copy.sha256 != source.sha256:
        yield Finding("copy.differs", WARNING, f"{desired.dest} differs from {source.path} and no setup record explains it", fix)


def rule_paranoid(facts: NodeFacts, desired: Desired) -> Iterator[Finding]:
    kept = desired.keep_paranoid or (facts.state is not None and facts.state.keep_paranoid)
    fix = _setup(desired)
    blocked = paranoid_blocks_perfmon_on(facts.paranoid, facts.perf_restrict_config)
    if desired.image:
        pass  # no live value in an image: only what nodes boot with (below)
    elif facts.paranoid is None:
        yield Finding("paranoid.unknown", WARNING, f"cannot read {sysctl.PROC_PATH}")
    elif facts.paranoid < MIN_PARANOID and facts.paranoid in job_rules.live_paranoid(facts.jobs):
        pass  # a running exclusive job's --job-paranoid: job.grant_active names it
    elif facts.paranoid < MIN_PARANOID:
        yield Finding(
            "paranoid.low", WARNING if kept else CRITICAL,
            f"perf_event_paranoid is {facts.paranoid}: every user can profile beyond their own processes"
            + (" (kept on purpose: --keep-paranoid)" if kept else ""),
            fix,
        )
    elif blocked or (blocked is None and facts.copy.caps is not None and "cap_sys_admin" not in facts.copy.caps.permitted):
        certainty = "blocks" if blocked else "probably blocks (kernel config unreadable)"
        yield Finding(
            "paranoid.blocks_group", CRITICAL if blocked else WARNING,
            f"perf_event_paranoid is {facts.paranoid}: this kernel {certainty} perf for everyone without "
            "CAP_SYS_ADMIN, members included; the group cannot profile",
            f"sysctl -w kernel.perf_event_paranoid={TARGET_PARANOID}  # and persist: {fix}",
        )
    else:
        yield Finding("paranoid.ok", OK, f"perf_event_paranoid is {facts.paranoid}: non-members are locked out")
    if kept:
        return
    persisted = facts.persisted_paranoid
    if persisted is None:
        yield Finding("paranoid.not_persisted", WARNING, "no sysctl configuration sets kernel.perf_event_paranoid", fix)
    elif persisted < MIN_PARANOID or paranoid_blocks_perfmon_on(persisted, facts.perf_restrict_config):
        yield Finding(
            "paranoid.not_persisted", WARNING,
            f"{facts.persisted_in} sets perf_event_paranoid={persisted} at boot", fix,
        )


FILE_KINDS = (("profile", "members do not get the privileged perf first on PATH"),
              ("sysctl", "perf_event_paranoid is not persisted as setup chose"),
              ("sudoers", "members cannot start perf-shell (sudo runs only what this drop-in allows)"),
              ("shell", "members cannot start perf-shell"))


def _file_kind(path: str, desired: Desired) -> tuple[str, str]:
    if path == desired.profile_path:
        return FILE_KINDS[0]
    if path == desired.sysctl_path:
        return FILE_KINDS[1]
    if path == sudoers_path(desired.group):
        return FILE_KINDS[2]
    if path in (SHELL_COMMAND, shell_helper_path(desired.group)):
        return FILE_KINDS[3]
    return ("file", "a file setup wrote")


def rule_files(facts: NodeFacts, desired: Desired) -> Iterator[Finding]:
    """Every file setup recorded, against the sha256 it recorded."""
    if facts.state is None:
        return
    for path, now in facts.recorded_files:
        kind, impact = _file_kind(path, desired)
        if now is None:
            yield Finding(f"{kind}.missing", WARNING, f"{path} is missing: {impact}", _setup(desired))
        elif now != facts.state.file_sha(path):
            # Root or members run or source every one of them (the wrapper, the node entry point,
            # units, hooks, snippets): an edit no one made through perfgroup is someone's code.
            yield Finding(f"{kind}.modified", CRITICAL, f"{path} was edited since setup wrote it (root or members run it)",
                          _setup(desired))


def rule_installed(facts: NodeFacts, desired: Desired) -> Iterator[Finding]:
    """Files root or members run, and every directory above them, are root's alone (trust.py)."""
    for path, problem in facts.unsafe_files:
        yield Finding("file.unsafe", CRITICAL,
                      f"{problem}: whoever can change it runs code as root or as a member ({path})",
                      f"chown root: and chmod go-w on it and every directory above it; then {_setup(desired)}")


def rule_kernel(facts: NodeFacts, desired: Desired) -> Iterator[Finding]:
    if facts.kptr_restrict == 2:
        yield Finding(
            "kptr_restrict.hidden", WARNING,
            "kptr_restrict=2 hides kernel addresses from everyone: members get no kernel symbols",
            "sysctl -w kernel.kptr_restrict=1 (and persist it), with cap_syslog granted",
        )
    elif facts.copy.caps is not None and "cap_syslog" not in facts.copy.caps.permitted:
        yield Finding(
            "kptr_restrict.no_syslog", WARNING,
            "the copy lacks cap_syslog: at perf_event_paranoid >= 2 members get no kernel symbols", _setup(desired),
        )
    if facts.lockdown == "confidentiality":
        yield Finding(
            "lockdown.confidentiality", WARNING,
            "kernel lockdown is in confidentiality mode: kernel profiling and tracing are blocked for everyone",
            "boot with lockdown=integrity or none if kernel profiling is required",
        )
    if facts.selinux == "enforcing":
        yield Finding(
            "selinux.enforcing", WARNING,
            "SELinux is enforcing: members' perf needs perf_event and capability2 { perfmon } allowed",
            "ausearch -m avc -c perf  # then allow the denied permissions in local policy",
        )


def rule_leftovers(facts: NodeFacts, desired: Desired) -> Iterator[Finding]:
    if facts.leftovers:
        yield Finding(
            "leftover.temp", WARNING,
            f"an interrupted perfgroup run left {', '.join(facts.leftovers)}", _setup(desired),
        )


def rule_reach(facts: NodeFacts, desired: Desired) -> Iterator[Finding]:
    if desired.image:
        yield Finding("image.live_state", OK, "an image: perf_event_paranoid, tracefs and the mlock budget are the "
                      "booted kernel's; the boot unit sets them and audits them on each node")
        return
    caps = tuple(sorted(facts.copy.caps.permitted)) if facts.copy.caps else ()
    kept = facts.state is not None and facts.state.tracefs_kept
    yield from reach_rules.findings(facts.reach, desired.group, facts.group.gid, kept, caps, facts.copy.caps is not None)


def rule_shell(facts: NodeFacts, desired: Desired) -> Iterator[Finding]:
    yield from shell_rules.findings(facts.shell, desired.group)


def rule_jobs(facts: NodeFacts, desired: Desired) -> Iterator[Finding]:
    yield from job_rules.findings(facts.jobs, desired.dest, facts.access.copy_acl, facts.paranoid, desired.group)


RULES: tuple[Rule, ...] = (
    rule_state, rule_group, rule_copy_file, rule_caps, rule_path,
    rule_drift, rule_paranoid, rule_files, rule_installed, rule_kernel, rule_leftovers, access_rules.rule_access, rule_reach,
    rule_shell,
    rule_jobs,
)


def shell_only(facts: NodeFacts) -> bool:
    """A node where file capabilities cannot work (nosuid, no xattrs) whose setup installed
    perf-shell instead of a copy: the copy's own rules do not apply there."""
    return bool(caps_blocked(facts)) and facts.state is not None and facts.state.shell and not facts.copy.node.exists


def shell_only_problems(facts: NodeFacts, desired: Desired) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """What verify on a shell-only node cannot prove by running a session, judged from the facts
    (sudo will not start the helper for its fresh uids: they have no passwd entry).
    First: what keeps members from starting perf-shell: its command, helper or drop-in missing or
    changed since setup wrote them, sudo or a capsh with --iab missing, sudoers not parsing.
    Second: what could let someone outside the group start it: the drop-in holding more than the
    group's rule, the helper set-id, any of the three (or a directory above) changeable by others."""
    ours = shell_paths(desired.group)
    recorded = {path for path, _ in facts.state.files} if facts.state is not None else set()
    members = [f"{path} is not in the setup record: nothing says what setup wrote there" for path in ours
               if path not in recorded]
    members += [f.message for f in rule_files(facts, desired) if f.id.split(".")[0] in ("shell", "sudoers")]
    members += [f.message for f in shell_rules.findings(facts.shell, desired.group) if f.severity != OK]
    others = [problem for path, problem in facts.unsafe_files if path in ours]
    for problem in (shell_rules.dropin_problem(facts.shell.dropin, desired.group),
                    shell_rules.helper_problem(facts.shell.helper_mode, desired.group)):
        if problem is not None:
            others.append(problem)
    return tuple(members), tuple(others)


def rule_shell_only(facts: NodeFacts, desired: Desired) -> Iterator[Finding]:
    yield Finding("copy.shell_only", OK, f"{desired.dest_dir} is on {caps_blocked(facts)} (file capabilities cannot "
                  "work): no copy, members use perf-shell")


COPY_RULES = (rule_copy_file, rule_caps, rule_path, rule_drift)


def audit(facts: NodeFacts, desired: Desired) -> list[Finding]:
    rules = (*(rule for rule in RULES if rule not in COPY_RULES), rule_shell_only) if shell_only(facts) else RULES
    found = [finding for rule in rules for finding in rule(facts, desired)]
    if not second_group(facts):
        return found
    # A typo: every fix points at the group perfgroup is set up for, never at setting up the typo.
    other = facts.other_groups[0]
    advice = f"perfgroup audit --group {other}"
    typo = Finding("state.other_group", CRITICAL, did_you_mean(desired.group, facts.other_groups), advice)
    return [typo, *(f._replace(fix=advice) if f.fix else f for f in found)]


def report(facts: NodeFacts, desired: Desired, found: list[Finding]) -> dict[str, object]:
    """The audit as data: the same document from `perfgroup audit --json` and from the Ansible
    audit module, with what the fleet checks compare across nodes."""
    return {
        "group": desired.group, "dest": desired.dest, "status": worst(found), "exit_code": exit_code(found),
        "findings": [f.as_dict() for f in found],
        "gid": facts.group.gid, "group_local": facts.group.local, "members": sorted(facts.group.members),
        "copy_sha256": facts.copy.sha256, "caps": sort_caps(facts.copy.caps.permitted) if facts.copy.caps else [],
        "kernel_release": facts.kernel_release, "cap_last_cap": facts.cap_last_cap,
        "os_release": os_label(facts.os_release), "holders": access_rules.holders(facts),
        "job_grants_active": job_rules.active_count(facts.jobs),
    }
