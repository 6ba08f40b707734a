"""The monitoring the repository ships, checked with the real tools (Debian's `prometheus` and
`prometheus-node-exporter`): `promtool check rules` and `promtool test rules` on
monitoring/prometheus/, `promtool check metrics` on real audit output from a throwaway node, and
the Grafana dashboard's every query against a real Prometheus on 127.0.0.1 that scrapes real
node_exporters (one per simulated node, each with its own textfile directory) and evaluates the
rules. Every process is stopped by the PID this test started."""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import PERFGROUP, integration_possible
from node import Node
from promlab import Processes, alerts, query, tool, wait_for

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
RULES = REPO / "monitoring" / "prometheus" / "perfgroup-rules.yml"
RULE_TESTS = REPO / "monitoring" / "prometheus" / "perfgroup-rules.test.yml"
DASHBOARD = REPO / "monitoring" / "grafana" / "perfgroup-fleet.json"
NODE_CLI = "/usr/local/sbin/perfgroup-node"
DEST = "/usr/local/libexec/perfgroup/perf_users/perf"
TEXTFILE = "/var/lib/prometheus/node-exporter"
# The per-node budget docs/monitoring.md writes down: series per group besides perfgroup_check.
FIXED_SERIES = 4 + 1 + 1 + 1 + 1 + 1 + 1 + 1 + 1  # findings x4, status, job grants, timestamp, group, members count/digest, build, caps


