"""perfgroup verify."""

from __future__ import annotations

from .. import output
from .common import Exit, command, engine_options, json_option, require_root


@command("verify")
@engine_options("verify")
@json_option
def verify(group: str, dest: str | None, as_json: bool) -> None:
    """Prove it works: run `perf stat -a` through the copy as uid nobody with and without the group."""
    from ..engine import converge
    from ..engine import facts as facts_mod

    desired = facts_mod.audit_target(group, dest)
    require_root("verify")
    result = converge.run_verify(desired)
    if as_json:
        output.emit_json(result.as_dict())
    else:
        for line in result.lines():
            output.say(line)
    if not result.ok:
        raise Exit("failed", "verification failed")
