"""The perfgroup command line. Rendering and argument handling only: every rule lives in engine/."""

from __future__ import annotations

import os
import sys
from typing import Any, NoReturn

import click

from . import output
from .engine import VERSION
from .engine.desired import Desired, default_dest, state_path
from .engine.errors import ConvergeError, LockedError, PerfgroupError, RefusedError
from .engine.validate import check_abs_path, check_caps, check_group

EXIT_OK, EXIT_FAILED, EXIT_REFUSED, EXIT_BUSY = 0, 1, 2, 3
LOCK_WAIT = 120.0

SETUP_EPILOG = """\b
Exit codes:
  0  converged and verified (a member profiled system-wide, a non-member was refused)
  1  could not converge or verify (the failed step is named)
  2  refused bad input or an unsafe situation; nothing was changed
  3  another perfgroup run holds the node lock (waited 120 s)
"""

AUDIT_EPILOG = """\b
Exit codes (Nagios plugin convention, worst finding wins):
  0  OK        1  WARNING        2  CRITICAL        3  UNKNOWN (incl. bad arguments)
"""


def fail(code: int, message: str) -> NoReturn:
    output.error(message)
    sys.exit(code)


def require_root(what: str) -> None:
    if os.geteuid() != 0:
        fail(EXIT_REFUSED, f"{what} changes groups and file capabilities: run it as root")


def on_wait(message: str) -> None:
    click.echo(message, err=True)


class NagiosUsageError(click.UsageError):
    exit_code = 3


