"""perfgroup audit."""

from __future__ import annotations

import json
import os
from typing import Any, NoReturn

import click

from .. import output
from ..engine import errors
from ..engine.errors import RefusedError
from ..engine.validate import check_group
from .common import Exit, command, engine_options, json_option, verbose_option


@command("audit")
@engine_options("audit")
@click.option("-i", "--inventory", metavar="INVENTORY", help="Audit every host of an Ansible inventory instead of this node.")
@click.option("--limit", metavar="PATTERN", help="With -i: only these hosts.")
@json_option
@verbose_option("With -i: passed to ansible-playbook (-vv for more); Ansible's messages and Python warnings on stderr.")
def audit(group: str, dest: str | None, format: str, textfile_dir: str | None, root: str | None, functional: bool,
          inventory: str | None, limit: str | None, as_json: bool, verbose: int) -> None:
    """Check this node, read-only: group, copy, mode, capabilities, paths, sysctls.

    Each finding has a stable id, a severity (ok/warning/critical), a message and the command that
    fixes it. Without --functional it starts no process and needs no root.

    With -i INVENTORY it audits every host over Ansible (one module call per host) and adds fleet
    checks: same gid everywhere, same perf build per OS, same capabilities per kernel, same local
    members. An unreachable host is UNKNOWN.

    With --root DIR it checks a node image (needs root: it runs the image's python3 chrooted into
    DIR): the files setup put there; the live kernel state is checked on the booted nodes.
    """
    if inventory is not None:
        # The fleet report is text or --json; these options shape a single node's output.
        unused = [name for name, given in (("--format", format != "text"), ("--textfile-dir", textfile_dir is not None),
                                           ("--root", root is not None)) if given]
        if unused:
            raise RefusedError(f"audit -i does not take {', '.join(unused)} (it audits each node over Ansible: "
                               "use --json for a machine-readable fleet report)")
        _fleet_audit(group, inventory, limit, as_json, dest, functional, verbose)
        return
    fmt = "json" if as_json else format
    if root is not None:
        if functional:
            raise RefusedError("--functional runs perf, which an image cannot: audit the booted nodes")
        _print_report(_image_report(root, group, dest), fmt, group, textfile_dir)
    from ..engine import audit

    extra = None
    if functional:
        from ..engine import converge  # only here: converge pulls in apply, subprocess, dataclasses

        extra = converge.functional_findings
    _print_report(audit.report(group, dest, extra=extra)[0], fmt, group, textfile_dir)


def _image_report(root: str, group: str, dest: str | None) -> dict[str, Any]:
    from .. import image_root
    check_group(group, allow_privileged=True)
    if os.geteuid() != 0:
        raise RefusedError("audit --root enters the image with chroot: run it as root")
    answer = image_root.run(root, {"command": "audit", "group": group, "dest": dest})
    image_root.raise_for(answer, str(answer.get("error")))
    return {k: v for k, v in answer.items() if k != "outcome"}


def _print_report(report: dict[str, Any], fmt: str, group: str, textfile_dir: str | None) -> NoReturn:
    """The report in the chosen format, then exit with the worst finding's code."""
    if fmt != "text":
        import time

        from ..engine.report_formats import machine_output

        click.echo(machine_output(fmt, report, group, textfile_dir, time.time()), nl=False)
    else:
        from ..engine.report_formats import text

        for line in text(report, output.severity_tag).splitlines():
            output.say(line)
    raise Exit(str(report["status"]))


def _fleet_audit(group: str, inventory: str, limit: str | None, as_json: bool, dest: str | None = None,
                 functional: bool = False, verbose: int = 0) -> None:
    from .. import ansible_run as deploy_mod
    from .. import fleet

    check_group(group, allow_privileged=True)
    variables = {"perf_users_group": group, "perf_users_dest": dest or "", "perf_users_functional": functional}
    report = deploy_mod.run("audit.yml", inventory, limit, ["-e", json.dumps(variables)], None, verbose=verbose)
    results = deploy_mod.host_results(report, "audit")
    reports: dict[str, Any] = {}
    failures: dict[str, str] = {}
    for host, data in results.items():
        audit_data = data.get("ansible_facts", {}).get("perf_users_audit")
        reports[host] = audit_data
        if audit_data is None:
            failures[host] = "unreachable" if data.get("unreachable") else str(data.get("msg", "failed"))[:300]
    fleet_found = fleet.fleet_findings(reports, failures)
    severities = [f.severity for f in fleet_found] + [r["status"] for r in reports.values() if r]
    status = fleet.worst(severities)
    if as_json:
        output.emit_json({
            "status": status, "exit_code": errors.exit_code("audit", status), "fleet": [f.as_dict() for f in fleet_found],
            "hosts": {h: r if r else {"status": "unknown", "error": failures.get(h)} for h, r in sorted(reports.items())},
        })
    else:
        for host, host_report in sorted(reports.items()):
            host_status = host_report["status"] if host_report else "unknown"
            output.say(f"{output.severity_tag(host_status)} {output.escape(host)}")
            for finding in (host_report or {}).get("findings", []):
                if finding["severity"] != "ok":
                    output.say(f"    {finding['severity']:8} {output.escape(str(finding['id'])):26} "
                               f"{output.escape(str(finding['message']))}")
        for finding in fleet_found:
            output.say(f"{output.severity_tag(finding.severity)} {finding.id:26} {output.escape(finding.message)}")
        output.say(f"status: {status.upper()}")
    raise Exit(status)
