"""Setup as one flow shared by the CLI, the Ansible module and the node entry point: read facts,
plan, apply, record, verify. The callers only render what this returns."""

from __future__ import annotations

import datetime
import os
from dataclasses import dataclass, field
from typing import Any, Callable

from . import (
    access_rules,
    apply,
    findings,
    fstab,
    host,
    intent_facts,
    intent_plan,
    node_files_facts,
    node_files_rules,
    plan_diff,
    reach_plan,
    reach_rules,
    verify,
)
from . import facts as facts_mod
from . import plan as plan_mod
from .actions import (
    Action,
    AddMember,
    CreateDir,
    DeleteDir,
    EditFstab,
    InstallCopy,
    RemountTracefs,
    RemoveMember,
    SecurePath,
)
from .capabilities import sort_caps
from .desired import Desired
from .errors import ConvergeError, PerfgroupError
from .facts import NodeFacts
from .finding import CRITICAL, OK, UNKNOWN, WARNING, Finding
from .paths import DROPIN_PATH, artifact_paths
from .perfsource import SYSTEM_DIRS
from .plan import Plan, machine_wide
from .policy import caps_blocked, dir_is_safe
from .state import State


@dataclass
class SetupResult:
    plan: Plan | None = None
    applied: list[Action] = field(default_factory=list)
    state_written: bool = False
    verify: verify.VerifyResult | None = None
    installed_perf: tuple[str, ...] | None = None
    would_install: tuple[str, ...] | None = None  # dry run on a node without perf, --install-perf
    failed_step: str | None = None

    @property
    def changed(self) -> bool:
        return bool(self.applied) or self.state_written or self.installed_perf is not None

    def applied_summary(self) -> str:
        return "; ".join(action.summary for action in self.applied) or "nothing"


def diff(plan: Plan | None) -> list[dict[str, str]]:
    """Ansible's --diff: a few lines per planned action (plan_diff.py)."""
    return plan_diff.entries(plan.actions) if plan is not None else []


def summary(plan: Plan | None, result: SetupResult) -> dict[str, Any]:
    """What the Ansible module returns about a run, besides changed/failed."""
    return {
        "caps": sorted(plan.caps.caps) if plan else None,
        "caps_reason": plan.caps.reason if plan else None,
        "group_origin": plan.group_origin if plan else None,
        "plan": [a.summary for a in plan.actions] if plan else [],
        "notes": list(plan.notes) if plan else [],
        "verify": result.verify.as_dict() if result.verify else None,
        "verified": bool(result.verify and result.verify.ok),
        "applied": [a.summary for a in result.applied],
        "failed_step": result.failed_step,
    }


def setup_document(result: SetupResult, dry_run: bool, error: str | None) -> dict[str, Any]:
    """What `perfgroup setup --json` prints (and the image run returns)."""
    plan = result.plan
    return {
        "changed": result.changed,
        "dry_run": dry_run,
        "caps": sorted(plan.caps.caps) if plan else None,
        "caps_reason": plan.caps.reason if plan else None,
        "caps_text": plan.caps.text() if plan else None,
        "group_origin": plan.group_origin if plan else None,
        "plan": [a.as_dict() for a in plan.actions] if plan else [],
        "machine_wide": machine_wide([a.as_dict() for a in plan.actions]) if plan else [],
        "applied": [a.as_dict() for a in result.applied],
        "failed_step": result.failed_step,
        "notes": list(plan.notes) if plan else [],
        "verify": result.verify.as_dict() if result.verify else None,
        "state_written": result.state_written,
        "would_install_perf": " ".join(result.would_install) if result.would_install else None,
        "error": error,
    }


def plan_for(desired: Desired, facts: NodeFacts, dry_run: bool, result: SetupResult) -> tuple[NodeFacts, Plan | None]:
    """The plan; with --install-perf on a node without perf, install it first (not in a dry run)."""
    command = facts.source.install_command
    if command is not None and desired.install_perf and desired.source is None:
        plan_mod.preflight(facts, desired)
        if dry_run:
            return facts, None
        apply.install_package(command)
        result.installed_perf = command
        facts = facts_mod.read(desired)
        try:
            return facts, plan_mod.make(facts, desired)
        except PerfgroupError as error:
            # The package is installed: a refusal now is a failure after a change, never "nothing changed".
            result.failed_step = "plan"
            raise ConvergeError("plan", f"{error} (after installing perf: {' '.join(command)})") from None
    return facts, plan_mod.make(facts, desired)


