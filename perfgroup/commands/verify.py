"""perfgroup verify."""

from __future__ import annotations

from .. import output
from .common import Exit, command, engine_options, json_option, require_root


@command("verify")
@engine_options("verify")
@json_option
def verify(group: str, dest: str | None, as_json: bool) -> None:
    """Prove it works: run each workload through the copy as a fresh uid with the group, and as
    another fresh uid without it (the copy must not start; the stock perf must be refused).
    Fresh: no account, no process, no subuid range; each in its own 0700 directory; every
    process of both is killed before verify returns.

    \b
    Workloads: system-wide counting, counting another user's process, system-wide sampling with
    call graphs, kernel symbols in the report, a tracepoint, a large ring buffer (record -m 2048).
    A workload the node cannot support (no tracefs, kptr_restrict=2, lockdown) is "unavailable",
    not a failure. Fails only when a supported workload does not behave as expected.

    \b
    With perf-shell (setup --shell), a session as its helper makes it (capsh: sudo needs a passwd
    entry the fresh uids lack) counts system-wide. On a node without a copy (its directory nosuid,
    or on a filesystem without xattrs; setup --shell installed only perf-shell) verify says there is
    no copy to probe and checks perf-shell instead: the member's session counts system-wide and its
    command, helper and sudoers drop-in are as setup wrote them; the drop-in lets only the group run
    the helper, and the helper run by the non-member without sudo gives nothing.
    """
    from ..engine import converge, members
    from ..engine import facts as facts_mod

    desired = facts_mod.audit_target(group, dest)
    require_root("verify", "runs perf as fresh identities holding the group")
    if facts_mod.group_facts(group).gid is None:  # bad input (exit 2), not a failed verification
        raise members.missing_group(group, facts_mod.other_groups(group))
    result = converge.run_verify(desired)
    if as_json:
        output.emit_json(result.as_dict())
    else:
        for line in result.lines():
            output.say(output.escape(line))
        for line in result.matrix():
            output.say(output.escape(line))
    if not result.ok:
        raise Exit("failed", "verification failed")
