"""`perfgroup audit --prometheus` against a real Prometheus (with the shipped rules) scraping one real
node_exporter per throwaway node; each node writes its textfile with the command of the timer setup
installed. A converged fleet is OK; then one node drifts (another gid, capabilities removed), one
goes stale, one disappears, and both Prometheus's /api/v1/alerts and the audit report them. The
error cases (unreachable, 401, a bad selector, an empty result) are each one line and exit 3.
Every process is stopped by the PID this test started."""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NamedTuple

import pytest
from conftest import PERFGROUP, integration_possible
from node import Node
from promlab import (
    DEST,
    TEXTFILE,
    Processes,
    alerts,
    free_port,
    query,
    setup_with_textfile,
    tool,
    wait_for,
    write_textfile,
)

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
RULES = REPO / "monitoring" / "prometheus" / "perfgroup-rules.yml"
NODES = ("n1", "n2", "n3", "n4")  # n5 runs node_exporter without perfgroup


class Fleet(NamedTuple):
    nodes: dict[str, Node]
    exporters: dict[str, subprocess.Popen[bytes]]
    instance: dict[str, str]
    port: int
    procs: Processes


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    reason = integration_possible()
    if reason:
        pytest.fail(reason)
    tool("prometheus")
    tmp = tmp_path_factory.mktemp("prometheus-audit")
    nodes: dict[str, Node] = {}
    procs = Processes()
    try:
        exporters, ports = {}, {}
        for name in NODES:
            node = nodes[name] = Node()
            setup_with_textfile(node, PERFGROUP)
            ports[name] = procs.node_exporter(node.path(TEXTFILE), tmp / f"{name}.log")
            exporters[name] = procs.started[-1]
        (tmp / "n5").mkdir()
        ports["n5"] = procs.node_exporter(tmp / "n5", tmp / "n5.log")
        port = procs.prometheus({
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "rule_files": [str(RULES)],
            "scrape_configs": [{"job_name": "node", "static_configs": [
                {"targets": [f"127.0.0.1:{p}"], "labels": {"cluster": "b" if name == "n5" else "a"}}
                for name, p in ports.items()]}],
        }, tmp / "prometheus")
        wait_for("4 nodes with perfgroup metrics", lambda: len(query(port, "perfgroup_status")) == 4)
        wait_for("5 node_exporters", lambda: len(query(port, "node_exporter_build_info")) == 5)
        yield Fleet(nodes, exporters, {n: f"127.0.0.1:{p}" for n, p in ports.items()}, port, procs)
    finally:
        procs.close()
        for node in nodes.values():
            node.close()