def build_state(desired: Desired, before: NodeFacts, after: NodeFacts, plan: Plan, applied: list[Action]) -> State:
    previous = before.state
    # The record, then what a failed earlier run applied but never recorded (pending.py).
    known = intent_plan.union(intent_plan.recorded(previous), before.pending or intent_facts.Intent())
    created_dirs = (set(known.created_dirs) | {a.target for a in applied if isinstance(a, CreateDir)}) \
        - {a.target for a in applied if isinstance(a, DeleteDir)}
    added = set(known.members_added) | {a.target for a in applied if isinstance(a, AddMember)}
    added -= {a.target for a in applied if isinstance(a, RemoveMember)}
    copies = [*known.copies, *(a.target for a in applied if isinstance(a, InstallCopy))]
    paranoid_before = known.paranoid_before
    override = desired.caps_override is not None or (
        previous is not None and previous.caps_override and not desired.caps_auto
    )
    return State(
        group=desired.group,
        gid=after.group.gid if after.group.gid is not None else -1,
        group_created=plan.group_origin == "created",
        dest=desired.dest,
        copies=tuple(dict.fromkeys([*copies, desired.dest])),
        created_dirs=tuple(sorted(created_dirs)),
        source=plan.source_path,
        source_sha256=plan.source_sha256,
        source_stat=after.source.key,
        copy_sha256=after.copy.sha256 or "",
        copy_stat=after.copy.node.key,
        caps=tuple(sorted(plan.caps.caps)),
        caps_override=override,
        keep_paranoid=desired.keep_paranoid,
        paranoid_before=before.paranoid if paranoid_before is None and previous is None else paranoid_before,
        files=recorded_files(desired, after, previous, plan),
        members_added=tuple(sorted(added)),
        updated_at=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        tracefs_before=tracefs_before(known.tracefs_before, applied),
        tracefs_kept=not desired.tracefs,
        fstab_edits=fstab_edits(previous, applied, after.group.gid, after.fstab_journal),
        # The plan refused root-equivalent caps unless this run opted in: what it chose is what it granted.
        root_equivalent_caps=tuple(sort_caps(plan.caps.root_equivalent)),
        shell=desired.shell,
        shell_caps=tuple(sort_caps(desired.shell_extra_caps)),
    )


def recorded_files(desired: Desired, after: NodeFacts, previous: State | None, plan: Plan) -> tuple[tuple[str, str], ...]:
    """Every file this setup wrote (its own, the node artifacts, the tracefs drop-in) and those an
    earlier run wrote that this one did not render but still exist (the Ansible module renders none)."""
    gid = after.group.gid
    dropin = after.reach.dropin
    ours = desired.tracefs and gid is not None and dropin == reach_plan.render_dropin(desired.group, gid)
    present = tuple(path for path in (DROPIN_PATH, *artifact_paths(desired.group)) if os.path.lexists(path))
    return reach_plan.record_files(
        previous.files if previous else (), (*plan_mod.planned_files(desired), *plan.files),
        (DROPIN_PATH, host.sha256_text(dropin)) if ours and dropin is not None else None,
        desired.group, present,
    )


def tracefs_before(known: tuple[tuple[str, int, int], ...], applied: list[Action]) -> tuple[tuple[str, int, int], ...]:
    """What tracefs was before perfgroup first remounted it: kept across runs, for remove."""
    before = {path: (mode, gid) for path, mode, gid in known}
    for action in applied:
        if isinstance(action, RemountTracefs):
            before.setdefault(action.target, (action.was_mode, action.was_gid))
    return tuple((path, mode, gid) for path, (mode, gid) in sorted(before.items()))


def fstab_edits(previous: State | None, applied: list[Action], gid: int | None,
                journaled: tuple[tuple[str, str], ...] = ()) -> tuple[tuple[str, str], ...]:
    """The fstab lines setup changed: what each was before perfgroup first edited it, for remove
    (a killed run's edits, from the journal, first: they came before this run's; a journaled edit
    whose rename never happened is harmless, remove restores only lines that are as written)."""
    done = tuple((a.line, a.new_line or (fstab.edit_line(a.line, gid) if gid is not None else a.line))
                 for a in applied if isinstance(a, EditFstab))
    return fstab.recorded(previous.fstab_edits if previous else (), (*journaled, *done))