class NagiosCommand(click.Command):
    """Usage errors exit 3 (UNKNOWN) instead of click's 2, which Nagios would read as CRITICAL."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        try:
            return super().parse_args(ctx, args)
        except click.UsageError as error:
            raise NagiosUsageError(error.message, error.ctx) from None


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(VERSION, prog_name="perfgroup")
def main() -> None:
    """Give a group of users perf (system-wide and kernel profiling) without root.

    perfgroup installs a dedicated copy of perf that only members of one group may run, carrying
    the least file capabilities this kernel needs (cap_perfmon, or cap_sys_admin before Linux
    5.8), keeps perf_event_paranoid >= 2 for everyone else, and proves it by running perf.

    \b
    Typical use, as root:
      perfgroup setup --group perf_users --member alice --member bob
      perfgroup audit                       # read-only, Nagios exit codes, --json
      perfgroup remove --group perf_users   # undo exactly what setup did
    """


def _desired(group: str, dest: str | None, **kwargs: Any) -> Desired:
    check_group(group, kwargs.get("allow_privileged_group", False))
    if dest is not None:
        check_abs_path("--dest", dest)
    return Desired(group=group, dest=dest or default_dest(group), **kwargs)


def _desired_to_read(group: str, dest: str | None) -> Desired:
    """For read commands: an existing (even privileged) group; dest from the setup record."""
    from .engine.facts import load_state

    check_group(group, allow_privileged=True)
    if dest is None:
        state, _ = load_state(state_path(group))
        dest = state.dest if state is not None else default_dest(group)
    return _desired(group, dest, allow_privileged_group=True)


def _caps_option(caps: str, allow_escalation: bool) -> tuple[frozenset[str] | None, bool]:
    if caps.strip().lower() == "auto":
        return None, True
    return check_caps(caps, allow_escalation), False


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


@main.command(epilog=SETUP_EPILOG)
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
    from .engine import converge

    try:
        override, auto = _caps_option(caps, allow_escalation_caps) if caps else (None, False)
        desired = _desired(
            group, dest, members=members, gid=gid, source=source, caps_override=override, caps_auto=auto,
            keep_paranoid=keep_paranoid, install_perf=install_perf, allow_privileged_group=allow_privileged_group,
            allow_escalation_caps=allow_escalation_caps,
        )
        if source is not None:
            check_abs_path("--perf", source)
    except RefusedError as error:
        fail(EXIT_REFUSED, str(error))
    require_root("setup")
    result = converge.SetupResult()
    from .engine.apply import node_lock

    code = EXIT_OK
    error_text = None
    try:
        # Planning reads only, so a refusal or a converged node takes no lock and writes nothing.
        facts, plan = converge.prepare(desired, dry_run=True, result=result)
        if plan is None:  # no perf on the node, and --install-perf
            command = " ".join(facts.source.install_command or ())
            if dry_run:
                if as_json:
                    output.emit_json({"changed": False, "dry_run": True, "would_install_perf": command})
                else:
                    output.say(f"would install perf with: {command}, then plan the rest")
                return
        if plan is not None and not as_json:
            _print_plan(plan, dry_run)
        if dry_run:
            result.plan = plan
            if as_json:
                output.emit_json(_setup_json(result, dry_run, None))
            return
        if plan is not None and not plan.actions:
            result.plan = plan
            converge.execute(desired, facts, plan, result, run_checks=not no_verify)
        else:
            with node_lock(LOCK_WAIT, on_wait):
                # Facts again under the lock: another run may have changed the node meanwhile.
                facts, plan = converge.prepare(desired, dry_run=False, result=result)
                assert plan is not None
                result.plan = plan
                converge.execute(desired, facts, plan, result, run_checks=not no_verify)
    except LockedError as error:
        fail(EXIT_BUSY, str(error))
    except RefusedError as error:
        if as_json:
            output.emit_json(_setup_json(result, dry_run, str(error)))
        fail(EXIT_REFUSED, str(error))
    except ConvergeError as error:
        code, error_text = EXIT_FAILED, f"could not converge at step {error}"
    if result.verify is not None and not result.verify.ok and code == EXIT_OK:
        code, error_text = EXIT_FAILED, "verification failed: " + "; ".join(result.verify.lines())
    if as_json:
        output.emit_json(_setup_json(result, dry_run, error_text))
    else:
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


@main.command(cls=NagiosCommand, epilog=AUDIT_EPILOG)
@click.option("--group", default="perf_users", show_default=True, help="The perf group to audit.")
@click.option("--dest", metavar="PATH", help="Privileged perf path [default: from the setup record, else the default].")
@click.option("--functional", is_flag=True, help="Also run perf as a member and as a non-member (needs root).")
@click.option("-i", "--inventory", metavar="INVENTORY", help="Audit every host of an Ansible inventory instead of this node.")
@click.option("--limit", metavar="PATTERN", help="With -i: only these hosts.")
@click.option("--json", "as_json", is_flag=True, help="Findings as JSON for monitoring.")
def audit(group: str, dest: str | None, functional: bool, inventory: str | None, limit: str | None, as_json: bool) -> None:
    """Check this node, read-only: group, copy, mode, capabilities, paths, sysctls.

    Each finding has a stable id, a severity (ok/warning/critical), a message and the command that
    fixes it. Without --functional it starts no process and needs no root.

    With -i INVENTORY it audits every host over Ansible (one module call per host) and adds fleet
    checks: same gid everywhere, same perf build per OS, same capabilities per kernel, same local
    members. An unreachable host is UNKNOWN.
    """
    if inventory is not None:
        _fleet_audit(group, inventory, limit, as_json)
        return
    from .engine import facts as facts_mod
    from .engine import findings as findings_mod

    try:
        desired = _desired_to_read(group, dest)
    except RefusedError as error:
        fail(3, str(error))
    facts = facts_mod.read(desired)
    found = findings_mod.audit(facts, desired)
    if functional:
        found.extend(_functional_findings(desired))
    code = findings_mod.exit_code(found)
    if as_json:
        output.emit_json({
            "group": group, "dest": desired.dest, "status": findings_mod.worst(found), "exit_code": code,
            "findings": [f.as_dict() for f in found],
        })
    else:
        for finding in found:
            output.say(f"{output.severity_tag(finding.severity)} {finding.id:26} {finding.message}")
            if finding.severity != "ok" and finding.fix:
                output.say(f"{'':35}fix: {finding.fix}")
        output.say(f"status: {findings_mod.worst(found).upper()}")
    sys.exit(code)


def _fleet_audit(group: str, inventory: str, limit: str | None, as_json: bool) -> None:
    from . import deploy as deploy_mod
    from . import fleet

    try:
        check_group(group, allow_privileged=True)
        report = deploy_mod.run("audit.yml", inventory, limit, ["-e", f"perf_users_group={group}"], None)
    except (RefusedError, deploy_mod.DeployError) as error:
        fail(3, str(error))
    results = deploy_mod.host_results(report, "Read the perfgroup audit of this node")
    reports: dict[str, Any] = {}
    errors: dict[str, str] = {}
    for host, data in results.items():
        audit_data = data.get("ansible_facts", {}).get("perf_users_audit")
        reports[host] = audit_data
        if audit_data is None:
            errors[host] = "unreachable" if data.get("unreachable") else str(data.get("msg", "failed"))[:300]
    fleet_found = fleet.fleet_findings(reports, errors)
    severities = [f.severity for f in fleet_found] + [r["status"] for r in reports.values() if r]
    status = fleet.worst(severities)
    if as_json:
        output.emit_json({
            "status": status, "exit_code": fleet.EXIT[status], "fleet": [f.as_dict() for f in fleet_found],
            "hosts": {h: r if r else {"status": "unknown", "error": errors.get(h)} for h, r in sorted(reports.items())},
        })
    else:
        for host, host_report in sorted(reports.items()):
            host_status = host_report["status"] if host_report else "unknown"
            output.say(f"{output.severity_tag(host_status)} {host}")
            for finding in (host_report or {}).get("findings", []):
                if finding["severity"] != "ok":
                    output.say(f"    {finding['severity']:8} {finding['id']:26} {finding['message']}")
        for finding in fleet_found:
            output.say(f"{output.severity_tag(finding.severity)} {finding.id:26} {finding.message}")
        output.say(f"status: {status.upper()}")
    sys.exit(fleet.EXIT[status])


def _functional_findings(desired: Desired) -> list[Any]:
    from .engine import converge
    from .engine.findings import CRITICAL, OK, UNKNOWN, Finding

    if os.geteuid() != 0:
        return [Finding("verify.skipped", UNKNOWN, "--functional needs root to switch to an unprivileged identity")]
    try:
        result = converge.run_verify(desired)
    except PerfgroupError as error:
        return [Finding("verify.member", CRITICAL, str(error), f"perfgroup setup --group {desired.group}")]
    lines = result.lines()
    return [
        Finding("verify.member", OK if result.member_ok else CRITICAL, lines[0], f"perfgroup setup --group {desired.group}"),
        Finding("verify.non_member", OK if result.non_member_refused else CRITICAL, lines[1], f"chmod o-rwx {desired.dest}"),
    ]


@main.command(epilog="\b\nExit codes:\n  0  verified   1  verification failed   2  refused (bad input, not root)")
@click.option("--group", default="perf_users", show_default=True)
@click.option("--dest", metavar="PATH", help="Privileged perf path [default: from the setup record].")
@click.option("--json", "as_json", is_flag=True)
def verify(group: str, dest: str | None, as_json: bool) -> None:
    """Prove it works: run `perf stat -a` through the copy as uid nobody with and without the group."""
    from .engine import converge

    try:
        desired = _desired_to_read(group, dest)
    except RefusedError as error:
        fail(EXIT_REFUSED, str(error))
    require_root("verify")
    try:
        result = converge.run_verify(desired)
    except PerfgroupError as error:
        fail(EXIT_FAILED, str(error))
    if as_json:
        output.emit_json(result.as_dict())
    else:
        for line in result.lines():
            output.say(line)
    if not result.ok:
        fail(EXIT_FAILED, "verification failed")


@main.command(epilog=SETUP_EPILOG.replace("converged and verified (a member profiled system-wide, a non-member was refused)", "removed (or nothing left to remove)"))
@click.option("--group", default="perf_users", show_default=True)
@click.option("--dry-run", is_flag=True, help="Print what would be removed.")
@click.option("--json", "as_json", is_flag=True)
def remove(group: str, dry_run: bool, as_json: bool) -> None:
    """Undo what setup recorded: the copy, its drop-ins, members it added, the group if it made it.

    Everything setup did not create is kept (an adopted group, the live perf_event_paranoid).
    Without a usable setup record it refuses rather than guess.
    """
    from .engine import remove as remove_mod
    from .engine.apply import node_lock

    try:
        check_group(group, allow_privileged=True)
    except RefusedError as error:
        fail(EXIT_REFUSED, str(error))
    require_root("remove")
    try:
        remove_mod.load(group)  # refuse before taking the lock, so a refusal writes nothing
        if dry_run:
            result = remove_mod.remove(group, dry_run=True)
        else:
            with node_lock(LOCK_WAIT, on_wait):
                result = remove_mod.remove(group, dry_run=False)
    except LockedError as error:
        fail(EXIT_BUSY, str(error))
    except RefusedError as error:
        fail(EXIT_REFUSED, str(error))
    except ConvergeError as error:
        fail(EXIT_FAILED, f"could not finish removing at step {error}")
    if as_json:
        output.emit_json({
            "dry_run": dry_run, "changed": bool(result.done),
            "steps": [s.summary for s in result.steps], "done": [s.summary for s in result.done], "notes": result.notes,
        })
        return
    for step in result.steps:
        mark = "would" if dry_run else ("done" if step in result.done else "skip")
        output.say(f"  {mark:5} {step.summary}")
    for note in result.notes:
        output.say(f"note: {note}")


@main.command(epilog="\b\nExit codes:\n  0  every targeted host converged and verified\n  1  some host failed, was unreachable or did not verify\n  2  bad arguments, no inventory, no ansible-playbook")
@click.option("-i", "--inventory", required=True, metavar="INVENTORY", help="Ansible inventory (see inventory.example).")
@click.option("--limit", metavar="PATTERN", help="Only these hosts or groups.")
@click.option("--check", is_flag=True, help="Ansible check mode: report what would change, change nothing.")
@click.option("--diff", is_flag=True, help="Show what changes on each host.")
@click.option("--forks", type=click.IntRange(1, 1000), help="Hosts in parallel (Ansible --forks).")
@click.option("-e", "--extra-vars", "extra_vars", multiple=True, metavar="VARS",
              help="Passed to ansible-playbook -e (e.g. 'perf_users_members=[\"alice\"]').")
@click.option("--json", "as_json", is_flag=True, help="Result table as JSON.")
def deploy(inventory: str, limit: str | None, check: bool, diff: bool, forks: int | None,
           extra_vars: tuple[str, ...], as_json: bool) -> None:
    """Run the perf_users role across an inventory: progress per host, then a table.

    Uses ansible-playbook over SSH; nodes need only python3 (the engine travels as module_utils).
    """
    from . import deploy as deploy_mod

    extra = [arg for value in extra_vars for arg in ("-e", value)]
    extra += ["--check"] if check else []
    extra += ["--diff"] if diff else []
    try:
        report = deploy_mod.run("perf_users.yml", inventory, limit, extra, forks)
    except deploy_mod.DeployError as error:
        fail(EXIT_REFUSED, str(error))
    rows = []
    for host, data in sorted(deploy_mod.host_results(report, "Converge the privileged perf users group").items()):
        failed = bool(data.get("failed"))
        rows.append({
            "host": host, "changed": bool(data.get("changed")), "caps": ",".join(data.get("caps") or []),
            "verified": bool(data.get("verified")) if not check else None,
            "error": ("unreachable: " if data.get("unreachable") else "") + str(data.get("msg", "")) if failed else "",
        })
    good = bool(rows) and all(not r["error"] and (check or r["verified"]) for r in rows)
    if as_json:
        output.emit_json({"ok": good, "check": check, "hosts": rows})
    else:
        output.say(f"{'host':20} {'changed':8} {'caps':40} {'verified':9} error")
        for r in rows:
            verified = "-" if r["verified"] is None else "yes" if r["verified"] else "NO"
            output.say(f"{r['host']:20} {'yes' if r['changed'] else 'no':8} {r['caps']:40} {verified:9} {r['error']}")
    if not good:
        sys.exit(EXIT_FAILED)


@main.group()
def members() -> None:
    """List, add or remove members of the perf group (local groups; directory groups are read-only)."""


@members.command("list")
@click.option("--group", default="perf_users", show_default=True)
@click.option("--json", "as_json", is_flag=True)
def members_list(group: str, as_json: bool) -> None:
    """Members of the group (explicit and by primary gid)."""
    from .engine import members as members_mod

    try:
        data = members_mod.listing(group)
    except RefusedError as error:
        fail(EXIT_REFUSED, str(error))
    if as_json:
        output.emit_json(data)
        return
    output.say(f"{group} (gid {data['gid']}, {data['source']}):")
    for name in data["members"]:  # type: ignore[attr-defined]
        output.say(f"  {name}")
    for name in data["primary_members"]:  # type: ignore[attr-defined]
        output.say(f"  {name} (primary group)")


def _change_members(group: str, users: tuple[str, ...], add: bool) -> None:
    from .engine import members as members_mod
    from .engine.apply import node_lock

    require_root("members")
    try:
        members_mod.check(group, list(users))  # refuse before taking the lock
        with node_lock(LOCK_WAIT, on_wait):
            changed = members_mod.change(group, list(users), add)
    except LockedError as error:
        fail(EXIT_BUSY, str(error))
    except RefusedError as error:
        fail(EXIT_REFUSED, str(error))
    except ConvergeError as error:
        fail(EXIT_FAILED, str(error))
    verb = "added" if add else "removed"
    output.say(f"{verb}: {', '.join(changed)}" if changed else "unchanged")
    if add and changed:
        output.say("note: a membership applies from the member's next login (or `newgrp`)")


@members.command("add")
@click.option("--group", default="perf_users", show_default=True)
@click.argument("users", nargs=-1, required=True)
def members_add(group: str, users: tuple[str, ...]) -> None:
    """Add USERS to the group."""
    _change_members(group, users, add=True)


@members.command("remove")
@click.option("--group", default="perf_users", show_default=True)
@click.argument("users", nargs=-1, required=True)
def members_remove(group: str, users: tuple[str, ...]) -> None:
    """Remove USERS from the group."""
    _change_members(group, users, add=False)
