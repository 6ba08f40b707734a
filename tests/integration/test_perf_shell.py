"""perf-shell (setup --shell), for real in throwaway nodes: real sudo, real capsh, real
perf_event_open. What a session may do is pinned down here; so are the sudoers drop-in's
validation, the refusals that leave the node unchanged, audit, remove, and nosuid nodes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
from conftest import PERFGROUP
from node import ENV, Node

from perfgroup.engine.verify import COUNTER

pytestmark = pytest.mark.integration

GROUP = "perf_users"
HELPER = f"/usr/local/libexec/perfgroup/{GROUP}/perf-shell"
SUDOERS = f"/etc/sudoers.d/perfgroup-{GROUP}"
COMMAND = "/usr/local/bin/perf-shell"
DEST = f"/usr/local/libexec/perfgroup/{GROUP}/perf"
# A program that calls perf_event_open itself, system-wide (as PAPI or LIKWID would): verify's own.
COUNT = ("python3", "-c", COUNTER)
PERFMON = 1 << 38
SYSLOG = 1 << 34


def setup(node: Node, *extra: str) -> Any:
    return node.run([PERFGROUP, "setup", "--group", GROUP, "--no-verify", *extra])


def shell_node(node: Node, *extra: str) -> Node:
    node.ok("useradd -M -s /bin/sh alice && useradd -M -s /bin/sh bob")
    result = setup(node, "--member", "alice", "--shell", *extra)
    assert result.returncode == 0, result.stdout + result.stderr
    return node


def caps(status: str) -> dict[str, int]:
    return {line.split(":")[0]: int(line.split()[1], 16) for line in status.splitlines() if line.startswith("Cap")}


def as_alice(node: Node, *argv: str) -> Any:
    return node.run(list(argv), user="alice")


def audit(node: Node) -> tuple[int, set[str]]:
    result = node.run([PERFGROUP, "audit", "--json", "--group", GROUP])
    report = json.loads(result.stdout)
    return result.returncode, {f["id"] for f in report["findings"] if f["severity"] != "ok"}


@pytest.fixture
def shell(node: Node) -> Node:
    return shell_node(node)


def test_the_session_holds_exactly_cap_perfmon_and_counts_system_wide(shell: Node) -> None:
    inside = caps(as_alice(shell, "perf-shell", "-c", "grep ^Cap /proc/self/status").stdout)
    assert inside["CapAmb"] == inside["CapEff"] == inside["CapPrm"] == PERFMON
    # A child started with a cleared environment keeps the ambient capability, and only it.
    cleared = caps(as_alice(shell, "perf-shell", "env", "-i", "/bin/grep", "^Cap", "/proc/self/status").stdout)
    assert cleared["CapAmb"] == cleared["CapEff"] == PERFMON
    # The program's own perf_event_open and the stock perf, system-wide: refused outside, allowed inside.
    assert as_alice(shell, *COUNT).returncode == 1
    counted = as_alice(shell, "perf-shell", *COUNT)
    assert counted.returncode == 0 and counted.stdout.startswith("counted"), counted.stdout + counted.stderr
    assert "perf_event_open: Permission denied" in as_alice(shell, *COUNT).stderr
    assert as_alice(shell, "/usr/bin/perf", "stat", "-a", "-e", "cpu-clock", "--", "true").returncode != 0
    stat = as_alice(shell, "perf-shell", "/usr/bin/perf", "stat", "-a", "-e", "cpu-clock", "--", "true")
    assert stat.returncode == 0, stat.stderr
    # The member's identity, not root's: uid, HOME and the working directory's owner.
    assert as_alice(shell, "perf-shell", "-c", 'id -un; echo "$HOME"').stdout.split() == ["alice", "/home/alice"]


def test_the_session_cannot_regain_root_and_its_secure_bits_are_locked(shell: Node) -> None:
    sudo = as_alice(shell, "perf-shell", "sh", "-c", "sudo -n true")
    assert sudo.returncode != 0
    printed = as_alice(shell, "perf-shell", "/usr/sbin/capsh", "--print").stdout
    assert "Securebits: 0357/0xef/" in printed, printed
    for bit in ("secure-noroot: yes (locked)", "secure-no-suid-fixup: yes (locked)",
                "secure-no-ambient-raise: yes (locked)"):
        assert bit in printed, printed
    # Raising another capability into the ambient set is refused inside.
    raised = as_alice(shell, "perf-shell", "/usr/sbin/capsh", "--addamb=cap_syslog", "--", "-c", "true")
    assert raised.returncode != 0


def test_after_exit_no_process_holds_the_capability(shell: Node) -> None:
    assert as_alice(shell, "perf-shell", "-c", "sleep 0.2 & wait").returncode == 0
    holders = []
    for pid in shell.processes():
        try:
            status = Path(f"/proc/{pid}/status").read_text()
        except OSError:
            continue
        if caps(status).get("CapAmb", 0):
            holders.append(pid)
    assert holders == []


def test_arguments_reach_the_members_shell_unread(shell: Node) -> None:
    # Quoting, globs, $(...) and an option-looking argument are data to the member's command.
    tricky = ["--user=root", "$(id -u)", "*", "a b"]
    printed = as_alice(shell, "perf-shell", "printf", "%s\\n", *tricky)
    assert printed.stdout.splitlines() == tricky, printed.stderr
    # Calling the helper through sudo directly with capsh options: still the member, still only perfmon.
    direct = shell.run(["sudo", "-n", HELPER, "--user=root", "-c", "id -u"], user="alice")
    assert direct.returncode != 0 or direct.stdout.strip() != "0"
    direct = shell.run(["sudo", "-n", HELPER, "-c", "id -u; grep ^CapEff /proc/self/status"], user="alice")
    assert direct.stdout.split()[0] != "0" and caps(direct.stdout)["CapEff"] == PERFMON


def test_a_non_member_is_refused_by_sudo(shell: Node) -> None:
    assert shell.run(["sudo", "-n", HELPER, "-c", "true"], user="bob").returncode != 0
    refused = shell.run(["perf-shell", "-c", "true"], user="bob")
    assert refused.returncode != 0 and "not in group" in refused.stderr
    assert shell.run([HELPER, "-c", "true"], user="alice").returncode != 0  # without sudo: nothing


def test_the_drop_in_is_root_s_0440_and_parses(shell: Node) -> None:
    assert shell.ok(f"stat -c '%U %G %a' {SUDOERS} {HELPER} {COMMAND}").split() == [
        "root", "root", "440", "root", "root", "755", "root", "root", "755"]
    assert f"%{GROUP} ALL=(root) NOPASSWD: {HELPER}" in shell.ok(f"cat {SUDOERS}")
    shell.ok("visudo -c")
    code, bad = audit(shell)
    assert code == 0 and not bad
    assert setup(shell, "--shell").stdout.count("nothing to change") == 1


def test_audit_sees_the_drop_in_changed_or_broken_and_an_unsafe_helper(shell: Node) -> None:
    shell.ok(f"echo 'bob ALL=(ALL) ALL ALL' >> {SUDOERS}")
    code, bad = audit(shell)
    assert code == 2 and {"sudoers.modified", "sudoers.invalid"} <= bad
    shell.ok(f"chmod o+w {HELPER}")
    assert "file.unsafe" in audit(shell)[1]
    assert setup(shell, "--shell").returncode == 0  # setup writes them back (the drop-in checked first)
    assert audit(shell) == (0, set())


def test_remove_deletes_all_of_it(shell: Node) -> None:
    assert shell.run([PERFGROUP, "remove", "--group", GROUP]).returncode == 0
    for path in (SUDOERS, HELPER, COMMAND):
        assert not shell.path(path).exists(), path


def test_setup_without_shell_retires_it(shell: Node) -> None:
    assert setup(shell).returncode == 0
    for path in (SUDOERS, HELPER, COMMAND):
        assert not shell.path(path).exists(), path


def test_an_opted_in_capability_joins_the_session(node: Node) -> None:
    shell_node(node, "--shell-caps", "cap_syslog")
    inside = caps(as_alice(node, "perf-shell", "-c", "grep ^Cap /proc/self/status").stdout)
    assert inside["CapAmb"] == inside["CapEff"] == PERFMON | SYSLOG
    assert json.loads(node.ok(f"cat /var/lib/perfgroup/{GROUP}.json"))["shell_caps"] == ["cap_syslog"]


@pytest.mark.parametrize(("args", "message"), [
    (("--shell", "--shell-caps", "cap_sys_ptrace"), "would let every member become root"),
    (("--shell", "--shell-caps", "cap_net_raw"), "not needed for profiling"),
    (("--shell", "--shell-caps", "cap_nosuch"), "--shell-caps"),
    (("--shell-caps", "cap_syslog"), "give --shell too"),
])
def test_bad_input_is_one_line_exit_2_and_changes_nothing(node: Node, args: tuple[str, ...], message: str) -> None:
    node.ok("useradd -M -s /bin/sh alice")
    before = node.snapshot()
    result = setup(node, "--member", "alice", *args)
    assert result.returncode == 2 and message in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert node.snapshot() == before


def test_without_sudo_setup_refuses_and_changes_nothing(node: Node) -> None:
    node.ok("useradd -M -s /bin/sh alice && rm /usr/bin/sudo")
    before = node.snapshot()
    result = setup(node, "--member", "alice", "--shell")
    assert result.returncode == 2 and "sudo is not installed" in result.stderr
    assert node.snapshot() == before


def test_a_drop_in_visudo_refuses_never_reaches_sudoers_d(node: Node) -> None:
    # A visudo that rejects every file: the run fails at the check and leaves no drop-in, no temp file.
    node.ok("useradd -M -s /bin/sh alice && mv /usr/sbin/visudo /usr/sbin/visudo.real && "
            "printf '#!/bin/sh\\necho \"$2: syntax error\" >&2\\nexit 1\\n' > /usr/sbin/visudo && chmod 755 /usr/sbin/visudo")
    result = setup(node, "--member", "alice", "--shell")
    assert result.returncode != 0 and "check_write_sudoers" in result.stdout + result.stderr
    assert node.ok("ls -A /etc/sudoers.d").split() == ["README"]


def test_a_nosuid_node_refuses_without_shell_and_uses_the_shell_with_it(make_node: Any) -> None:
    node = make_node(nosuid_dirs=(f"/usr/local/libexec/perfgroup/{GROUP}",))
    node.ok("useradd -M -s /bin/sh alice")
    before = node.snapshot()
    refused = setup(node, "--member", "alice")
    assert refused.returncode == 2 and "--shell" in refused.stderr and len(refused.stderr.strip().splitlines()) == 1
    assert node.snapshot() == before
    result = node.run([PERFGROUP, "setup", "--group", GROUP, "--member", "alice", "--shell"])  # with verify
    assert result.returncode == 0, result.stdout + result.stderr
    assert "file capabilities do not work on this mount" in result.stdout and "members use perf-shell" in result.stdout
    assert not node.path(DEST).exists()
    counted = as_alice(node, "perf-shell", *COUNT)
    assert counted.returncode == 0, counted.stdout + counted.stderr
    code, bad = audit(node)
    assert code == 0 and not bad
    assert "nothing to change" in setup(node, "--shell").stdout


def test_verify_runs_the_shell_workloads(node: Node) -> None:
    node.ok("useradd -M -s /bin/sh alice")
    result = node.run([PERFGROUP, "setup", "--group", GROUP, "--member", "alice", "--shell", "--json"])
    assert result.returncode == 0, result.stdout + result.stderr
    rows = {row["id"]: row for row in json.loads(result.stdout)["verify"]["workloads"]}
    for name in ("shell_perf_stat", "shell_counter"):
        assert rows[name]["ok"] and rows[name]["member"]["outcome"] == "allowed", rows[name]
        assert rows[name]["non_member"]["outcome"] == "refused", rows[name]


@pytest.mark.parametrize("step", ["check_write_sudoers", "rename_write_sudoers"])
def test_a_run_killed_around_the_drop_in_leaves_sudo_working(make_node: Any, step: str) -> None:
    """Killed with the checked drop-in still under its temporary name: sudo skips that name (it has
    a '.'), sudoers parses, and the next setup finishes and clears the temp file."""
    node = make_node()
    node.ok("useradd -M -s /bin/sh alice")
    marker = "/run/perfgroup-test-pause"
    env = {**ENV, "PERFGROUP_TEST_PAUSE_FILE": marker, "PERFGROUP_TEST_PAUSE_AT": step}
    proc = subprocess.Popen(node.argv([PERFGROUP, "setup", "--group", GROUP, "--member", "alice", "--shell", "--no-verify"]),
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while not (node.path(marker).exists() and node.path(marker).read_text().strip()):
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
        time.sleep(0.02)
    os.kill(int(node.path(marker).read_text().split()[0]), signal.SIGKILL)
    proc.wait(timeout=30)
    left = node.ok("ls -A /etc/sudoers.d").split()
    assert left[0].startswith(".perfgroup-tmp-") and "README" in left and SUDOERS.rsplit("/", 1)[1] not in left, left
    node.ok("visudo -c")
    assert setup(node, "--shell").returncode == 0
    assert node.ok("ls -A /etc/sudoers.d").split() == ["README", "perfgroup-perf_users"]
    assert as_alice(node, "perf-shell", "true").returncode == 0


def shell_only_node(make_node: Any) -> Node:
    """A node where the copy's directory is nosuid, set up with perf-shell only (no copy)."""
    node = make_node(nosuid_dirs=(f"/usr/local/libexec/perfgroup/{GROUP}",))
    node.ok("useradd -M -s /bin/sh alice && useradd -M -s /bin/sh bob")
    result = node.run([PERFGROUP, "setup", "--group", GROUP, "--member", "alice", "--shell"])
    assert result.returncode == 0, result.stdout + result.stderr
    assert not node.path(DEST).exists()
    return node


