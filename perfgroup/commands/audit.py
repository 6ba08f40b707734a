"""perfgroup audit."""

from __future__ import annotations

import json
import os
import sys
from typing import Any

import click

from .. import output
from ..engine.desired import Desired
from ..engine.errors import PerfgroupError, RefusedError
from ..engine.validate import check_group
from .common import (
    AUDIT_EPILOG,
    NagiosCommand,
    fail,
)


@click.command(cls=NagiosCommand, epilog=AUDIT_EPILOG)
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
        _fleet_audit(group, inventory, limit, as_json, dest, functional)
        return
    from ..engine import facts as facts_mod
    from ..engine import findings as findings_mod

    try:
        desired = facts_mod.audit_target(group, dest)
    except RefusedError as error:
        fail(3, str(error))
    facts = facts_mod.read(desired)
    found = findings_mod.audit(facts, desired)
    if functional:
        found.extend(_functional_findings(desired))
    code = findings_mod.exit_code(found)
    if as_json:
        output.emit_json(findings_mod.report(facts, desired, found))
    else:
        for finding in found:
            output.say(f"{output.severity_tag(finding.severity)} {finding.id:26} {finding.message}")
            if finding.severity != "ok" and finding.fix:
                output.say(f"{'':35}fix: {finding.fix}")
        output.say(f"status: {findings_mod.worst(found).upper()}")
    sys.exit(code)


def _fleet_audit(group: str, inventory: str, limit: str | None, as_json: bool, dest: str | None = None,
                 functional: bool = False) -> None:
    from .. import ansible_run as deploy_mod
    from .. import fleet

    try:
        check_group(group, allow_privileged=True)
        variables = {"perf_users_group": group, "perf_users_dest": dest or "", "perf_users_audit_functional": functional}
        report = deploy_mod.run("audit.yml", inventory, limit, ["-e", json.dumps(variables)], None)
    except (RefusedError, deploy_mod.DeployError) as error:
        fail(3, str(error))
    results = deploy_mod.host_results(report, "audit")
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
    from ..engine import converge
    from ..engine.findings import CRITICAL, OK, UNKNOWN, Finding

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


