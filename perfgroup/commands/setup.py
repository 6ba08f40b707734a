"""perfgroup setup."""

from __future__ import annotations

from typing import Any

import click

from .. import output
from ..engine.errors import ConvergeError, LockedError, RefusedError
from ..engine.validate import desired_from_input
from .common import (
    EXIT_BUSY,
    EXIT_FAILED,
    EXIT_OK,
    EXIT_REFUSED,
    LOCK_WAIT,
    SETUP_EPILOG,
    fail,
    on_wait,
    require_root,
)


def _print_plan(plan: Any, dry_run: bool) -> None:
    output.say(f"capabilities: {plan.caps.text()}  ({plan.caps.reason})")
    for note in plan.notes:
        output.say(f"note: {note}")
    if not plan.actions:
        output.say(output.paint("nothing to change: the node is converged", "green"))
        return
    output.say(("would change" if dry_run else "plan") + f" ({len(plan.actions)} steps):")
    for number, action in enumerate(plan.actions, 1):
        output.say(f"  {number}. {action.summary}")
        output.say(f"     why: {action.why}")


@click.command(epilog=SETUP_EPILOG)
@click.option("--group", default="perf_users", show_default=True, help="Group whose members may run the privileged perf.")
@click.option("--member", "members", multiple=True, metavar="USER", help="Add USER to the group (repeatable).")
@click.option("--gid", type=int, help="Numeric gid for a new group; keep it the same on every node.")
@click.option("--perf", "source", metavar="SRC", help="perf to copy (default: the system perf; wrappers are followed).")
@click.option("--dest", metavar="PATH", help="Where the privileged copy goes [default: /usr/local/libexec/perfgroup/GROUP/perf].")
@click.option("--caps", default=None, metavar="auto|LIST",
              help="auto (default: least set for this kernel) or e.g. cap_perfmon,cap_syslog,cap_ipc_lock.")
@click.option("--keep-paranoid", is_flag=True, help="Leave kernel.perf_event_paranoid as it is, live and at boot.")
@click.option("--install-perf", is_flag=True, help="Install the distribution's perf package if perf is missing.")
@click.option("--adopt-privileged-group", "allow_privileged_group", is_flag=True,
              help="Allow a group such as wheel or sudo: ALL its members get kernel profiling rights.")
@click.option("--allow-escalation-caps", is_flag=True,
              help="Allow --caps that let members become root (cap_setuid, cap_dac_override, ...). Dangerous.")
@click.option("--dry-run", is_flag=True, help="Print the plan and change nothing.")
@click.option("--no-verify", is_flag=True, help="Skip the functional perf run after converging.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable result on stdout.")
def setup(group: str, members: tuple[str, ...], gid: int | None, source: str | None, dest: str | None,
          caps: str | None, keep_paranoid: bool, install_perf: bool, allow_privileged_group: bool,
          allow_escalation_caps: bool, dry_run: bool, no_verify: bool, as_json: bool) -> None:
    """Create the group, install the privileged perf copy, set its capabilities, verify.

    \b
    What it changes (each only if needed; the plan is printed first):
      - group GROUP (created with groupadd, or adopted if getent knows it: LDAP/SSSD groups
        are never shadowed by a local copy)
      - /usr/local/libexec/perfgroup/GROUP/perf: root:GROUP 0750 with file capabilities
      - /etc/profile.d/perfgroup-GROUP.sh: members get that perf first on PATH (next login)
      - kernel.perf_event_paranoid raised to 2 if lower, persisted in
        /etc/sysctl.d/90-perfgroup-GROUP.conf (unless --keep-paranoid)
      - /var/lib/perfgroup/GROUP.json: what was done, for audit and remove
    The packaged perf is never modified. A second run on a converged node changes nothing.
    """
    from ..engine import converge

    try:
        desired = desired_from_input(
            group, dest, members, gid, source, caps, keep_paranoid, install_perf,
            allow_privileged_group, allow_escalation_caps,
        )
    except RefusedError as error:
        fail(EXIT_REFUSED, str(error))
    require_root("setup")
    result = converge.SetupResult()
    code, error_text = EXIT_OK, None
    try:
        converge.setup(
            desired, dry_run, run_checks=not no_verify, lock_wait=LOCK_WAIT, result=result,
            on_plan=None if as_json else _print_plan, on_wait=on_wait,
        )
    except LockedError as error:
        fail(EXIT_BUSY, str(error))
    except RefusedError as error:
        if as_json:
            output.emit_json(_setup_json(result, dry_run, str(error)))
        fail(EXIT_REFUSED, str(error))
    except ConvergeError as error:
        code, error_text = EXIT_FAILED, f"could not converge at step {error}"
    if dry_run and result.would_install:
        command = " ".join(result.would_install)
        if as_json:
            output.emit_json({"changed": False, "dry_run": True, "would_install_perf": command})
        else:
            output.say(f"would install perf with: {command}, then plan the rest")
        return
    if result.verify is not None and not result.verify.ok and code == EXIT_OK:
        code, error_text = EXIT_FAILED, "verification failed: " + "; ".join(result.verify.lines())
    if as_json:
        output.emit_json(_setup_json(result, dry_run, error_text))
    elif not dry_run:
        _print_outcome(result)
    if error_text:
        fail(code, error_text)


def _setup_json(result: Any, dry_run: bool, error: str | None) -> dict[str, Any]:
    plan = result.plan
    return {
        "changed": result.changed,
        "dry_run": dry_run,
        "caps": sorted(plan.caps.caps) if plan else None,
        "caps_reason": plan.caps.reason if plan else None,
        "group_origin": plan.group_origin if plan else None,
        "plan": [a.as_dict() for a in plan.actions] if plan else [],
        "applied": [a.as_dict() for a in result.applied],
        "notes": list(plan.notes) if plan else [],
        "verify": result.verify.as_dict() if result.verify else None,
        "error": error,
    }


def _print_outcome(result: Any) -> None:
    if result.installed_perf:
        output.say(f"installed perf: {' '.join(result.installed_perf)}")
    if result.applied:
        output.say(output.paint(f"changed: {len(result.applied)} steps applied", "yellow"))
    elif result.state_written:
        output.say("changed: setup record refreshed")
    else:
        output.say("unchanged")
    if result.verify is not None:
        for line in result.verify.lines():
            output.say(f"verify: {line}")
        if result.verify.ok:
            output.say(output.paint("verified", "green", bold=True))