def record(desired: Desired, before: NodeFacts, after: NodeFacts, plan: Plan, applied: list[Action]) -> bool:
    """Write the state file if what it would say differs from what it says. True if written."""
    state = build_state(desired, before, after, plan, applied)
    state = state._replace(file_stats=facts_mod.file_stats(state.files))
    if state.same_as(before.state) and not before.record_untrusted:  # (the file still holds what was dropped)
        return False
    apply.write_file(desired.state_path, state.to_json(), step="write_state")
    return True


def stock_perf(facts: NodeFacts) -> str | None:
    for directory in SYSTEM_DIRS:
        if os.path.exists(f"{directory}/perf"):
            return f"{directory}/perf"
    return facts.source.path


def run_verify(desired: Desired, facts: NodeFacts | None = None) -> verify.VerifyResult:
    facts = facts if facts is not None else facts_mod.read(desired)
    if facts.group.gid is None:
        raise ConvergeError("verify", f"group {desired.group} does not exist")
    return verify.run(desired.dest, facts.group.gid, stock_perf(facts), verify_node(facts), shell_session(desired, facts),
                      shell_only(desired, facts))


def shell_only(desired: Desired, facts: NodeFacts) -> verify.ShellOnly | None:
    """Where the node has no copy and members use perf-shell (audit's copy.shell_only): what
    verify checks instead of the copy."""
    if not findings.shell_only(facts):
        return None
    members, others = findings.shell_only_problems(facts, desired)
    return verify.ShellOnly(desired.dest, caps_blocked(facts), desired.group, members, others)


def shell_session(desired: Desired, facts: NodeFacts) -> verify.Session | None:
    """perf-shell's session, where setup installs it (or the record says it did) and capsh can make it."""
    recorded = facts.state is not None and facts.state.shell
    if not (desired.shell or recorded) or not facts.shell.capsh_iab:
        return None
    extra = desired.shell_extra_caps if desired.shell else frozenset(facts.state.shell_caps if facts.state else ())
    return verify.Session(facts.shell.capsh, tuple(sort_caps(extra | {"cap_perfmon"})))


def verify_node(facts: NodeFacts) -> verify.Node:
    """What the node supports, so verify calls the rest unavailable rather than failed."""
    mounts = facts.reach.tracefs
    if not mounts:
        tracefs = "tracefs is not mounted"
    elif not all(reach_rules.group_can_read(m, facts.group.gid) for m in mounts):
        tracefs = "tracefs is not open to the group (setup --no-tracefs, or run setup)"
    else:
        tracefs = ""
    caps = facts.copy.caps.permitted if facts.copy.caps else frozenset()
    budget = facts.reach.mlock_kb or 0
    return verify.Node(facts.paranoid, facts.kptr_restrict, facts.lockdown, tracefs,
                       "cap_ipc_lock" in caps or budget >= reach_rules.BIG_MMAP_KB)


def setup(
    desired: Desired, dry_run: bool, run_checks: bool, lock_wait: float, result: SetupResult,
    on_plan: Callable[[Plan, bool], None] | None = None, on_wait: Callable[[str], None] | None = None,
) -> None:
    """The whole of `perfgroup setup` and of the Ansible module, check mode included.

    The host is read once before planning: a refusal or a converged node takes no lock and writes
    nothing. With changes to make, the lock is taken and the facts are read again only if another
    run changed something meanwhile (their fingerprint differs). `result` is filled as it goes, so
    a caller still has what was applied when a step fails."""
    present = node_files_facts.existing_requirements(desired.artifacts)
    desired = desired._replace(artifacts=node_files_rules.select(desired.artifacts, present))
    mark = facts_mod.fingerprint(desired)
    facts = facts_mod.read(desired)
    facts, plan = plan_for(desired, facts, dry_run=True, result=result)
    if plan is None:
        result.would_install = facts.source.install_command
        if dry_run:
            return
    else:
        result.plan = plan
        if on_plan is not None:
            on_plan(plan, dry_run)
        if dry_run:
            return
        if not plan.actions and not plan.record_missing:
            finish(desired, facts, plan, result, run_checks)
            return
    with apply.node_lock(lock_wait, on_wait, image=desired.image):
        if plan is None or facts_mod.fingerprint(desired) != mark:
            facts = facts_mod.read(desired, known_source=facts.source)
            facts, plan = plan_for(desired, facts, dry_run=False, result=result)
            assert plan is not None
            result.plan = plan
        finish(desired, facts, plan, result, run_checks)


