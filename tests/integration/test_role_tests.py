"""The role's own tests (roles/perf_users/tests/, linux-system-roles style), run as a user would
run them: the real ansible-playbook over SSH against simulated nodes."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from typing import Any

import pytest
from cluster import REPO, Cluster
from conftest import PERFGROUP, integration_possible
from node import NodeOptions

from perfgroup.engine.errors import RefusedError
from perfgroup.engine.validate import desired_from_input

pytestmark = pytest.mark.integration

TESTS = REPO / "roles" / "perf_users" / "tests"
ANSIBLE_PLAYBOOK = os.path.join(os.path.dirname(PERFGROUP), "ansible-playbook")
NODES = ("std", "old")


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    reason = integration_possible()
    if reason:
        pytest.fail(reason)
    # old: a kernel without CAP_PERFMON, where the group needs root-equivalent capabilities: opted in.
    made = Cluster({"std": NodeOptions(), "old": NodeOptions(sysctls={"kernel/cap_last_cap": "37"})},
                   host_vars={"old": "perf_users_allow_root_equivalent=true"})
    try:
        yield made
    finally:
        made.close()
    assert not any(ssh.node.processes() for ssh in made.nodes.values())


def role_test(cluster: Cluster, name: str) -> tuple[int, dict[str, Any], str]:
    result = cluster.run([ANSIBLE_PLAYBOOK, "-i", str(cluster.inventory), str(TESTS / name)])
    return result.returncode, json.loads(result.stdout.strip().splitlines()[-1]), result.stderr


def converge_results(report: dict[str, Any]) -> list[dict[str, Any]]:
    return [data for play in report["plays"] for task in play["tasks"] for data in task["hosts"].values()
            if data.get("perfgroup_result_kind") == "converge"]


def refusal(**kwargs: Any) -> str:
    with pytest.raises(RefusedError) as raised:
        desired_from_input(**kwargs)
    return str(raised.value)


def test_default_converges_then_changes_nothing(cluster: Cluster) -> None:
    code, report, stderr = role_test(cluster, "tests_default.yml")
    assert code == 0, stderr[-3000:]
    for name in NODES:
        assert report["stats"][name]["failures"] == 0 and report["stats"][name]["ok"] > 0, report["stats"]
    runs = [r for r in converge_results(report) if "cap_perfmon" in (r.get("caps") or [])]
    assert [r["changed"] for r in runs] == [True, False]  # std: first run changed, second not


def test_members_exclusive_removes_the_unlisted_and_the_default_never_does(cluster: Cluster) -> None:
    code, report, stderr = role_test(cluster, "tests_members.yml")
    assert code == 0, stderr[-3000:]
    for name in NODES:
        assert report["stats"][name]["failures"] == 0, report["stats"]
    removed = [r for r in converge_results(report) if any("remove pgm_bob" in step for step in r.get("plan") or [])]
    assert len(removed) == len(NODES), removed  # one exclusive run per node removed pgm_bob, no other run


def test_invalid_input_fails_with_the_engines_line(cluster: Cluster) -> None:
    code, report, stderr = role_test(cluster, "tests_invalid.yml")
    assert code == 0, stderr[-3000:]
    for name in NODES:
        assert report["stats"][name]["rescued"] == 3 and report["stats"][name]["failures"] == 0, report["stats"]
    expected = {
        refusal(group="Bad Group"),
        refusal(group="perf_users", caps="cap_perfmon,cap_bogus"),
    }
    member = cluster.nodes["std"].node.run([PERFGROUP, "setup", "--group", "perf_users", "--member",
                                            "perfgroup_no_such_user"])
    assert member.returncode == 2
    messages = {r["msg"] for r in converge_results(report) if r.get("failed")}
    assert expected < messages
    (member_msg,) = messages - expected
    assert member_msg in member.stderr and member_msg.endswith("no such user")


def test_check_mode_changes_nothing_on_a_drifted_host(cluster: Cluster) -> None:
    code, report, stderr = role_test(cluster, "tests_check_mode.yml")
    assert code == 0, stderr[-3000:]
    handler_runs = {play["play"]["name"]: [data for task in play["tasks"] if task["task"].get("handler")
                                           for data in task["hosts"].values() if not data.get("skipped")]
                    for play in report["plays"]}
    assert all(not data.get("failed") for runs in handler_runs.values() for data in runs), handler_runs
    # Both check-mode plays (with and without verify) notify the handler; it must not run there.
    in_check_mode = [name for name in handler_runs if "check mode" in name]
    assert len(in_check_mode) == 2 and not any(handler_runs[name] for name in in_check_mode), handler_runs
    assert len(handler_runs["Check nothing changed, then repair"]) == len(NODES)
    checked = [r for r in converge_results(report) if r.get("check_mode")]
    assert len(checked) == 2 * len(NODES) and all(r["changed"] and not r.get("failed") for r in checked)
    for name in NODES:
        assert report["stats"][name]["failures"] == 0, report["stats"]
    audit = json.loads(cluster.nodes["std"].node.run([PERFGROUP, "audit", "--json"]).stdout)
    assert audit["status"] == "ok"


def test_monitoring_artifacts_follow_the_role_variables(cluster: Cluster) -> None:
    code, report, stderr = role_test(cluster, "tests_monitoring.yml")
    assert code == 0, stderr[-3000:]
    for name in NODES:
        assert report["stats"][name]["failures"] == 0 and report["stats"][name]["ok"] > 0, report["stats"]
    std = cluster.nodes["std"].node
    assert std.sh("ls /etc/nhc/scripts/perfgroup.nhc /etc/systemd/system/perfgroup-textfile-*").returncode != 0
    # What the role installed is what the CLI would: a setup right after it changes nothing.
    again = std.run([PERFGROUP, "setup", "--group", "perf_users", "--json", "--no-verify"])
    assert again.returncode == 0 and json.loads(again.stdout)["changed"] is False, again.stdout
    # perf_users_prometheus_rules_dir: the shipped rules, byte for byte, and Prometheus's own check passes.
    rules = std.path("/etc/prometheus/rules.d/perfgroup-rules.yml")
    assert rules.read_bytes() == (REPO / "monitoring" / "prometheus" / "perfgroup-rules.yml").read_bytes()
    check = subprocess.run(["promtool", "check", "rules", str(rules)], capture_output=True, text=True, check=False)
    assert check.returncode == 0, check.stdout + check.stderr


def test_testinfra_suite_judges_nodes_by_the_same_findings(cluster: Cluster, tmp_path: Any) -> None:
    """perfgroup.testinfra, as a site would run it, against the converged nodes and then a drifted one."""
    import sys

    # The std node only: the old node carries root-equivalent capabilities on purpose, which the
    # caps area rightly reports as a warning.
    assert cluster.nodes["std"].node.run([PERFGROUP, "setup", "--group", "perf_users"]).returncode == 0
    # The README's command line, --hosts='ansible://perf_nodes' included: old is moved out of perf_nodes.
    inventory = tmp_path / "inventory.ini"
    lines = cluster.inventory.read_text().splitlines()
    old = next(line for line in lines if line.startswith("old "))
    inventory.write_text("\n".join(line for line in lines if line != old) + f"\n[old_kernels]\n{old}\n")
    argv = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--hosts=ansible://perf_nodes",
            f"--ansible-inventory={inventory}", "--pyargs", "perfgroup.testinfra"]
    env = {"PERFGROUP_FUNCTIONAL": "1"}
    good = subprocess.run(argv, env={**cluster.env(), **env}, capture_output=True, text=True, timeout=600,
                          check=False, cwd=tmp_path)
    assert good.returncode == 0, good.stdout[-3000:] + good.stderr[-2000:]
    assert "10 passed" in good.stdout  # 9 areas + status
    std = cluster.nodes["std"].node
    dest = json.loads(std.run([PERFGROUP, "audit", "--json"]).stdout)["dest"]
    std.ok(f"chmod o+x {dest}")
    try:
        bad = subprocess.run(argv, env={**cluster.env(), **env}, capture_output=True, text=True, timeout=600,
                             check=False, cwd=tmp_path)
    finally:
        std.ok(f"chmod o-x {dest}")
    assert bad.returncode == 1, bad.stdout[-3000:]
    assert "copy.world_access" in bad.stdout and "verify.non_member" in bad.stdout
    assert "failed" in bad.stdout
