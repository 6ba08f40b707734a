"""Undo exactly what setup recorded, and nothing else."""

from __future__ import annotations

import grp
import os
from dataclasses import dataclass, field

from . import apply
from .desired import state_path
from .errors import RefusedError
from .facts import load_state
from .state import State


@dataclass(frozen=True)
class Step:
    kind: str
    target: str
    summary: str


@dataclass
class RemoveResult:
    steps: list[Step] = field(default_factory=list)
    done: list[Step] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def load(group: str) -> State:
    path = state_path(group)
    state, error = load_state(path)
    if state is None:
        raise RefusedError(
            f"no usable setup record for group {group} ({path} is {error}); remove will not guess what "
            f"perfgroup made. Inspect with `perfgroup audit --group {group}` and delete by hand"
        )
    if state.group != group:
        raise RefusedError(f"{path} records group {state.group!r}, not {group!r}; refusing")
    return state


def plan(state: State) -> list[Step]:
    steps = [Step("delete_copy", state.dest, f"strip capabilities from and delete {state.dest}")]
    steps.append(Step("delete_file", state.profile_path, f"delete {state.profile_path}"))
    if state.sysctl_path:
        steps.append(Step("delete_file", state.sysctl_path, f"delete {state.sysctl_path} (the live value is kept)"))
    for directory in sorted(state.created_dirs, key=len, reverse=True):
        steps.append(Step("delete_dir", directory, f"delete {directory} if empty"))
    if state.group_created:
        steps.append(Step("delete_group", state.group, f"delete group {state.group} (setup created it)"))
    else:
        for user in state.members_added:
            steps.append(Step("remove_member", user, f"remove {user} from {state.group} (setup added them)"))
    steps.append(Step("delete_state", state_path(state.group), f"delete the record {state_path(state.group)}"))
    return steps


def _member_of(user: str, group: str) -> bool:
    try:
        return user in grp.getgrnam(group).gr_mem
    except KeyError:
        return False


def run_step(step: Step, state: State) -> bool:
    """Perform one step; False when there was nothing left to do."""
    if step.kind == "delete_copy":
        found = apply.delete_copy(step.target)
        apply.clean_leftovers(os.path.dirname(step.target))
        return found
    if step.kind in ("delete_file", "delete_state"):
        return apply.remove_path(step.target, f"{step.kind}:{os.path.basename(step.target)}")
    if step.kind == "delete_dir":
        return apply.remove_dir(step.target)
    if step.kind == "delete_group":
        try:
            grp.getgrnam(step.target)
        except KeyError:
            return False
        apply.delete_group(step.target)
        return True
    if step.kind == "remove_member":
        if not _member_of(step.target, state.group):
            return False
        apply.remove_member(step.target, state.group)
        return True
    raise ValueError(step.kind)


def remove(group: str, dry_run: bool) -> RemoveResult:
    state = load(group)
    result = RemoveResult(steps=plan(state))
    result.notes.append(
        "kernel.perf_event_paranoid keeps its live value; without the drop-in, boot applies the distribution default"
    )
    if dry_run:
        return result
    for step in result.steps:
        if run_step(step, state):
            result.done.append(step)
    return result