def functional(node: Node) -> tuple[int, dict[str, dict[str, str]]]:
    result = node.run([PERFGROUP, "audit", "--functional", "--json", "--group", GROUP])
    return result.returncode, {f["id"]: f for f in json.loads(result.stdout)["findings"]}


NO_COPY = (f"no copy to probe on this node: file capabilities do not work on this mount "
           f"(/usr/local/libexec/perfgroup/{GROUP} is on a nosuid mount); members use perf-shell")


def test_verify_on_a_shell_only_node_proves_perf_shell_and_says_there_is_no_copy(make_node: Any) -> None:
    node = shell_only_node(make_node)
    result = node.run([PERFGROUP, "verify", "--group", GROUP])
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == ("member (a fresh uid + group): profiled system-wide in a perf-shell session; perf-shell's "
                        "command, helper and sudoers drop-in are as setup wrote them")
    assert lines[1].startswith(f"non-member (a fresh uid): refused: {SUDOERS} lets only %{GROUP} run {HELPER} through "
                               "sudo, and run without sudo it gave nothing ("), lines[1]
    assert NO_COPY in lines and any(line.startswith("not run: sudo:") for line in lines)
    assert "FAILED" not in result.stdout and "NOT AS EXPECTED" not in result.stdout

    as_json = node.run([PERFGROUP, "verify", "--group", GROUP, "--json"])
    assert as_json.returncode == 0, as_json.stdout + as_json.stderr
    doc = json.loads(as_json.stdout)
    assert (doc["ok"], doc["member_ok"], doc["non_member_refused"], doc["copy_probed"]) == (True, True, True, False)
    assert doc["member"]["returncode"] == 0 and doc["non_member"]["returncode"] not in (0, None)
    assert doc["shell_only"]["reason"] == "a nosuid mount" and doc["shell_only"]["member_problems"] == []
    rows = {row["id"]: row for row in doc["workloads"]}
    for name in ("shell_perf_stat", "shell_counter"):
        assert rows[name]["member"]["outcome"] == "allowed" and rows[name]["non_member"]["outcome"] == "refused", rows[name]
    assert rows["count_system"]["unavailable"].startswith("no copy on this node (a nosuid mount)")

    code, found = functional(node)
    assert code == 0, found
    assert found["verify.member"]["severity"] == found["verify.non_member"]["severity"] == "ok"
    assert found["verify.member"]["message"] == lines[0] and found["copy.shell_only"]["severity"] == "ok"
    assert all(f["severity"] == "ok" for f in found.values()), [f for f in found.values() if f["severity"] != "ok"]


