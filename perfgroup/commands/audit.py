"""perfgroup audit."""

from __future__ import annotations

import json
import os
from typing import Any, NoReturn

import click

from .. import output, prometheus_audit
from ..engine import errors
from ..engine.errors import RefusedError
from ..engine.validate import check_group
from .common import Exit, command, engine_options, json_option, verbose_option

STALE_AFTER = int(prometheus_audit.Settings._field_defaults["stale_after"])


@command("audit")
@engine_options("audit")
@click.option("-i", "--inventory", metavar="INVENTORY", help="Audit every host of an Ansible inventory instead of this node.")
@click.option("--limit", metavar="PATTERN", help="With -i: only these hosts.")
@click.option("--prometheus", metavar="URL", help="Audit the fleet from what its nodes' textfiles exported to this "
              "Prometheus (HTTP API) instead of this node: the fleet checks of -i plus stale, silent and unseen nodes.")
@click.option("--selector", default="{}", show_default=True, metavar="'{LABEL=\"V\",...}'",
              help="With --prometheus: only nodes whose series match these label matchers, e.g. '{cluster=\"a\"}' "
              "(default: every node_exporter).")
@click.option("--bearer-token-file", type=click.Path(dir_okay=False), metavar="FILE",
              help=f"With --prometheus: send this bearer token (default: ${prometheus_audit.TOKEN_ENV}).")
@click.option("--basic-auth-file", type=click.Path(dir_okay=False), metavar="FILE",
              help=f"With --prometheus: USER:PASSWORD on one line (default: ${prometheus_audit.BASIC_AUTH_ENV}).")
@click.option("--ca-file", type=click.Path(dir_okay=False), metavar="FILE",
              help="With --prometheus: CA certificates (PEM) to trust for https.")
@click.option("--timeout", type=float, default=30.0, show_default=True, metavar="SECONDS",
              help="With --prometheus: per query.")
@click.option("--max-named", type=click.IntRange(1, 1000), default=20, show_default=True, metavar="N",
              help="With --prometheus: name at most N nodes per finding (the others are counted).")
@click.option("--stale-after", type=click.IntRange(60, 7 * 86400), default=STALE_AFTER, show_default=True,
              metavar="SECONDS", help="With --prometheus: a node whose last audit is older is fleet.stale. The "
              "default is three runs of the 5-minute textfile timer, as the PerfgroupTextfileStale alert "
              "(monitoring/prometheus/perfgroup-rules.yml); a site that changes one changes both.")
@json_option
@verbose_option("With -i: passed to ansible-playbook (-vv for more); Ansible's messages and Python warnings on stderr.")
def audit(group: str, dest: str | None, format: str, textfile_dir: str | None, root: str | None, functional: bool,
          inventory: str | None, limit: str | None, prometheus: str | None, selector: str,
          bearer_token_file: str | None, basic_auth_file: str | None, ca_file: str | None, timeout: float,
          max_named: int, stale_after: int, as_json: bool, verbose: int) -> None:
    """Check this node, read-only: group, copy, mode, capabilities, paths, sysctls.

    Each finding has a stable id, a severity (ok/warning/critical), a message and the command that
    fixes it. Without --functional it starts no process and needs no root.

    With -i INVENTORY it audits every host over Ansible (one module call per host) and adds fleet
    checks: same gid everywhere, same perf build per OS, same capabilities per kernel, same local
    members. An unreachable host is UNKNOWN.

    With --prometheus URL it asks Prometheus instead (every node's textfile timer exports its audit):
    the same fleet checks and exit codes as -i, counted in PromQL, plus nodes whose audit is stale,
    that stopped reporting, or whose node_exporter never carried perfgroup metrics. No SSH, so no
    --functional.

    With --root DIR it checks a node image (needs root: it runs the image's python3 chrooted into
    DIR): the files setup put there; the live kernel state is checked on the booted nodes.
    """
    if prometheus is not None:
        unused = [name for name, given in (("-i", inventory is not None), ("--format", format != "text"),
                                           ("--textfile-dir", textfile_dir is not None), ("--root", root is not None),
                                           ("--dest", dest is not None), ("--functional", functional)) if given]
        if unused:
            raise RefusedError(f"audit --prometheus does not take {', '.join(unused)} (it reads what the nodes' "
                               "textfile timers exported; --functional runs perf, which needs -i over SSH)")
        settings = prometheus_audit.Settings(group, selector, stale_after=float(stale_after), cap=max_named)
        _prometheus_audit(settings, prometheus, bearer_token_file, basic_auth_file, ca_file, timeout, as_json)
    stray = [name for name, given in (("--selector", selector != "{}"), ("--bearer-token-file", bearer_token_file),
                                      ("--basic-auth-file", basic_auth_file), ("--ca-file", ca_file),
                                      ("--timeout", timeout != 30.0), ("--max-named", max_named != 20),
                                      ("--stale-after", stale_after != STALE_AFTER)) if given]
    if stray:
        raise RefusedError(f"{', '.join(stray)}: only with --prometheus URL")
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
    hosts = {h: r if r else {"status": "unknown", "error": failures.get(h)} for h, r in sorted(reports.items())}
    _print_fleet([f.as_dict() for f in fleet_found], hosts,
                 [f.severity for f in fleet_found] + [r["status"] for r in reports.values() if r], as_json)


def _prometheus_audit(settings: prometheus_audit.Settings, url: str, token_file: str | None, basic_file: str | None,
                      ca_file: str | None, timeout: float, as_json: bool) -> NoReturn:
    check_group(settings.group, allow_privileged=True)
    auth = prometheus_audit.authorization(token_file, basic_file, os.environ)
    client = prometheus_audit.Client(url, auth, ca_file, timeout)
    report, _ = prometheus_audit.run(settings, client.query)
    nodes = report["nodes"]
    _print_fleet(report["fleet"], report["hosts"], [report["status"]], as_json, {"nodes": nodes, "source": url},
                 f"nodes: {nodes['reporting']} reporting, {nodes['node_exporter']} with node_exporter; "
                 + ", ".join(f"{severity} {nodes[severity]}" for severity in ("ok", "warning", "critical", "unknown")))


def _print_fleet(fleet_found: list[dict[str, Any]], hosts: dict[str, Any], severities: list[str], as_json: bool,
                 extra: dict[str, Any] | None = None, summary: str = "") -> NoReturn:
    """The fleet report of -i and --prometheus: each named host's findings that are not ok, the
    fleet findings, the status (exit code: the worst)."""
    from .. import fleet

    status = fleet.worst(severities)
    if as_json:
        output.emit_json({"status": status, "exit_code": errors.exit_code("audit", status), "fleet": fleet_found,
                          "hosts": hosts, **(extra or {})})
    else:
        for host, host_report in hosts.items():
            output.say(f"{output.severity_tag(host_report['status'])} {output.escape(host)}")
            for finding in host_report.get("findings", []):
                if finding["severity"] != "ok":
                    text = finding.get("message") or (f"fix: {finding['fix']}" if finding.get("fix") else "")
                    output.say(f"    {finding['severity']:8} {output.escape(str(finding['id'])):26} "
                               f"{output.escape(str(text))}")
        for finding in fleet_found:
            output.say(f"{output.severity_tag(finding['severity'])} {finding['id']:26} "
                       f"{output.escape(finding['message'])}")
        if summary:
            output.say(summary)
        output.say(f"status: {status.upper()}")
    raise Exit(status)