def finish(desired: Desired, facts: NodeFacts, plan: Plan, result: SetupResult, run_checks: bool = True) -> None:
    """Apply the plan, read the host once more, record, verify. Raises ConvergeError naming the
    failed step; result.applied then says what was done before it. Any other exception here (a bug,
    a host surprise) becomes a ConvergeError too: once a step is applied, the caller must still say
    `changed`, the step and what was applied, never die with a traceback or report `unchanged`."""
    step = "apply"
    try:
        # The record's directory made root's alone first: the intent is written into it, and
        # apply.write_file writes nowhere others could change.
        secure: list[Action] = [action for action in plan.actions if isinstance(action, SecurePath)]
        for first in secure:
            step = first.kind
            apply.perform((first,), on_done=result.applied.append)
        intent = intent_plan.union(facts.pending, intent_plan.of_plan(plan.actions, facts.paranoid, facts.state))
        if not intent.empty() and intent != facts.pending:
            step = "write_pending"
            apply.write_pending(desired.state_path, intent_plan.to_json(intent))
        for action in plan.actions:
            if action in secure:
                continue
            step = action.kind
            apply.perform((action,), on_done=result.applied.append)
        step = "read_after"
        after = facts_mod.read(desired, known_source=facts.source)
        step = "check_path"
        unsafe = [node.path for node in after.dirs if node.exists and not dir_is_safe(node)]
        unsafe += access_rules.acl_holes(after)
        if unsafe:
            raise ConvergeError("check_path", f"{', '.join(unsafe)} above the copy changed while setup ran; run setup again")
        step = "check_copy"
        installed = any(isinstance(a, InstallCopy) for a in result.applied)
        if installed and after.copy.sha256 != plan.source_sha256:
            raise ConvergeError("check_copy", f"{desired.dest} (sha256 {(after.copy.sha256 or 'unreadable')[:12]}) is not the "
                                f"source perf setup checked ({plan.source_sha256[:12]}); run setup again")
        step = "record"
        result.state_written = record(desired, facts, after, plan, result.applied)
        if after.pending is not None:  # now in the record
            step = "delete_pending"
            apply.delete_pending(desired.state_path)
        if after.fstab_journal:  # now in the record
            step = "delete_fstab_journal"
            apply.delete_fstab_journal(desired.group)
        if run_checks and not plan_mod.copy_skipped(after, desired):  # no copy to run (perf-shell only)
            step = "verify"
            result.verify = run_verify(desired, after)
    except ConvergeError as error:
        result.failed_step = error.step
        raise
    except Exception as error:
        result.failed_step = step
        detail = " ".join(str(error).split()) or "no detail"
        if not isinstance(error, PerfgroupError):
            detail = f"unexpected {type(error).__name__}: {detail}"
        raise ConvergeError(step, detail) from error


def functional_findings(desired: Desired) -> list[Finding]:
    """`audit --functional`: the verification as findings (root only: it switches identities)."""
    if os.geteuid() != 0:
        return [Finding("verify.skipped", UNKNOWN, "--functional needs root to switch to an unprivileged identity")]
    fix = f"perfgroup setup --group {desired.group}"
    try:
        result = run_verify(desired)
    except PerfgroupError as error:
        return [Finding("verify.member", CRITICAL, str(error), fix)]
    lines = result.lines()
    # No copy (perf-shell only): setup --shell writes perf-shell's files back as it made them.
    fix = f"{fix} --shell" if result.shell_only is not None else fix
    found = [
        Finding("verify.member", OK if result.member_ok else CRITICAL, lines[0], fix),
        Finding("verify.non_member", OK if result.non_member_refused else CRITICAL, lines[1],
                fix if result.shell_only is not None else f"chmod o-rwx {desired.dest}"),
    ]
    for row in result.rows:
        severity = OK if row.ok else WARNING
        member = row.member.detail if row.member else "-"
        other = row.non_member.detail if row.non_member else "-"
        found.append(Finding(f"verify.{row.workload.id}", severity,
                             f"{row.workload.title}: {row.expected}" + ("" if row.ok or row.unavailable else
                                                                        f" (member: {member}; non-member: {other})"), fix))
    return found
