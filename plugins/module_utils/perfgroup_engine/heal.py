"""The heal flow: converge again from the setup record, with what setup was last asked for. Run
as root by the boot unit and the package hooks (`perfgroup-node heal [--if-source-changed]`): the
node has no jinja2 and no controller, so the record is the whole request.
"""

from __future__ import annotations

import grp
import os

from . import converge, jobs, options
from . import facts as facts_mod
from .desired import Desired, NodeArtifact
from .errors import ConvergeError, PerfgroupError, RefusedError, converge_failure
from .host import load_state, read_text, sha256_text
from .node_files_rules import is_entry_point, owned
from .options import LOCK_WAIT_SECONDS
from .paths import state_path
from .state import State
from .validate import check_dest_path, check_name, desired_from_input

TYPE_CHECKING = False  # as typing.TYPE_CHECKING (mypy knows the name), without importing typing at run time
if TYPE_CHECKING:
    from typing import Callable


def recorded_artifacts(state: State) -> tuple[NodeArtifact, ...]:
    """The rendered artifacts setup recorded, as they are now, when still what setup wrote: heal
    cannot render (no jinja2 on nodes) but keeps them in the record. The entry point is re-made
    from this engine itself, and profile/sysctl from the engine's own renderers."""
    out = []
    for path, sha in state.files:
        if is_entry_point(path) or not owned(state.group, path):
            continue
        text = read_text(path, 16 << 20)
        if text is None or sha256_text(text) != sha:
            # Drifted or gone: heal cannot render it again (`perfgroup setup` does), but keeps it
            # in the record so audit goes on reporting it and remove still deletes it.
            out.append(NodeArtifact(path, "", kind="recorded", keep_sha256=sha))
            continue
        link = os.readlink(path) if os.path.islink(path) else ""
        out.append(NodeArtifact(path, text, 0o755 if os.access(path, os.X_OK) and not link else 0o644,
                                "recorded", link))
    return tuple(out)


def target(group: str) -> Desired:
    """Desired from the setup record: what `perfgroup setup` was last asked for."""
    check_name("group", group)
    state, problem = load_state(state_path(group))
    if state is None:
        raise RefusedError(f"no usable setup record for group {group} ({state_path(group)} is {problem}): "
                           f"run `perfgroup setup --group {group}` first")
    if state.group != group:
        raise RefusedError(f"{state_path(group)} records group {state.group!r}, not {group!r}; refusing")
    check_dest_path(state.dest)
    try:
        grp.getgrnam(group)
        gid = None
    except KeyError:  # a stateless image without the group: recreate it with the recorded gid
        gid = state.gid if state.gid > 0 else None
    # What setup was asked, as it was typed: the same checks as the command line, so a record
    # cannot ask heal for what setup would refuse.
    return desired_from_input(**options.from_record(state), gid=gid)._replace(artifacts=recorded_artifacts(state))


def source_changed(desired: Desired) -> bool:
    """Whether an upgrade left work: the source perf is another file or other bytes than the record
    says, or the copy is not what setup installed, or lost its capabilities."""
    facts = facts_mod.read(desired._replace(artifacts=(), node_entry=False))
    state = facts.state
    if state is None:
        return True
    return (
        facts.source.path != state.source or facts.source.sha256 != state.source_sha256
        or facts.copy.sha256 != state.copy_sha256 or facts.copy.caps is None
    )


def run(group: str, if_source_changed: bool, on_wait: Callable[[str], None] | None = None) -> str:
    """Heal the group; the one line to print. Raises PerfgroupError (a failed step names what was
    applied before it)."""
    if os.geteuid() != 0:
        raise RefusedError("heal changes groups and file capabilities: run it as root")
    desired = target(group)
    # After a reboot /run holds no record and converge strips the orphaned ACL entry itself; a
    # record whose job died with slurmd (no epilog ran) is revoked here.
    revoked = jobs.revoke_all(group, gone_only=True)
    if if_source_changed and not source_changed(desired):
        return "; ".join(revoked)
    result = converge.SetupResult()
    try:
        converge.setup(desired, dry_run=False, run_checks=False, lock_wait=LOCK_WAIT_SECONDS, result=result,
                       on_wait=on_wait)
    except ConvergeError as error:
        raise PerfgroupError(converge_failure(error, [a.summary for a in result.applied])) from None
    done = result.applied_summary() if result.applied else "converged, nothing to change"
    return "; ".join([*revoked, done])
