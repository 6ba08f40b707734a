"""Setup as one flow shared by the CLI and the Ansible module: read facts, plan, apply, record,
verify. The callers only render what this returns."""

from __future__ import annotations

import datetime
import os
from collections.abc import Callable
from dataclasses import dataclass, field

from . import apply, profile, verify
from . import facts as facts_mod
from . import plan as plan_mod
from .desired import Desired
from .errors import ConvergeError
from .facts import NodeFacts, sha256_text
from .perfsource import SYSTEM_DIRS
from .plan import Action, Plan
from .state import State


@dataclass
class SetupResult:
    plan: Plan | None = None
    applied: list[Action] = field(default_factory=list)
    state_written: bool = False
    verify: verify.VerifyResult | None = None
    installed_perf: tuple[str, ...] | None = None
    would_install: tuple[str, ...] | None = None  # dry run on a node without perf, --install-perf

    @property
    def changed(self) -> bool:
        return bool(self.applied) or self.state_written or self.installed_perf is not None


def prepare(desired: Desired, dry_run: bool, result: SetupResult) -> tuple[NodeFacts, Plan | None]:
    """Facts and plan; with --install-perf on a node without perf, install it first (not in dry run)."""
    facts = facts_mod.read(desired)
    command = facts.source.install_command
    if command is not None and desired.install_perf and desired.source is None:
        plan_mod.preflight(facts, desired)
        if dry_run:
            return facts, None
        apply.install_package(command)
        result.installed_perf = command
        facts = facts_mod.read(desired)
    return facts, plan_mod.make(facts, desired)


def build_state(desired: Desired, before: NodeFacts, after: NodeFacts, plan: Plan, applied: list[Action]) -> State:
    previous = before.state
    created_dirs = set(previous.created_dirs if previous else ())
    created_dirs |= {a.target for a in applied if a.kind == "create_dir"}
    added = set(previous.members_added if previous else ())
    added |= {a.target for a in applied if a.kind == "add_member"}
    override = desired.caps_override is not None or (
        previous is not None and previous.caps_override and not desired.caps_auto
    )
    sysctl_text = None if desired.keep_paranoid else plan_mod.paranoid_targets(after, desired)[1]
    return State(
        group=desired.group,
        gid=after.group.gid if after.group.gid is not None else -1,
        group_created=plan.group_origin == "created",
        group_source="directory" if plan.group_origin == "directory" else "local",
        dest=desired.dest,
        created_dirs=tuple(sorted(created_dirs)),
        source=plan.source_path,
        source_sha256=plan.source_sha256,
        source_stat=after.source.key,
        copy_sha256=after.copy.sha256 or "",
        copy_stat=after.copy.node.key,
        caps=tuple(sorted(plan.caps.caps)),
        caps_reason=plan.caps.reason,
        caps_override=override,
        keep_paranoid=desired.keep_paranoid,
        paranoid_before=previous.paranoid_before if previous else before.paranoid,
        profile_path=desired.profile_path,
        profile_sha256=sha256_text(profile.render(desired.group, desired.dest_dir)),
        sysctl_path=None if desired.keep_paranoid else desired.sysctl_path,
        sysctl_sha256=sha256_text(sysctl_text) if sysctl_text else None,
        members_added=tuple(sorted(added)),
        updated_at=datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
    )


def record(desired: Desired, before: NodeFacts, plan: Plan, applied: list[Action]) -> bool:
    """Write the state file if what it would say differs from what it says. True if written."""
    after = facts_mod.read(desired)
    state = build_state(desired, before, after, plan, applied)
    if state.same_as(before.state):
        return False
    apply.write_file(desired.state_path, state.to_json(), step="write_state")
    return True


def stock_perf(facts: NodeFacts) -> str | None:
    for directory in SYSTEM_DIRS:
        if os.path.exists(f"{directory}/perf"):
            return f"{directory}/perf"
    return facts.source.path


def run_verify(desired: Desired) -> verify.VerifyResult:
    facts = facts_mod.read(desired)
    if facts.group.gid is None:
        raise ConvergeError("verify", f"group {desired.group} does not exist")
    return verify.run(desired.dest, facts.group.gid, stock_perf(facts))


def setup(
    desired: Desired, dry_run: bool, run_checks: bool, lock_wait: float, result: SetupResult,
    on_plan: Callable[[Plan, bool], None] | None = None, on_wait: Callable[[str], None] | None = None,
) -> None:
    """The whole of `perfgroup setup` and of the Ansible module, check mode included.

    Planning reads only, so a refusal or a converged node takes no lock and writes nothing; a
    plan with changes is made again under the node lock, since another run may have acted.
    `result` is filled as it goes, so a caller still has what was applied when a step fails."""
    facts, plan = prepare(desired, dry_run=True, result=result)
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
        if not plan.actions:
            execute(desired, facts, plan, result, run_checks)
            return
    with apply.node_lock(lock_wait, on_wait):
        facts, plan = prepare(desired, dry_run=False, result=result)
        assert plan is not None
        result.plan = plan
        execute(desired, facts, plan, result, run_checks)


def execute(desired: Desired, facts: NodeFacts, plan: Plan, result: SetupResult, run_checks: bool = True) -> None:
    """Apply the plan, record it, verify. Raises ConvergeError naming the failed step."""
    apply.execute(plan.actions, on_done=result.applied.append)
    result.state_written = record(desired, facts, plan, result.applied)
    if run_checks:
        result.verify = run_verify(desired)