def promtool(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([tool("promtool"), *args], input=stdin, capture_output=True, text=True, timeout=120, check=False)


def test_promtool_check_rules() -> None:
    result = promtool("check", "rules", str(RULES))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS: 17 rules found" in result.stdout


def test_promtool_test_rules_fires_every_alert_and_only_where_expected() -> None:
    result = promtool("test", "rules", str(RULE_TESTS))
    assert result.returncode == 0, result.stdout + result.stderr
    # Every alert of the rules file is tested firing somewhere and not firing somewhere else.
    alerts = set(re.findall(r"^\s*- alert: (\w+)$", RULES.read_text(), re.M))
    tested = RULE_TESTS.read_text()
    for alert in alerts:
        assert re.search(rf"alertname: {alert}\n\s+exp_alerts:\n\s+- exp_labels:", tested), f"{alert} never fires"
        assert re.search(rf"alertname: {alert}\n\s+exp_alerts: \[\]", tested), f"{alert} never tested quiet"


def test_rule_labels_and_annotations_follow_node_mixin_conventions() -> None:
    import yaml

    rules = [rule for group in yaml.safe_load(RULES.read_text())["groups"] for rule in group["rules"] if "alert" in rule]
    for rule in rules:
        assert rule["labels"]["severity"] in ("critical", "warning"), rule["alert"]
        summary = rule["annotations"]["summary"]
        assert summary.startswith("{{ $labels.instance }}: ") and "fix:" in summary, rule["alert"]
        assert "Fix" in rule["annotations"]["description"], rule["alert"]


# -- real audit output ---------------------------------------------------------------------------

@pytest.fixture(scope="module")
def audits() -> Iterator[dict[str, str]]:
    """Textfiles the real timer command writes on a throwaway node: converged, then drifted."""
    reason = integration_possible()
    if reason:
        pytest.fail(reason)
    node = Node()
    try:
        node.ok("useradd -M -s /bin/sh alice && useradd -M -s /bin/sh bob")
        result = node.run([PERFGROUP, "setup", "--group", "perf_users", "--member", "alice", "--textfile-dir", TEXTFILE])
        assert result.returncode == 0, result.stdout + result.stderr
        out = {}
        for name, drift in (("ok", ""), ("drifted", f"chmod o+x {DEST} && setcap -r {DEST}")):
            if drift:
                node.ok(drift)
            written = node.run([NODE_CLI, "audit", "--group", "perf_users", "--format", "prometheus",
                                "--textfile-dir", TEXTFILE])
            assert written.returncode in (0, 2), written.stderr
            out[name] = node.ok(f"cat {TEXTFILE}/perfgroup_perf_users.prom")
        yield out
    finally:
        node.close()


def series(text: str) -> list[str]:
    return [line for line in text.splitlines() if line and not line.startswith("#")]


@pytest.mark.parametrize("state", ["ok", "drifted"])
def test_promtool_check_metrics_is_clean_on_real_audit_output(audits: dict[str, str], state: str) -> None:
    text = audits[state]
    result = promtool("check", "metrics", stdin=text)
    assert (result.returncode, result.stdout + result.stderr) == (0, ""), text
    names = {line.split("{", 1)[0] for line in series(text)}
    assert {"perfgroup_check", "perfgroup_status", "perfgroup_findings", "perfgroup_audit_timestamp_seconds",
            "perfgroup_group_info", "perfgroup_group_members", "perfgroup_members_info", "perfgroup_build_info"} <= names
    assert ("perfgroup_capabilities_info" in names) == (state == "ok")  # setcap -r: no capabilities
    assert ("perfgroup_finding_fix_info" in names) == (state == "drifted")
    assert "alice" not in text and "bob" not in text
    checks = sum(1 for line in series(text) if line.startswith("perfgroup_check{"))
    fixes = sum(1 for line in series(text) if line.startswith("perfgroup_finding_fix_info{"))
    assert len(series(text)) == checks + fixes + FIXED_SERIES - (state == "drifted")
    assert checks <= 40 and fixes <= checks  # docs/monitoring.md: the per-node budget


# -- the dashboard against a real Prometheus -----------------------------------------------------

def drift(text: str) -> str:
    """The converged node's textfile with another gid, build and capability set: a node set up by hand."""
    text = re.sub(r'gid="\d+"', 'gid="4711"', text)
    text = re.sub(r'sha256="[0-9a-f]+"', 'sha256="' + "b" * 64 + '"', text)
    return re.sub(r'capabilities="[^"]*"', 'capabilities="cap_sys_admin"', text)


def with_grants(text: str, live: int) -> str:
    """The textfile of a node where `live` Slurm jobs hold a grant (the engine writes 0 here)."""
    line = 'perfgroup_job_grants_active{group="perf_users"} '
    assert line + "0\n" in text, text
    return text.replace(line + "0\n", f"{line}{live}\n")


def dashboard_queries() -> list[tuple[str, str]]:
    dashboard = json.loads(DASHBOARD.read_text())
    found = []
    for panel in dashboard["panels"]:
        for target in panel["targets"]:
            found.append((panel["title"], target["expr"].replace("$group", ".+")))
    return found


def test_every_dashboard_query_parses_and_returns_series_from_real_node_exporters(
        audits: dict[str, str], tmp_path: Path) -> None:
    queries = dashboard_queries()
    assert len(queries) >= 18
    # n1, n5, n6: converged; n2: another gid, build and caps; n3: drifted and an hour stale;
    # n4: node_exporter without perfgroup; n6 stops reporting once scraped. n1 has two live Slurm
    # per-job grants.
    files = {"n1": with_grants(audits["ok"], 2), "n2": drift(audits["ok"]), "n3": audits["drifted"], "n4": None,
             "n5": audits["ok"], "n6": audits["ok"]}
    procs = Processes()
    try:
        ports = {}
        for name, text in files.items():
            directory = tmp_path / name
            directory.mkdir()
            if text is not None:
                path = directory / "perfgroup_perf_users.prom"
                path.write_text(text)
                if name == "n3":
                    os.utime(path, (time.time() - 3600, time.time() - 3600))
            ports[name] = procs.node_exporter(directory, tmp_path / f"{name}.log")
        port = procs.prometheus({
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "rule_files": [str(RULES)],
            "scrape_configs": [{"job_name": "node", "static_configs": [
                {"targets": [f"127.0.0.1:{port}"], "labels": {"node": name}} for name, port in ports.items()]}],
        }, tmp_path / "prometheus")
        instance = {name: f"127.0.0.1:{p}" for name, p in ports.items()}
        wait_for("5 nodes with perfgroup metrics", lambda: len(query(port, "perfgroup_status")) == 5)
        procs.stop(procs.started[5])  # n6's node_exporter goes away
        wait_for("n6 stops reporting", lambda: len(query(port, "perfgroup_status")) == 4)

        expected = {("PerfgroupGidMismatch", instance["n2"]): "firing",
                    ("PerfgroupCriticalFinding", instance["n3"]): "firing",
                    ("PerfgroupTextfileStale", instance["n3"]): "firing",
                    ("PerfgroupMetricsMissing", instance["n4"]): "pending",  # for: 15m
                    ("PerfgroupBuildMismatch", instance["n2"]): "pending",
                    ("PerfgroupCapabilitiesMismatch", instance["n2"]): "pending"}
        wait_for(f"alerts {expected}", lambda: expected.items() <= alerts(port).items())
        assert not {key for key in alerts(port) if key[1] in (instance["n1"], instance["n5"])}, alerts(port)
        for title, expr in queries:
            result = wait_for(f"{title!r}: {expr}", lambda expr=expr: query(port, expr), timeout=20)
            assert result, (title, expr)
        stopped = query(port, dict(dashboard_queries())["Stopped reporting (last day)"])
        assert [r["metric"]["instance"] for r in stopped] == [instance["n6"]]
        missing = query(port, dict(dashboard_queries())["node_exporter without perfgroup metrics"])
        assert {r["metric"]["instance"] for r in missing} == {instance["n4"]}  # n6 is down, not scraped
        fixes = query(port, dict(dashboard_queries())["Findings that are not ok, with their fix"])
        assert {r["metric"]["instance"] for r in fixes} == {instance["n3"]}
        assert any(r["metric"].get("fix") for r in fixes)
        grants = query(port, dict(dashboard_queries())["Nodes with active job grants"])
        assert [(r["metric"]["instance"], r["value"][1]) for r in grants] == [(instance["n1"], "2")]
    finally:
        procs.close()