def test_verify_on_a_shell_only_node_fails_when_perf_shell_is_broken(make_node: Any) -> None:
    node = shell_only_node(make_node)
    node.ok(f"rm {HELPER}")
    assert as_alice(node, "perf-shell", "true").returncode != 0  # members really cannot start it
    result = node.run([PERFGROUP, "verify", "--group", GROUP])
    assert result.returncode == 1 and "verification failed" in result.stderr, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == f"member (a fresh uid + group): FAILED: {HELPER} is missing: members cannot start perf-shell"
    assert lines[1].startswith("non-member (a fresh uid): refused") and NO_COPY in lines
    code, found = functional(node)
    assert code == 2 and found["verify.member"]["severity"] == "critical" and HELPER in found["verify.member"]["message"]
    assert found["verify.member"]["fix"] == f"perfgroup setup --group {GROUP} --shell"

    assert node.run([PERFGROUP, "setup", "--group", GROUP, "--shell", "--no-verify"]).returncode == 0
    assert node.run([PERFGROUP, "verify", "--group", GROUP]).returncode == 0
    # A drop-in that lets everyone start the helper: bob (no member) really gets a session, and verify says so.
    node.ok(f"echo 'ALL ALL=(root) NOPASSWD: {HELPER}' >> {SUDOERS} && visudo -c")
    assert node.run(["sudo", "-n", HELPER, "-c", "true"], user="bob").returncode == 0
    result = node.run([PERFGROUP, "verify", "--group", GROUP])
    assert result.returncode == 1, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert lines[1] == (f"non-member (a fresh uid): MAY START perf-shell: {SUDOERS} holds more than the rule for "
                        f"%{GROUP}: ALL ALL=(root) NOPASSWD: {HELPER}")
    assert lines[0].startswith(f"member (a fresh uid + group): FAILED: {SUDOERS} was edited since setup wrote it")
    code, found = functional(node)
    assert code == 2 and found["verify.non_member"]["severity"] == "critical"
