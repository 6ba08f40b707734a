"""Across a simulated cluster: the perf_users role over real SSH with the real ansible-playbook."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from typing import Any

import pytest
from cluster import REPO, Cluster, node_python
from conftest import PERFGROUP, integration_possible
from node import NodeOptions

pytestmark = pytest.mark.integration

DEST = "/usr/local/libexec/perfgroup/perf_users/perf"
PERF_A = ["stat", "-a", "-e", "cpu-clock", "--", "true"]
STANDARD = ("std1", "std2", "old", "std3", "std4")
NODE_ARTIFACTS = ("/usr/local/bin/perf", "/etc/profile.d/perfgroup-perf_users.csh",
                  "/etc/systemd/system/perfgroup-heal-perf_users.service",
                  "/etc/systemd/system/multi-user.target.wants/perfgroup-heal-perf_users.service",
                  "/etc/apt/apt.conf.d/80perfgroup-perf_users", "/usr/local/sbin/perfgroup-node")


def _ansible_core() -> tuple[int, ...]:
    from ansible.release import __version__

    return tuple(int(part) for part in __version__.split(".")[:2])


# Every node Python of the matrix on a node that converges and verifies (old: the pre-5.8 path).
# ansible-core 2.21 and newer refuse Python 3.8 targets ("requires Python 3.9 or newer on the
# target"): with such a controller std1 runs 3.9, and 3.8 nodes are covered by the ansible-core
# the main venv resolves (2.19 on Python 3.11).
PYTHON_OF = {"std1": "3.8" if _ansible_core() < (2, 21) else "3.9", "std2": "3.9", "old": "3.10", "std3": "3.12",
             "std4": "3.13"}
ANSIBLE_PLAYBOOK = os.path.join(os.path.dirname(PERFGROUP), "ansible-playbook")


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    reason = integration_possible()
    if reason:
        pytest.fail(reason)
    variants = {
        "std1": NodeOptions(),
        "std2": NodeOptions(),
        "old": NodeOptions(sysctls={"kernel/cap_last_cap": "37"}),
        "std3": NodeOptions(),
        "std4": NodeOptions(),
        "nosuid": NodeOptions(nosuid_dirs=("/usr/local/libexec/perfgroup",)),
        "noperf": NodeOptions(without_perf=True),
        "login": NodeOptions(),
        # Never converged (group "spare": no other test targets them): inventory.example's fixed
        # gid can only apply to a node without the group.
        "fresh1": NodeOptions(),
        "fresh2": NodeOptions(),
    }
    host_vars = {name: f"ansible_python_interpreter={node_python(version)}" for name, version in PYTHON_OF.items()}
    host_vars["old"] += " perf_users_allow_root_equivalent=true"
    host_vars["nosuid"] = "perf_users_shell=true"  # file capabilities cannot work there: members use perf-shell
    # the Slurm prolog/epilog, by the role (docs/slurm.md); 0 is a value, not "unset"
    host_vars["std2"] += " perf_users_job_feature=perf perf_users_job_paranoid=0"
    made = Cluster(variants, group_of={"login": "login_nodes", "fresh1": "spare", "fresh2": "spare"}, host_vars=host_vars)
    try:
        for ssh in made.nodes.values():
            ssh.node.ok("useradd -M -s /bin/sh alice && useradd -M -s /bin/sh bob")
        yield made
    finally:
        made.close()
    assert not any(ssh.node.processes() for ssh in made.nodes.values())
    # Only the sshds this cluster started, by PID: other test runs on the machine may have their own.
    assert all(ssh.sshd.poll() is not None for ssh in made.nodes.values()), "sshd left running"


def playbook(cluster: Cluster, *args: str) -> tuple[int, dict[str, Any]]:
    env_args = ["-e", json.dumps({"perf_users_members": ["alice"]})]
    result = subprocess.run(
        [ANSIBLE_PLAYBOOK, "-i", str(cluster.inventory), "playbooks/perf_users.yml", *env_args, *args],
        env=cluster.env(),
        capture_output=True, text=True, timeout=600, check=False, cwd=REPO,
    )
    return result.returncode, json.loads(result.stdout)


def task_results(report: dict[str, Any], kind: str, handler: bool = False) -> dict[str, Any]:
    """The first task whose results carry perfgroup_result_kind == kind (the handler's, if asked)."""
    for play in report["plays"]:
        for task in play["tasks"]:
            if bool(task["task"].get("handler")) != handler:
                continue
            if any(data.get("perfgroup_result_kind") == kind for data in task["hosts"].values()):
                return dict(task["hosts"])
    return {}


CONVERGE, AUDIT = "converge", "audit"


def test_deploy_converges_standard_nodes_and_fails_clearly_elsewhere(cluster: Cluster) -> None:
    code, report = playbook(cluster)
    assert code != 0  # the node without perf cannot converge
    hosts = task_results(report, CONVERGE)
    for name in STANDARD:
        assert not hosts[name].get("failed"), hosts[name]
        assert hosts[name]["changed"] is True and hosts[name]["verified"] is True, hosts[name]
    # nosuid: no copy (the kernel would ignore its capabilities), perf-shell instead, and the plan says so.
    assert not hosts["nosuid"].get("failed"), hosts["nosuid"]
    assert any("members use perf-shell" in note for note in hosts["nosuid"]["notes"]), hosts["nosuid"]["notes"]
    nosuid = cluster.nodes["nosuid"].node
    assert nosuid.sh(f"test -e {DEST}").returncode != 0
    inside = nosuid.run(["perf-shell", "/usr/bin/perf", *PERF_A], user="alice")
    assert inside.returncode == 0, inside.stderr
    assert nosuid.run(["perf-shell", "true"], user="bob").returncode != 0
    assert "apt-get install -y linux-perf" in hosts["noperf"]["msg"]
    assert "login" not in hosts  # login nodes get no access
    # No CAP_PERFMON: the only working set makes members root; this node opted in, and it says so.
    assert hosts["old"]["caps"] == ["cap_sys_admin", "cap_sys_ptrace", "cap_syslog"]
    assert any("MEMBERS CAN BECOME ROOT" in note for note in hosts["old"]["notes"])
    assert hosts["std1"]["caps"] == ["cap_ipc_lock", "cap_perfmon", "cap_syslog"]
    # The engine really ran on each node's interpreter of the matrix (the module reports it). CI's
    # main lane sets PERFGROUP_REQUIRE_NODE_PYTHON=3.8: PYTHON_OF moving std1 off 3.8 there (its
    # ansible-core turning 2.21) fails here instead of dropping 3.8 coverage silently.
    ran = {name: hosts[name]["python"].rsplit(".", 1)[0] for name in STANDARD}
    assert ran == PYTHON_OF
    required = os.environ.get("PERFGROUP_REQUIRE_NODE_PYTHON")
    assert not required or required in ran.values(), f"no node ran Python {required}: {ran}"
    for name in STANDARD:
        node = cluster.nodes[name].node
        assert node.run([DEST, *PERF_A], user="alice").returncode == 0, name
        assert node.run([DEST, *PERF_A], user="bob").returncode != 0, name
        # The node artifacts `perfgroup setup` installs, by the role too.
        missing = [path for path in NODE_ARTIFACTS if node.sh(f"test -e {path}").returncode != 0]
        assert missing == [], (name, missing)
        assert node.ok(f"readlink {NODE_ARTIFACTS[3]}").strip() == NODE_ARTIFACTS[2]
        assert node.sh("test -e /etc/nhc/scripts/perfgroup.nhc").returncode != 0  # only when asked
        slurm = "test -x /etc/slurm/prolog.d/50-perfgroup-perf_users -a -x /etc/slurm/epilog.d/50-perfgroup-perf_users"
        assert (node.sh(slurm).returncode == 0) is (name == "std2"), name
        if name == "std2":
            assert "job-grant --group 'perf_users' --feature 'perf' --paranoid 0 " in node.ok(
                "cat /etc/slurm/prolog.d/50-perfgroup-perf_users")
    login = cluster.nodes["login"].node
    assert login.sh(f"test -e {DEST}").returncode != 0
    post = task_results(report, AUDIT, handler=True)  # the handler, on changed hosts only
    assert set(post) == {*STANDARD, "nosuid"}
    status = {name: post[name]["ansible_facts"]["perf_users_audit"]["status"] for name in post}
    # old: caps.root_equivalent, opted in; nosuid: copy.shell_only (ok)
    assert status == {**dict.fromkeys(STANDARD, "ok"), "old": "warning", "nosuid": "ok"}


def test_second_deploy_changes_nothing(cluster: Cluster) -> None:
    _, report = playbook(cluster, "--limit", ",".join((*STANDARD, "nosuid")))
    stats = report["stats"]
    for name in (*STANDARD, "nosuid"):
        assert stats[name]["changed"] == 0 and stats[name]["failures"] == 0, stats[name]


def test_check_mode_changes_nothing_and_reports_the_drift(cluster: Cluster) -> None:
    node = cluster.nodes["std2"].node
    node.ok(f"chmod o+x {DEST}")
    before = {name: cluster.nodes[name].node.snapshot() for name in STANDARD}
    _, report = playbook(cluster, "--limit", ",".join(STANDARD), "--check", "--diff")
    hosts = task_results(report, CONVERGE)
    assert hosts["std2"]["changed"] is True and hosts["std1"]["changed"] is False
    assert any("fix_copy" in d.get("before_header", "") for d in hosts["std2"]["diff"])
    after = {name: cluster.nodes[name].node.snapshot() for name in STANDARD}
    assert after == before
    _, report = playbook(cluster, "--limit", "std2")
    assert task_results(report, CONVERGE)["std2"]["changed"] is True
    assert json.loads(node.run([PERFGROUP, "audit", "--json"]).stdout)["status"] == "ok"


def test_a_first_check_diff_is_a_summary_per_artifact(cluster: Cluster) -> None:
    """Issue 22 item 2: a first `--check --diff`, as a site's terminal shows it (Ansible's default
    callback), names every planned change in a few lines each: small text files as a short unified
    diff, the node entry point as one list of paths and hashes, never the engine's source (it was
    7,082 lines)."""
    node = cluster.nodes["fresh1"].node  # never converged; check mode keeps it so
    result = cluster.run([ANSIBLE_PLAYBOOK, "-i", str(cluster.inventory), "playbooks/perf_users.yml",
                          "-e", "perf_users_hosts=fresh1", "--check", "--diff"],
                         env={"ANSIBLE_STDOUT_CALLBACK": "ansible.builtin.default"})
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    shown = result.stdout
    assert len(shown.splitlines()) < 400, shown[-3000:]
    planned = json.loads(node.ok(f"{PERFGROUP} setup --group perf_users --dry-run --json"))["plan"]
    files = [step["target"] for step in planned if step["kind"] == "write_file"]
    assert len(files) > 30 and all(f"+{path} sha256 " in shown for path in files if "/perfgroup_engine/" in path)
    missing = [step["target"] for step in planned if step["target"] not in shown]
    assert missing == [], missing
    # a small text file whole, as + lines of a unified diff: the boot unit's own lines
    unit = next(path for path in files if path.endswith("perfgroup-heal-perf_users.service"))
    assert f"+++ after: {unit}" in shown and "\n+[Unit]\n" in shown and "\n+ExecStart=" in shown
    engine_line = "def entries(actions: Sequence[Action]) -> list[Entry]:"
    assert engine_line in (REPO / "perfgroup/engine/plan_diff.py").read_text() and engine_line not in shown
    # perfgroup deploy --diff prints the same entries, then its table
    deployed = perfgroup_cli(cluster, "deploy", "-i", str(cluster.inventory), "--hosts", "fresh1", "--check", "--diff")
    assert deployed.returncode == 0, deployed.stdout + deployed.stderr
    lines = deployed.stdout.splitlines()
    assert len(lines) < 400 and lines[-1].split()[:3] == ["fresh1", "would", "change"], deployed.stdout[-2000:]
    assert f"+++ fresh1: {unit} (write_file)" in lines and "+[Unit]" in lines and engine_line not in deployed.stdout
    assert any(line.startswith("+++ fresh1: node entry point: ") for line in lines)
    assert node.sh("getent group perf_users").returncode != 0 and node.sh(f"test -e {DEST}").returncode != 0


def test_role_audit_equals_cli_audit(cluster: Cluster) -> None:
    result = subprocess.run(
        [ANSIBLE_PLAYBOOK, "-i", str(cluster.inventory), "playbooks/audit.yml", "--limit", "std1,old,nosuid"],
        env=cluster.env(),
        capture_output=True, text=True, timeout=600, check=False,
        cwd=REPO,
    )
    hosts = task_results(json.loads(result.stdout), AUDIT)
    for name in ("std1", "old", "nosuid"):
        role_view = hosts[name]["ansible_facts"]["perf_users_audit"]
        cli_view = json.loads(cluster.nodes[name].node.run([PERFGROUP, "audit", "--json"]).stdout)
        assert role_view == cli_view, name  # one engine, one document
    assert hosts["nosuid"]["ansible_facts"]["perf_users_audit"]["status"] == "ok"  # perf-shell, no copy


def perfgroup_cli(cluster: Cluster, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([PERFGROUP, *args], env=cluster.env(), capture_output=True, text=True,
                          timeout=600, check=False, cwd=REPO)


def test_deploy_cli_table_and_exit_code(cluster: Cluster) -> None:
    members = ["-e", json.dumps({"perf_users_members": ["alice"]})]
    good = perfgroup_cli(cluster, "deploy", "-i", str(cluster.inventory), "--limit", ",".join(STANDARD), *members, "--json")
    assert good.returncode == 0, good.stdout + good.stderr
    table = json.loads(good.stdout)
    assert {r["host"] for r in table["hosts"]} == set(STANDARD)
    assert all(r["verified"] and not r["changed"] for r in table["hosts"])
    assert "std1: ok" in good.stderr  # progress per host while it runs
    bad = perfgroup_cli(cluster, "deploy", "-i", str(cluster.inventory), *members)
    assert bad.returncode == 1
    assert "linux-perf" in bad.stdout


def test_fleet_audit_reports_gid_mismatch_fallback_caps_and_unknown(cluster: Cluster) -> None:
    std2 = cluster.nodes["std2"].node
    std2.ok("groupmod --gid 4711 perf_users")
    try:
        result = perfgroup_cli(cluster, "audit", "-i", str(cluster.inventory), "--limit", "std1,std2,old,nosuid", "--json")
        report = json.loads(result.stdout)
        fleet = {f["id"]: f for f in report["fleet"]}
        assert fleet["fleet.gid_mismatch"]["severity"] == "critical"
        assert "std2=4711" in fleet["fleet.gid_mismatch"]["message"]
        assert any("cap_sys_admin" in f["message"] for f in report["fleet"] if f["id"] == "fleet.caps")
        assert result.returncode == 2
    finally:
        std2.ok("groupmod --gid $(stat -c %g /usr/local/libexec/perfgroup/perf_users/perf) perf_users")


def test_unreachable_host_is_unknown(cluster: Cluster) -> None:
    inventory = cluster.dir / "with_dead_host.ini"
    dead_port = 1  # loopback port 1: nothing listens there
    inventory.write_text(cluster.inventory.read_text().replace(
        "[login_nodes]", f"[perf_nodes]\ndead ansible_host=127.0.0.1 ansible_port={dead_port}\n\n[login_nodes]"))
    result = perfgroup_cli(cluster, "audit", "-i", str(inventory), "--limit", "std1,dead", "--json")
    report = json.loads(result.stdout)
    assert report["hosts"]["dead"]["status"] == "unknown"
    assert result.returncode == 3


def copy_checkout(source: Any) -> Any:
    """A copy to build from: pip builds in place, and the checkout is not the test's to write."""
    source.mkdir()
    excluded = " ".join(f"--exclude=./{name}" for name in (".venv*", "build", ".cache", ".ci/ansible-test-home", ".git"))
    subprocess.run(f"tar -C {REPO} {excluded} -cf - . | tar -C {source} -xf -", shell=True, check=True)
    return source


def test_deploy_from_a_plain_wheel_install(cluster: Cluster, tmp_path: Any) -> None:
    """Not editable, not from the checkout: the wheel carries the playbooks and the role."""
    import site
    import sys

    wheels, source = tmp_path / "wheels", copy_checkout(tmp_path / "src")
    built = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(wheels), str(source)],
                           capture_output=True, text=True, check=False)
    assert built.returncode == 0, built.stderr
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    wheel = next(wheels.glob("perfgroup-*.whl"))
    # --ignore-installed: never touch (uninstall) the perfgroup of the environment running the tests.
    installed = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--ignore-installed",
                                "--prefix", str(venv), str(wheel)],
                               capture_output=True, text=True, check=False)
    assert installed.returncode == 0, installed.stderr
    installed_engine = venv / "share/perfgroup/collections/ansible_collections/perfgroup/hpc/plugins/module_utils/perfgroup_engine"
    assert (installed_engine / "facts.py").read_bytes() == (REPO / "perfgroup/engine/facts.py").read_bytes()
    collection = installed_engine.parent.parent.parent
    assert (collection / "plugins/plugin_utils/artifacts.py").read_bytes() == (REPO / "perfgroup/artifacts.py").read_bytes()
    assert {p.name for p in (collection / "templates").iterdir()} == {p.name for p in (REPO / "templates").iterdir()}
    # click and ansible-core come from the test environment; perfgroup itself from the wheel.
    env = {**cluster.env(), "PYTHONPATH": ":".join(site.getsitepackages())}
    # --prefix wrote the script with the test interpreter's shebang: run it with the new venv's.
    result = subprocess.run([str(venv / "bin" / "python"), str(venv / "bin" / "perfgroup"), "deploy", "-i", str(cluster.inventory), "--limit", "std1",
                             "-e", json.dumps({"perf_users_members": ["alice"]}), "--json"],
                            env=env, capture_output=True, text=True, timeout=600, check=False, cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    host = json.loads(result.stdout)["hosts"][0]
    # The installed collection renders the very artifacts the checkout's did: nothing to change.
    assert host["verified"] is True and host["changed"] is False, host
    check = subprocess.run([str(venv / "bin" / "python"), str(venv / "bin" / "perfgroup"), "deploy", "-i", str(cluster.inventory),
                            "--limit", "std1,std2", "--check"],
                           env=env, capture_output=True, text=True, timeout=600, check=False, cwd=tmp_path)
    assert check.returncode == 0, check.stdout + check.stderr
    # a controller without ansible-core: one line saying exactly what to install
    bare = subprocess.run([str(venv / "bin" / "python"), str(venv / "bin" / "perfgroup"), "deploy", "-i", str(cluster.inventory)],
                          env={**env, "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"}, capture_output=True, text=True,
                          timeout=600, check=False, cwd=tmp_path)
    assert bare.returncode == 2
    assert bare.stderr.strip().count("\n") == 0
    assert f"{venv}/bin/python -m pip install 'ansible-core>=2.16'" in bare.stderr, bare.stderr


def test_deploy_without_a_matching_host_says_why(cluster: Cluster) -> None:
    """Issue 13: an inventory without perf_nodes, or a --limit outside it: exit 2, one line, the fix."""
    other = cluster.dir / "no_perf_nodes.ini"
    other.write_text(cluster.inventory.read_text().replace("[perf_nodes]", "[compute]"))
    for inventory, extra, named in [
        (other, [], "'perf_nodes'"),
        (other, ["--limit", "std1"], "'perf_nodes' with --limit 'std1'"),  # in the inventory, not in perf_nodes
        (cluster.inventory, ["--limit", "nosuchhost"], "'perf_nodes' with --limit 'nosuchhost'"),
        (cluster.inventory, ["--hosts", "gpu_nodes"], "'gpu_nodes'"),
    ]:
        result = perfgroup_cli(cluster, "deploy", "-i", str(inventory), *extra)
        assert result.returncode == 2, (extra, result.stdout, result.stderr)
        lines = [line for line in result.stderr.splitlines() if line.strip()]
        assert len(lines) == 1 and named in lines[0], (extra, result.stderr)
        assert "--hosts PATTERN" in lines[0] and "group to the inventory" in lines[0]
        assert result.stdout == ""


def test_deploy_hosts_pattern_targets_other_groups(cluster: Cluster) -> None:
    result = perfgroup_cli(cluster, "deploy", "-i", str(cluster.inventory), "--hosts", "login_nodes", "--check", "--json")
    assert result.returncode == 0, result.stdout + result.stderr
    rows = json.loads(result.stdout)["hosts"]
    assert [r["host"] for r in rows] == ["login"] and rows[0]["changed"] is True  # would install, changed nothing
    assert cluster.nodes["login"].node.sh(f"test -e {DEST}").returncode != 0


def test_deploy_check_on_a_drifted_host_would_change_and_does_not_fail(cluster: Cluster) -> None:
    node = cluster.nodes["std1"].node
    node.ok(f"chmod o+x {DEST}")
    try:
        before = node.snapshot()
        result = perfgroup_cli(cluster, "deploy", "-i", str(cluster.inventory), "--limit", "std1,std2", "--check")
        assert result.returncode == 0, result.stdout + result.stderr
        row = next(line for line in result.stdout.splitlines() if line.startswith("std1 "))
        assert "would change" in row and "failed" not in result.stderr.replace("failed=0", "")
        assert "std1: failed" not in result.stderr
        assert node.snapshot() == before
    finally:
        node.ok(f"chmod o-x {DEST}")


def test_fleet_audit_passes_dest_and_functional_through(cluster: Cluster) -> None:
    functional = perfgroup_cli(cluster, "audit", "-i", str(cluster.inventory), "--limit", "std1,std2,nosuid", "--functional",
                               "--json")
    hosts = json.loads(functional.stdout)["hosts"]
    for name in ("std1", "std2", "nosuid"):  # nosuid: no copy; verify checks perf-shell instead
        ids = {f["id"]: f["severity"] for f in hosts[name]["findings"]}
        assert ids["verify.member"] == "ok" and ids["verify.non_member"] == "ok", ids
        cli = json.loads(cluster.nodes[name].node.run([PERFGROUP, "audit", "--functional", "--json"]).stdout)
        assert [(f["id"], f["severity"]) for f in hosts[name]["findings"]] == [(f["id"], f["severity"]) for f in cli["findings"]]
    elsewhere = "/usr/local/libexec/perfgroup/elsewhere/perf"
    moved = perfgroup_cli(cluster, "audit", "-i", str(cluster.inventory), "--limit", "std1", "--dest", elsewhere, "--json")
    report = json.loads(moved.stdout)["hosts"]["std1"]
    assert report["dest"] == elsewhere and "copy.missing" in {f["id"] for f in report["findings"]}
    assert moved.returncode == 2


def readme_install_line() -> str:
    """The quick start's install command, from `python3 -m venv` through `pip install .`."""
    line = next(text for text in (REPO / "README.md").read_text().splitlines() if "python3 -m venv /opt/perfgroup" in text)
    return line[line.index("python3 -m venv"):line.index("pip install .") + len("pip install .")]


def test_readme_install_line_then_deploy_check_with_inventory_example(cluster: Cluster, tmp_path: Any) -> None:
    """Issue 13, done when #1: a fresh venv made by the README's install line (run in a copy of the
    checkout; it fetches click, jinja2 and ansible-core from the package registry, or pip's cache, as
    the README's line does), then `perfgroup deploy -i inventory.example --check` against the
    cluster: inventory.example as shipped, only its host lines swapped for cluster nodes."""
    venv = tmp_path / "venv"
    install = readme_install_line().replace("/opt/perfgroup", str(venv))
    assert install == f"python3 -m venv {venv} && {venv}/bin/pip install .", install
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("ANSIBLE_", "PYTHON", "VIRTUAL_ENV"))}
    installed = subprocess.run(install, shell=True, cwd=copy_checkout(tmp_path / "src"), env=clean,
                               capture_output=True, text=True, timeout=900, check=False)
    assert installed.returncode == 0, installed.stdout[-2000:] + installed.stderr[-3000:]

    common = next(line for line in cluster.inventory.read_text().splitlines() if line.startswith("ansible_ssh_common_args="))

    def host(name: str) -> str:
        return (f"{name} ansible_host=127.0.0.1 ansible_port={cluster.nodes[name].port} "
                f"ansible_ssh_private_key_file={cluster.key} {common}")

    inventory = (REPO / "inventory.example").read_text()
    for pattern, name in (("node[001:128].cluster.example", "fresh1"), ("gpu[01:08].cluster.example", "fresh2"),
                          ("login[1:2].cluster.example", "login")):
        assert inventory.count(pattern) == 1, pattern
        inventory = inventory.replace(pattern, host(name))
    assert "[perf_nodes:vars]" in inventory and "[all:vars]" in inventory
    (tmp_path / "inventory.example").write_text(inventory)

    # Only the new venv: no PATH to the test environment's ansible, no collections path of the checkout.
    env = {**{k: v for k, v in cluster.env().items() if k not in ("ANSIBLE_COLLECTIONS_PATH", "ANSIBLE_STDOUT_CALLBACK")},
           "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"}
    result = subprocess.run([str(venv / "bin" / "perfgroup"), "deploy", "-i", "inventory.example", "--check"],
                            env=env, cwd=tmp_path, capture_output=True, text=True, timeout=600, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    header, *rows = result.stdout.splitlines()
    assert header.split() == ["host", "changed", "caps", "verified", "error"]
    # One row per host of perf_nodes, compute and gpu alike: caps auto everywhere (the fleet check holds).
    assert [row.split() for row in rows] == [
        ["fresh1", "would", "change", "cap_ipc_lock,cap_perfmon,cap_syslog", "-"],
        ["fresh2", "would", "change", "cap_ipc_lock,cap_perfmon,cap_syslog", "-"],
    ], result.stdout
    for name in ("fresh1", "fresh2"):  # check mode: no group, no copy
        node = cluster.nodes[name].node
        assert node.sh("getent group perf_users").returncode != 0 and node.sh(f"test -e {DEST}").returncode != 0


def test_a_failed_record_step_is_a_change_and_the_next_deploy_finishes(cluster: Cluster) -> None:
    """Issue 9, role side: the change is applied, then the record cannot be written: the host is
    failed AND changed, the step named; the next deploy finishes the job. (Last in this file: it
    leaves std3 with other capabilities.)"""
    node = cluster.nodes["std3"].node
    # Other capabilities: applied to the copy first, then recorded (the record's caps change).
    caps = ["-e", json.dumps({"perf_users_members": ["alice"], "perf_users_caps": "cap_perfmon,cap_syslog"})]
    # The record read-only (a bind mount of the file onto itself, inside the node): not unsafe, just
    # not replaceable (rename over a mount point fails), while the rest of the directory is writable.
    record_path = "/var/lib/perfgroup/perf_users.json"
    node.ok(f"mount --bind {record_path} {record_path} && mount -o remount,bind,ro {record_path}")
    try:
        failed = perfgroup_cli(cluster, "deploy", "-i", str(cluster.inventory), "--limit", "std3", *caps)
    finally:
        node.ok(f"umount {record_path}")
    assert failed.returncode == 1, failed.stdout + failed.stderr
    row = next(line for line in failed.stdout.splitlines() if line.startswith("std3 "))
    _, changed, _, verified, error = row.split(maxsplit=4)
    assert (changed, verified) == ("yes", "NO"), row
    assert "at step write_state" in error and "applied before it" in error, row
    assert node.ok(f"getcap {DEST}").split()[-1] == "cap_syslog,cap_perfmon=ep"  # applied
    record = json.loads(node.ok("cat /var/lib/perfgroup/perf_users.json"))
    assert record["caps"] == ["cap_ipc_lock", "cap_perfmon", "cap_syslog"]  # not recorded

    again = perfgroup_cli(cluster, "deploy", "-i", str(cluster.inventory), "--limit", "std3", *caps, "--json")
    assert again.returncode == 0, again.stdout + again.stderr
    (row_again,) = json.loads(again.stdout)["hosts"]
    assert row_again["changed"] is True and row_again["verified"] is True and not row_again["error"], row_again
    record = json.loads(node.ok("cat /var/lib/perfgroup/perf_users.json"))
    assert record["caps"] == ["cap_perfmon", "cap_syslog"]
    # Record and node agree; without cap_ipc_lock only the mlock budget is worth a warning.
    audit = json.loads(node.run([PERFGROUP, "audit", "--json"]).stdout)
    assert {f["id"] for f in audit["findings"] if f["severity"] != "ok"} == {"mlock.budget"}, audit
