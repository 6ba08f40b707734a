"""perfgroup deploy."""

from __future__ import annotations

from typing import Any

import click

from .. import output
from ..output import escape
from .common import Exit, command, verbose_option


@command("deploy")
@click.option("-i", "--inventory", required=True, metavar="INVENTORY", help="Ansible inventory (see inventory.example).")
@click.option("--hosts", "hosts", default="perf_nodes", show_default=True, metavar="PATTERN",
              help="The hosts the role converges (the play's hosts: pattern).")
@click.option("--limit", metavar="PATTERN", help="Only these hosts or groups (within --hosts).")
@click.option("--check", is_flag=True, help="Ansible check mode: report what would change, change nothing.")
@click.option("--diff", is_flag=True, help="Show what changes on each host.")
@click.option("--forks", type=click.IntRange(1, 1000), help="Hosts in parallel (Ansible --forks).")
@click.option("-e", "--extra-vars", "extra_vars", multiple=True, metavar="VARS",
              help="Passed to ansible-playbook -e (e.g. 'perf_users_members=[\"alice\"]').")
@click.option("--json", "as_json", is_flag=True, help="Result table as JSON.")
@verbose_option("Passed to ansible-playbook (-vv for more); Ansible's messages and Python warnings on stderr.")
def deploy(inventory: str, hosts: str, limit: str | None, check: bool, diff: bool, forks: int | None,
           extra_vars: tuple[str, ...], as_json: bool, verbose: int) -> None:
    """Run the perf_users role across an inventory: progress per host, then a table.

    Uses ansible-playbook over SSH with the perfgroup.hpc collection; nodes need only python3 (the
    engine travels as module_utils). With --check a host with drift shows "would change".
    """
    from .. import ansible_run as deploy_mod

    extra = [arg for value in extra_vars for arg in ("-e", value)]
    extra += ["--check"] if check else []
    extra += ["--diff"] if diff else []
    report = deploy_mod.run("perf_users.yml", inventory, limit, extra, forks, hosts=hosts,
                            no_match_fix=f"add a [{hosts}] group to the inventory or pass --hosts PATTERN",
                            verbose=verbose)
    results = deploy_mod.host_results(report, "converge")
    rows = table_rows(results, check)
    good = bool(rows) and all(not r["error"] and (check or r["verified"]) for r in rows)
    if as_json:
        if diff:
            for row in rows:
                row["diff"] = results[row["host"]].get("diff") or []
        output.emit_json({"ok": good, "check": check, "hosts": rows})
    else:
        for line in [*(diff_lines(results) if diff else []), *table_lines(rows, check)]:
            output.say(line)
    if not good:
        raise Exit("failed")


def table_rows(results: dict[str, dict[str, Any]], check: bool) -> list[dict[str, Any]]:
    """One row per host from the converge module's results (or the failure that replaced them)."""
    rows = []
    for host, data in sorted(results.items()):
        failed = bool(data.get("failed"))
        rows.append({
            "host": host, "changed": bool(data.get("changed")), "caps": ",".join(data.get("caps") or []),
            "verified": bool(data.get("verified")) if not check else None,
            "error": ("unreachable: " if data.get("unreachable") else "") + str(data.get("msg", "")) if failed else "",
        })
    return rows


def diff_lines(results: dict[str, dict[str, Any]]) -> list[str]:
    """--diff: each host's planned changes as unified diffs, a few lines each (the module keeps
    them short: engine plan_diff.py), escaped: contents and names come from the nodes."""
    import difflib  # only with --diff

    lines = []
    for host, data in sorted(results.items()):
        for entry in data.get("diff") or []:
            if not isinstance(entry, dict):
                continue
            before, after = str(entry.get("before", "")).splitlines(), str(entry.get("after", "")).splitlines()
            lines += [escape(line) for line in difflib.unified_diff(
                before, after, f"{host}: {entry.get('before_header', '')}", f"{host}: {entry.get('after_header', '')}",
                lineterm="")]
    return lines


def table_lines(rows: list[dict[str, Any]], check: bool) -> list[str]:
    lines = [f"{'host':20} {'changed':12} {'caps':40} {'verified':9} error"]
    for r in rows:
        verified = "-" if r["verified"] is None else "yes" if r["verified"] else "NO"
        changed = ("would change" if check else "yes") if r["changed"] else "no"
        # Host names and node messages (which quote names from the nodes' group databases): escaped.
        lines.append(f"{escape(r['host']):20} {changed:12} {escape(r['caps']):40} {verified:9} {escape(r['error'])}")
    return lines