def audit(port: int, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([PERFGROUP, "audit", "--prometheus", f"http://127.0.0.1:{port}", *args], capture_output=True,
                          text=True, timeout=120, check=False, env={**os.environ, "NO_COLOR": "1", **(env or {})})


def audit_json(port: int, *args: str) -> tuple[int, dict[str, Any]]:
    result = audit(port, "--json", *args)
    assert result.stderr == "", result.stderr
    return result.returncode, json.loads(result.stdout)


def fleet_findings(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {f["id"]: f for f in report["fleet"]}


def test_1_a_converged_fleet_is_ok_and_the_selector_narrows_it(fleet: Fleet) -> None:
    code, report = audit_json(fleet.port, "--selector", '{cluster="a"}')
    assert (code, report["status"], report["exit_code"]) == (0, "ok", 0), report
    assert set(fleet_findings(report)) == {"fleet.gid_consistent", "fleet.caps"}
    assert report["nodes"] == {"node_exporter": 4, "reporting": 4, "ok": 4, "warning": 0, "critical": 0, "unknown": 0}
    assert report["hosts"] == {}
    # Without a selector, n5's node_exporter counts: a node that never reported perfgroup metrics.
    code, report = audit_json(fleet.port)
    never = fleet_findings(report)["fleet.never_seen"]
    assert (code, never["severity"], never["hosts"]) == (1, "warning", [fleet.instance["n5"]])


def test_2_drift_staleness_and_a_vanished_node_are_reported_by_alerts_and_audit(fleet: Fleet) -> None:
    n2, n3 = fleet.nodes["n2"], fleet.nodes["n3"]
    n2.ok(f"groupmod -g 4711 perf_users && setcap -r {DEST}")
    write_textfile(n2)
    hour_ago = time.time() - 3600
    os.utime(n3.path(f"{TEXTFILE}/perfgroup_perf_users.prom"), (hour_ago, hour_ago))
    fleet.procs.stop(fleet.exporters["n4"])
    wait_for("n2's new gid and n4 gone", lambda: query(fleet.port, 'perfgroup_group_info{gid="4711"}')
             and len(query(fleet.port, "perfgroup_status")) == 3)
    wait_for("n3's old textfile", lambda: query(fleet.port, "time() - node_textfile_mtime_seconds > 3000"))

    instance = fleet.instance
    expected = {("PerfgroupGidMismatch", instance["n2"]): "firing",
                ("PerfgroupCriticalFinding", instance["n2"]): "firing",
                ("PerfgroupTextfileStale", instance["n3"]): "firing",
                ("PerfgroupStoppedReporting", instance["n4"]): "pending",  # for: 15m
                ("PerfgroupMetricsMissing", instance["n5"]): "pending"}
    wait_for(f"alerts {expected}", lambda: expected.items() <= alerts(fleet.port).items())
    assert not {key for key in alerts(fleet.port) if key[1] == instance["n1"]}

    code, report = audit_json(fleet.port)
    found = fleet_findings(report)
    assert (code, report["status"]) == (2, "critical")
    assert found["fleet.gid_mismatch"]["hosts"] == [instance["n2"]]
    assert f"most have 995): {instance['n2']}=4711" in found["fleet.gid_mismatch"]["message"]
    assert (found["caps.missing"]["severity"], found["caps.missing"]["hosts"]) == ("critical", [instance["n2"]])
    assert (found["fleet.stale"]["severity"], found["fleet.stale"]["hosts"]) == ("warning", [instance["n3"]])
    assert found["fleet.stopped_reporting"]["hosts"] == [instance["n4"]]
    assert found["fleet.never_seen"]["hosts"] == [instance["n5"]]
    assert report["nodes"]["reporting"] == 3 and report["nodes"]["critical"] == 1
    assert report["hosts"][instance["n2"]]["status"] == "critical"
    assert any(f["id"] == "caps.missing" and f["fix"] for f in report["hosts"][instance["n2"]]["findings"])
    assert set(report["hosts"]) == {instance["n2"]}
    # n3's audit is an hour old: a site whose timer runs every two hours says so
    _, relaxed = audit_json(fleet.port, "--stale-after", "7200")
    assert "fleet.stale" not in fleet_findings(relaxed) and "fleet.gid_mismatch" in fleet_findings(relaxed)

    text = audit(fleet.port)
    assert text.returncode == 2 and text.stderr == ""
    assert f"CRITICAL {instance['n2']}\n" in text.stdout and text.stdout.endswith("status: CRITICAL\n")
    assert "fleet.stopped_reporting" in text.stdout and "nodes: 3 reporting, 4 with node_exporter" in text.stdout


def one_line_error(result: subprocess.CompletedProcess[str], text: str) -> None:
    assert result.returncode == 3, result.stdout + result.stderr  # UNKNOWN: audit's documented code
    assert result.stdout == "" and result.stderr.count("\n") == 1, result.stderr
    assert result.stderr.startswith("perfgroup: error: ") and text in result.stderr, result.stderr


@pytest.mark.parametrize(("args", "text"), [
    (("--selector", '{cluster=~"("}'), "Prometheus rejected the query"),
    (("--selector", '{cluster="nowhere"}'), "(empty result)"),
    (("--selector", 'cluster="a"'), "not a label matcher list"),
    (("--functional",), "does not take --functional"),
])
def test_bad_selectors_and_empty_results_are_one_line(fleet: Fleet, args: tuple[str, ...], text: str) -> None:
    one_line_error(audit(fleet.port, *args), text)


def test_an_unreachable_prometheus_is_one_line() -> None:
    one_line_error(audit(free_port(), "--timeout", "5"), "cannot reach Prometheus at http://127.0.0.1:")


def test_basic_auth_from_a_file_or_the_environment(tmp_path: Path) -> None:
    htpasswd = tool("htpasswd")  # apache2-utils: Prometheus's web config wants a bcrypt hash
    hashed = subprocess.run([htpasswd, "-nbBC", "4", "prom", "s3cret"], capture_output=True, text=True,
                            check=True).stdout.strip().split(":", 1)[1]
    web = tmp_path / "web.yml"
    web.write_text(json.dumps({"basic_auth_users": {"prom": hashed}}))
    procs = Processes()
    try:
        port = procs.prometheus({"global": {"scrape_interval": "1s"}}, tmp_path / "prometheus", f"--web.config.file={web}")
        one_line_error(audit(port), "refused the request (HTTP 401): it needs credentials")
        wrong = tmp_path / "wrong"
        wrong.write_text("prom:guess\n")
        one_line_error(audit(port, "--basic-auth-file", str(wrong)), "(HTTP 401): the credentials were not accepted")
        # Accepted: the audit gets as far as the (empty) answer of this Prometheus without targets.
        right = tmp_path / "right"
        right.write_text("prom:s3cret\n")
        one_line_error(audit(port, "--basic-auth-file", str(right)), "(empty result)")
        one_line_error(audit(port, env={"PERFGROUP_PROMETHEUS_BASIC_AUTH": "prom:s3cret"}), "(empty result)")
    finally:
        procs.close()


def test_https_trusts_the_ca_file_only(tmp_path: Path) -> None:
    """A Prometheus serving TLS with a certificate of its own CA: refused without --ca-file, asked with it."""
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run([tool("openssl"), "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(cert),
                    "-days", "1", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"],
                   check=True, capture_output=True)
    web = tmp_path / "web.yml"
    web.write_text(json.dumps({"tls_server_config": {"cert_file": str(cert), "key_file": str(key)}}))
    procs = Processes()
    try:
        port = procs.prometheus({"global": {"scrape_interval": "1s"}}, tmp_path / "prometheus", f"--web.config.file={web}",
                                ca_file=cert)
        url = f"https://127.0.0.1:{port}"
        refused = subprocess.run([PERFGROUP, "audit", "--prometheus", url], capture_output=True, text=True, timeout=120,
                                 check=False, env={**os.environ, "NO_COLOR": "1"})
        one_line_error(refused, "its TLS certificate is not trusted (self-signed certificate, CERTIFICATE_VERIFY_FAILED): give its CA with --ca-file")
        trusted = subprocess.run([PERFGROUP, "audit", "--prometheus", url, "--ca-file", str(cert)], capture_output=True,
                                 text=True, timeout=120, check=False, env={**os.environ, "NO_COLOR": "1"})
        one_line_error(trusted, "(empty result)")  # TLS verified: the answer of a Prometheus without targets
    finally:
        procs.close()
