"""`perfgroup audit --prometheus` on a 10,000-node fleet: real textfile output (the timer's command
on a throwaway node) for 10,000 instances, a few of them drifted, stale, gone or without perfgroup,
backfilled with `promtool tsdb create-blocks-from openmetrics` into a temporary Prometheus. Checks
that the findings name exactly the drifted nodes and count the rest; not timed (bench/prometheus_fleet.py
times it)."""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Iterator
from typing import Any

import pytest
from conftest import PERFGROUP, integration_possible
from promlab import Processes, fleet_openmetrics, timer_textfiles, tool

from perfgroup import prometheus_audit

pytestmark = pytest.mark.integration

NODES = 10_000
DRIFT = {17: "gid", 4242: "gid", 9001: "gid", 123: "build", 55: "nocaps", 5555: "nocaps",
         99: "stale", 1234: "stopped", 2024: "never", 8888: "never"}


def names(*indexes: int) -> list[str]:
    return [f"n{i:05d}:9100" for i in sorted(indexes)]


@pytest.fixture(scope="module")
def port(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    reason = integration_possible()
    if reason:
        pytest.fail(reason)
    tmp = tmp_path_factory.mktemp("fleet10k")
    openmetrics = tmp / "fleet.om"
    fleet_openmetrics(openmetrics, timer_textfiles(PERFGROUP), DRIFT, NODES, int(time.time()))
    subprocess.run([tool("promtool"), "tsdb", "create-blocks-from", "openmetrics", str(openmetrics),
                    str(tmp / "prometheus" / "tsdb")], check=True, capture_output=True, timeout=600)
    openmetrics.unlink()
    procs = Processes()
    try:
        yield procs.prometheus({"global": {}}, tmp / "prometheus", "--storage.tsdb.retention.time=10y")
    finally:
        procs.close()


def audit(port: int, *args: str) -> tuple[int, dict[str, dict[str, Any]], dict[str, Any]]:
    result = subprocess.run([PERFGROUP, "audit", "--prometheus", f"http://127.0.0.1:{port}", "--json", *args],
                            capture_output=True, text=True, timeout=300, check=False, env={**os.environ, "NO_COLOR": "1"})
    assert result.stderr == "", result.stderr
    report = json.loads(result.stdout)
    return result.returncode, {f["id"]: f for f in report["fleet"]}, report


def test_the_findings_name_exactly_the_drifted_nodes(port: int) -> None:
    code, found, report = audit(port)
    assert code == 2 and report["status"] == "critical"
    assert found["fleet.gid_mismatch"]["hosts"] == names(17, 4242, 9001)
    assert found["fleet.gid_mismatch"]["severity"] == "critical"
    assert found["fleet.build_mismatch"]["hosts"] == names(123)
    assert found["caps.missing"]["hosts"] == names(55, 5555)
    assert found["caps.missing"]["severity"] == "critical"
    assert found["fleet.stale"]["hosts"] == names(99)
    assert found["fleet.stopped_reporting"]["hosts"] == names(1234)
    assert found["fleet.never_seen"]["hosts"] == names(2024, 8888)
    assert "fleet.caps_mismatch" not in found and "fleet.members_mismatch" not in found
    assert report["nodes"] == {"node_exporter": NODES - 1, "reporting": NODES - 3,
                               "ok": NODES - 5, "warning": 0, "critical": 2, "unknown": 0}
    assert sorted(report["hosts"]) == names(55, 5555)  # only the nodes a finding names


def test_offenders_are_capped_and_the_rest_counted(port: int) -> None:
    code, found, report = audit(port, "--max-named", "1")
    assert code == 2
    gid = found["fleet.gid_mismatch"]
    assert len(gid["hosts"]) == 1 and gid["message"].endswith(" and 2 more")
    assert found["caps.missing"]["message"].startswith("2 node(s): ")
    assert len(report["hosts"]) == 1


def test_the_selector_narrows_a_large_fleet(port: int) -> None:
    code, found, report = audit(port, "--selector", '{instance=~"n0000.:9100"}')  # n00000 .. n00009
    assert (code, report["status"], set(found)) == (0, "ok", {"fleet.gid_consistent", "fleet.caps"})
    assert report["nodes"]["reporting"] == report["nodes"]["node_exporter"] == 10


def test_nothing_is_fetched_per_node(port: int) -> None:
    """Every query is an aggregate or capped: the answers stay small at 10,000 nodes."""
    client = prometheus_audit.Client(f"http://127.0.0.1:{port}")
    sizes: list[int] = []

    def query(expr: str) -> list[tuple[dict[str, str], float]]:
        answer = client.query(expr)
        sizes.append(len(answer))
        return answer

    prometheus_audit.run(prometheus_audit.Settings("perf_users"), query)
    assert len(sizes) >= 14 and max(sizes) <= 20
