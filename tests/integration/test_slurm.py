"""Per-job access under a real Slurm 22.05 (tests/slurm.py: munge, slurmctld, slurmd in a
throwaway node): the prolog and epilog `setup --job-feature perf` installs, jobs submitted as the
non-member alice with srun/sbatch. Nothing is mocked; the cluster is shared by the module's tests
(they run in order: the last ones kill slurmd and drain the node)."""

from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from typing import Any

import pytest
from conftest import PERFGROUP, integration_possible
from node import ENV, Node, NodeOptions, SyslogReceiver
from slurm import Cluster

from perfgroup.engine.acl import USER, decode_acl

pytestmark = pytest.mark.integration

GROUP = "perf_users"
DEST = f"/usr/local/libexec/perfgroup/{GROUP}/perf"
PROLOG = f"/etc/slurm/prolog.d/50-perfgroup-{GROUP}"
EPILOG = f"/etc/slurm/epilog.d/50-perfgroup-{GROUP}"
NODE_CMD = "/usr/local/sbin/perfgroup-node"
GRANTS = "/run/perfgroup/grants"
PERF_A = f"{DEST} stat -a -e cpu-clock -- true"
STOP = "/tmp/perfgroup-test-stop"
# A batch job that leaves a system-wide perf record behind it (setsid nohup: out of the job's
# process tree) and ends when the test says so.
LEAVES_PERF = f"""#!/bin/sh
setsid nohup perf record -a -o /tmp/left.data -- sleep 600 >/dev/null 2>&1 < /dev/null &
echo $! > /tmp/left.pid
i=0
while [ ! -e {STOP} ] && [ $i -lt 600 ]; do sleep 0.2; i=$((i+1)); done
"""
WAITS = f"""#!/bin/sh
i=0
while [ ! -e {STOP} ] && [ $i -lt 600 ]; do sleep 0.2; i=$((i+1)); done
"""


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    reason = integration_possible()
    if reason:
        pytest.fail(reason)
    node = Node(NodeOptions(own_dev=True))  # its own /dev: a test syslog socket at /dev/log (SyslogReceiver)
    started: Cluster | None = None
    try:
        node.ok("useradd -M -s /bin/sh alice && useradd -M -s /bin/sh bob")
        result = node.run([PERFGROUP, "setup", "--group", GROUP, "--member", "bob", "--job-feature", "perf",
                           "--no-verify"])
        assert result.returncode == 0, result.stdout + result.stderr
        started = Cluster(node)
        yield started
    finally:
        if started is not None:
            started.stop()
        node.close()


def acl_of(node: Node, path: str = DEST) -> bytes | None:
    try:
        return os.getxattr(node.path(path), "system.posix_acl_access")
    except OSError as error:
        assert error.errno == errno.ENODATA
        return None


def grants(node: Node) -> list[str]:
    where = node.path(GRANTS)
    return sorted(os.listdir(where)) if where.is_dir() else []


def alice_refused(node: Node) -> bool:
    return node.sh(PERF_A + " >/dev/null 2>&1", user="alice").returncode != 0


def audit(node: Node, *args: str) -> tuple[int, dict[str, Any]]:
    result = node.run([NODE_CMD, "audit", "--group", GROUP, "--format", "json", *args])
    return result.returncode, json.loads(result.stdout)


def finding_ids(report: dict[str, Any]) -> dict[str, str]:
    return {f["id"]: f["severity"] for f in report["findings"]}


def clean_after(cluster: Cluster) -> None:
    """Once every job (and its epilog: COMPLETING) is over: no record, no ACL, alice refused."""
    node = cluster.node
    cluster.wait_for(lambda: node.sh("squeue -h").stdout.strip() == "", "no job left, epilogs done")
    assert grants(node) == [] and acl_of(node) is None
    assert alice_refused(node)


def test_setup_installs_and_records_the_prolog_and_epilog(cluster: Cluster) -> None:
    node = cluster.node
    record = json.loads(node.ok(f"cat /var/lib/perfgroup/{GROUP}.json"))
    for path in (PROLOG, EPILOG):
        assert path in record["files"]
        assert node.ok(f"stat -c '%U %a' {path}").split() == ["root", "755"]
    assert "--feature 'perf'" in node.ok(f"cat {PROLOG}")
    code, report = audit(node)
    assert code == 0, report
    assert report["job_grants_active"] == 0
    assert alice_refused(node)


def test_an_exclusive_job_asking_for_perf_profiles_system_wide_then_is_refused_again(cluster: Cluster) -> None:
    code, out = cluster.srun("alice", f"-C perf --exclusive sh -c '{PERF_A} && perf stat -a -e cpu-clock -- true "
                                      f"&& cat {GRANTS}/$SLURM_JOB_ID'")
    assert code == 0, out + cluster.logs()
    assert "cpu-clock" in out and "user=alice" in out and "acl_added=1" in out
    clean_after(cluster)


def test_an_entry_left_on_the_copy_for_the_jobs_user_is_the_grants_and_goes_with_the_job(cluster: Cluster) -> None:
    """An entry for alice that no other live grant backs (set by hand, left by a crash) is the
    prolog's own (acl_added=1): the epilog takes it away, instead of leaving it for good."""
    node = cluster.node
    node.ok(f"setfacl -m u:alice:r-x {DEST}")
    assert not alice_refused(node)
    code, out = cluster.srun("alice", f"-C perf --exclusive sh -c '{PERF_A} && cat {GRANTS}/$SLURM_JOB_ID'")
    assert code == 0, out + cluster.logs()
    assert "cpu-clock" in out and "user=alice" in out and "acl_added=1" in out, out
    clean_after(cluster)  # no record, no ACL, alice refused


@pytest.fixture
def syslog(cluster: Cluster) -> Iterator[SyslogReceiver]:
    """What perfgroup-node sends to syslog during one test (the node's own /dev/log)."""
    with SyslogReceiver(cluster.node) as receiver:
        yield receiver


@pytest.mark.parametrize(("args", "why"), [
    ("--exclusive", None),  # asked for nothing: the prolog exits before any Python
    ("-C noperf --exclusive", None),  # noperf is not perf: likewise
    ("-C perf", "the allocation is not exclusive"),
    ("-C 'perf|noperf' --exclusive", "constraint 'perf|noperf' requests perf only as an alternative"),
])
def test_jobs_that_are_not_eligible_run_without_a_grant(cluster: Cluster, syslog: SyslogReceiver, args: str,
                                                        why: str | None) -> None:
    """No feature, the feature only as a substring, a shared allocation, the feature only as an
    alternative: the job runs (the prolog exits 0) and alice stays refused inside it. A job that
    asked for perf and is not eligible leaves one syslog line (authpriv.notice) saying why; a job
    that did not ask leaves none."""
    code, out = cluster.srun("alice", f"{args} sh -c 'echo job=$SLURM_JOB_ID; {PERF_A} >/dev/null 2>&1; "
                                      f"echo perf=$?; ls {GRANTS} 2>/dev/null | wc -l'")
    assert code == 0, out + cluster.logs()
    assert "perf=0" not in out and "perf=" in out
    assert out.strip().splitlines()[-1] == "0"
    job = next(line[4:] for line in out.splitlines() if line.startswith("job="))
    clean_after(cluster)
    lines = [line for line in syslog.lines() if "perfgroup[" in line]
    if why is None:
        assert lines == [], lines
        return
    assert len(lines) == 1, lines
    assert lines[0].startswith("<85>"), lines  # authpriv.notice
    assert f": job {job} of alice asked for perf but gets no grant: {why}" in lines[0], lines


def test_a_member_needs_no_grant(cluster: Cluster) -> None:
    code, out = cluster.srun("bob", f"-C perf --exclusive sh -c '{PERF_A} >/dev/null 2>&1; echo perf=$?; "
                                    f"ls {GRANTS} 2>/dev/null | wc -l'")
    assert code == 0 and "perf=0" in out and out.strip().splitlines()[-1] == "0", out
    clean_after(cluster)


def test_perf_shell_works_in_a_members_job_and_a_granted_non_member_gets_the_copy_only(cluster: Cluster) -> None:
    """Issue 19, item 4: sudo is per node, so a member's job step (srun) or batch script can start
    perf-shell; a non-member granted the copy for an exclusive -C perf job still cannot."""
    node = cluster.node
    added = node.run([PERFGROUP, "setup", "--group", GROUP, "--member", "bob", "--job-feature", "perf", "--shell",
                      "--no-verify"])
    assert added.returncode == 0, added.stdout + added.stderr
    inside = "perf-shell -c 'grep ^CapAmb /proc/self/status; perf stat -a -e cpu-clock -- true'"
    code, out = cluster.srun("bob", f"sh -c \"{inside}\"")
    assert code == 0 and "CapAmb:\t0000004000000000" in out and "cpu-clock" in out, out + cluster.logs()
    job = cluster.sbatch("bob", "", f"#!/bin/sh\n{inside} > /tmp/bob-batch.out 2>&1\n")
    cluster.wait_job(job, ("COMPLETED", "FAILED"))
    assert "JobState=COMPLETED" in cluster.job_state(job), node.ok("cat /tmp/bob-batch.out")
    assert "cpu-clock" in node.ok("cat /tmp/bob-batch.out")
    code, out = cluster.srun("alice", f"-C perf --exclusive sh -c '{PERF_A} >/dev/null 2>&1; echo copy=$?; "
                                      "sudo -n /usr/local/libexec/perfgroup/perf_users/perf-shell -c true 2>&1; "
                                      "echo shell=$?'")
    assert code == 0 and "copy=0" in out and "shell=0" not in out, out
    clean_after(cluster)


def _wait(check: Any, what: str, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.2)
    raise AssertionError(f"waited {seconds}s for {what}")


def _alive(pid: int) -> bool:
    """Running (a zombie waiting for its reaper has ended)."""
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def test_the_epilog_ends_a_perf_left_running_and_the_audit_saw_the_grant(cluster: Cluster) -> None:
    node = cluster.node
    node.ok(f"rm -f {STOP} /tmp/left.pid")
    job = cluster.sbatch("alice", "-C perf --exclusive -o /dev/null", LEAVES_PERF)
    _wait(lambda: node.path("/tmp/left.pid").exists() and node.path("/tmp/left.pid").read_text().strip(),
          "the job's background perf")
    pid = int(node.path("/tmp/left.pid").read_text())
    _wait(lambda: os.readlink(f"/proc/{pid}/exe").endswith("/perf"), "perf running")
    code, report = audit(node)
    assert finding_ids(report).get("job.grant_active") == "ok", report
    assert report["job_grants_active"] == 1 and code == 0, [f for f in report["findings"] if f["severity"] != "ok"]
    prom = node.run([NODE_CMD, "audit", "--group", GROUP, "--format", "prometheus"]).stdout
    assert f'perfgroup_job_grants_active{{group="{GROUP}"}} 1' in prom
    assert "'job_grants'=1;;;0" in node.run([NODE_CMD, "audit", "--group", GROUP, "--format", "nagios"]).stdout
    node.ok(f"touch {STOP}")
    cluster.wait_job(job, ("COMPLETED",))
    cluster.wait_for(lambda: not grants(node), "the epilog")
    assert not _alive(pid)
    clean_after(cluster)
    node.ok(f"rm -f {STOP}")


def without_slurm_state(snapshot: dict[str, Any]) -> dict[str, Any]:
    """The node's files but the daemons' own: slurmctld saves its job state on its own schedule."""
    return {path: entry for path, entry in snapshot.items()
            if not path.startswith(("var/spool/slurm", "var/log/slurm", "run/slurm", "run/munge", "var/log/munge"))}


def test_job_commands_refuse_bad_input_with_one_line_and_change_nothing(cluster: Cluster) -> None:
    node = cluster.node
    before = without_slurm_state(node.snapshot())
    for argv, code in (
        (["job-grant", "--group", GROUP, "--feature", "perf"], 2),  # no SLURM_JOB_ID: not slurmd's prolog
        (["job-grant", "--group", GROUP, "--feature", "perf", "--paranoid", "2"], 2),
        (["job-grant", "--group", "Bad;group", "--feature", "perf"], 2),
        (["job-revoke", "--group", GROUP, "--job", "1;2"], 2),
        (["job-revoke", "--group", GROUP], 2),
    ):
        result = node.run([NODE_CMD, *argv])
        assert result.returncode == code, (argv, result.stderr)
        assert len(result.stderr.strip().splitlines()) == 1 and result.stderr.startswith("perfgroup-node job-"), \
            result.stderr
    assert without_slurm_state(node.snapshot()) == before


def _restart_slurmctld(cluster: Cluster) -> None:
    node = cluster.node
    pid = cluster.daemon_pid("slurmctld")
    assert pid is not None
    os.kill(pid, signal.SIGTERM)
    _wait(lambda: not _alive(pid), "slurmctld stopped")
    node.ok("/usr/sbin/slurmctld")
    cluster.wait_for(lambda: node.sh("scontrol ping").returncode == 0, "slurmctld answering")


def test_the_job_submit_lua_snippet_in_the_real_slurmctld(cluster: Cluster) -> None:
    """Debian's slurmctld has the lua job_submit plugin (liblua5.1): the snippet as shipped."""
    from perfgroup import artifacts

    node = cluster.node
    cluster.write("/etc/slurm/job_submit.lua", artifacts.job_submit_lua("perf"))
    node.ok("echo JobSubmitPlugins=lua >> /etc/slurm/slurm.conf")
    _restart_slurmctld(cluster)
    try:
        code, out = cluster.srun("alice", "-C perf true")
        assert code != 0 and "-C perf needs --exclusive" in out, out
        for args in ("-C perf --exclusive true", "-C noperf true", "true"):
            code, out = cluster.srun("alice", args)
            assert code == 0, (args, out)
    finally:
        node.ok("sed -i /^JobSubmitPlugins=/d /etc/slurm/slurm.conf")
        _restart_slurmctld(cluster)
    clean_after(cluster)


def _job_pids(node: Node, job: str) -> list[int]:
    """The job's processes in the node: its slurmstepds (title `slurmstepd: [JOB.STEP]`) and
    whatever carries its id in the environment (its tasks)."""
    marker, title = f"SLURM_JOB_ID={job}\0".encode(), f"slurmstepd: [{job}.".encode()
    out = []
    for pid in node.processes():
        try:
            with open(f"/proc/{pid}/environ", "rb") as handle:
                environ = b"\0" + handle.read()
            with open(f"/proc/{pid}/cmdline", "rb") as handle:
                cmdline = handle.read()
        except OSError:
            continue
        if marker in environ or cmdline.startswith(title):
            out.append(pid)
    return out


def _uid_of(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/status") as handle:
            return next(int(line.split()[1]) for line in handle if line.startswith("Uid:"))
    except (OSError, StopIteration):
        return None


def test_a_grant_left_by_a_dead_slurmd_is_critical_and_heal_revokes_it(cluster: Cluster) -> None:
    """A crash (slurmd, the job's slurmstepds and tasks killed, no epilog) leaves the record and
    alice's entry: the audit calls it stale, also while bob runs processes carrying the job's id in
    their environment or titled as its stepd (anyone can; only a root stepd or the job's populated
    cgroup says the job runs), and heal revokes it."""
    node = cluster.node
    node.ok(f"rm -f {STOP}")
    job = cluster.sbatch("alice", "-C perf --exclusive -o /dev/null", WAITS)
    cluster.wait_job(job, ("RUNNING",))
    _wait(lambda: grants(node) == [job], "the grant")
    _wait(lambda: any(_uid_of(pid) == 0 for pid in _job_pids(node, job)), "the job's slurmstepd")
    stepds = [pid for pid in _job_pids(node, job) if _uid_of(pid) == 0]
    code, report = audit(node)
    assert finding_ids(report).get("job.grant_active") == "ok", report  # by its root slurmstepd alone
    # The node crashes: slurmd and the job die (its stepds too), no epilog runs.
    cluster.kill_slurmd()
    for pid in _job_pids(node, job):
        os.kill(pid, signal.SIGKILL)
    _wait(lambda: not _job_pids(node, job) and not any(_alive(pid) for pid in stepds), "the job's processes gone")
    # bob forges what used to count as the job running, and what a stepd looks like to others.
    node.ok(f"setpriv --reuid=bob --regid=bob --init-groups -- sh -c '"
            f"env SLURM_JOB_ID={job} sleep 600 >/dev/null 2>&1 & "
            f"bash -c \"exec -a \\\"slurmstepd: [{job}.batch]\\\" sleep 600\" >/dev/null 2>&1 &'")
    bob = int(node.ok("id -u bob"))
    _wait(lambda: len(_job_pids(node, job)) == 2, "bob's forgeries")
    forged = _job_pids(node, job)
    assert {_uid_of(pid) for pid in forged} == {bob}
    try:
        code, report = audit(node)
        found = finding_ids(report)
        assert code == 2 and found.get("job.grant_stale") == "critical" and found.get("job.record_gone") == "warning", \
            [f for f in report["findings"] if f["severity"] != "ok" or f["id"].startswith("job.")]
        assert found.get("copy.acl") == "critical" and "job.grant_active" not in found
        assert report["job_grants_active"] == 0
        assert not alice_refused(node)
        healed = node.run([NODE_CMD, "heal", "--group", GROUP])
        assert healed.returncode == 0, healed.stderr
        assert f"job {job}: revoked alice" in healed.stdout
        assert grants(node) == [] and acl_of(node) is None and alice_refused(node)
        code, report = audit(node)
        assert code == 0 and not [f for f in finding_ids(report) if f.startswith("job.")], report
    finally:
        for pid in forged:
            os.kill(pid, signal.SIGKILL)
    _wait(lambda: not any(_alive(pid) for pid in forged), "bob's forgeries gone")
    node.ok(f"touch {STOP}; scancel {job}; /usr/sbin/slurmd -N {cluster_node_name()}")


def cluster_node_name() -> str:
    from slurm import NODE_NAME

    return NODE_NAME


def granted_job(cluster: Cluster, script: str = WAITS) -> str:
    """An idle node again (resumed if an earlier test drained it), then alice's exclusive -C perf
    batch job running `script` with its grant (WAITS, the default, ends when the test touches STOP)."""
    node = cluster.node
    node.ok(f"scontrol update nodename={cluster_node_name()} state=resume || true; rm -f {STOP}")
    cluster.wait_for(lambda: cluster.state() == "idle", "the node idle")
    job = cluster.sbatch("alice", "-C perf --exclusive -o /dev/null", script)
    cluster.wait_job(job, ("RUNNING",))
    _wait(lambda: grants(node) == [job], "the grant")
    return job


def test_an_epilog_that_cannot_restore_drains_the_node(cluster: Cluster) -> None:
    node = cluster.node
    job = granted_job(cluster)
    # Someone other than root could now have changed the record: the epilog must not trust it.
    node.ok(f"chmod 666 {GRANTS}/{job}")
    node.ok(f"touch {STOP}")
    cluster.wait_for(lambda: "drain" in cluster.state(), "the node drained", 90)
    shown = node.ok(f"scontrol show node {cluster_node_name()}")
    assert "DRAIN" in shown and "Reason=" in shown, shown
    assert acl_of(node) is not None  # not restored: that is why the node is drained
    # The administrator's repair: make the record root's again and revoke.
    node.ok(f"chmod 644 {GRANTS}/{job}")
    revoked = node.run([NODE_CMD, "job-revoke", "--group", GROUP, "--job", job])
    assert revoked.returncode == 0, revoked.stderr
    clean_after(cluster)


PAUSED = "/run/perfgroup-test-paused"


def test_a_revoke_killed_half_way_is_critical_and_nothing_puts_the_entry_back(cluster: Cluster) -> None:
    """A revoke of a running job's grant (`job-revoke` by hand, `perfgroup remove`) killed after
    it took alice's entry away and before it deleted the record (the pause hook holds it there; an
    epilog over PrologEpilogTimeout or the OOM killer would do the same): the record says
    revoking=1, the audit calls it job.revoke_incomplete (critical), not a lost grant to put back;
    setup leaves the entry away while the job runs; heal finishes the revoke; the job's own
    epilog then has nothing left to do."""
    node = cluster.node
    job = granted_job(cluster)
    assert alice_entry(node)
    node.ok(f"rm -f {PAUSED}")
    env = {**ENV, "PERFGROUP_TEST_PAUSE_AT": "delete_grant_record", "PERFGROUP_TEST_PAUSE_FILE": PAUSED}
    revoke = subprocess.Popen(node.argv([NODE_CMD, "job-revoke", "--group", GROUP, "--job", job]), env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    _wait(lambda: revoke.poll() is not None or (node.path(PAUSED).exists() and node.path(PAUSED).read_text()),
          "the revoke paused")
    assert revoke.poll() is None, revoke.communicate()
    os.kill(int(node.path(PAUSED).read_text().split()[0]), signal.SIGKILL)
    revoke.communicate(timeout=30)
    assert revoke.returncode != 0
    node.ok(f"rm -f {PAUSED}")
    assert "revoking=1" in node.path(f"{GRANTS}/{job}").read_text()
    assert not alice_entry(node) and alice_refused(node)
    code, report = audit(node)
    found = finding_ids(report)
    assert code == 2 and found.get("job.revoke_incomplete") == "critical", report
    assert not {"job.grant_lost", "job.grant_active"} & set(found) and report["job_grants_active"] == 0, found
    incomplete = next(f for f in report["findings"] if f["id"] == "job.revoke_incomplete")
    assert incomplete["fix"] == f"perfgroup-node job-revoke --group {GROUP} --job {job}", incomplete
    again = node.run([PERFGROUP, "setup", "--group", GROUP, "--member", "bob", "--job-feature", "perf", "--shell",
                      "--no-verify"])
    assert again.returncode == 0, again.stdout + again.stderr
    assert not alice_entry(node) and alice_refused(node)
    healed = node.run([NODE_CMD, "heal", "--group", GROUP])
    assert healed.returncode == 0, healed.stdout + healed.stderr
    assert f"job {job}: revoked alice" in healed.stdout, healed.stdout
    assert grants(node) == [] and acl_of(node) is None and alice_refused(node)
    code, report = audit(node)
    assert code == 0 and not [f for f in finding_ids(report) if f.startswith("job.")], report
    node.ok(f"touch {STOP}")
    cluster.wait_job(job, ("COMPLETED",))
    clean_after(cluster)
    assert cluster.state() == "idle", node.ok(f"scontrol show node {cluster_node_name()}")
    node.ok(f"rm -f {STOP}")


STOP2 = "/tmp/perfgroup-test-stop2"
IN_JOB = "/tmp/perfgroup-in-job.out"
# alice's job for the reinstall test: a system-wide perf started at once on the copy as it is then
# (out of the job's process tree), one more run of the copy as it is when the test touches STOP,
# its output in IN_JOB, then the job ends when the test touches STOP2.
PROFILES_AFTER_STOP = f"""#!/bin/sh
setsid nohup {DEST} stat -a -e cpu-clock -- sleep 600 >/dev/null 2>&1 < /dev/null &
echo $! > /tmp/left.pid
i=0
while [ ! -e {STOP} ] && [ $i -lt 600 ]; do sleep 0.2; i=$((i+1)); done
{PERF_A} > {IN_JOB}.part 2>&1
echo "perf=$?" >> {IN_JOB}.part && mv {IN_JOB}.part {IN_JOB}
i=0
while [ ! -e {STOP2} ] && [ $i -lt 600 ]; do sleep 0.2; i=$((i+1)); done
"""


def alice_entry(node: Node) -> bool:
    """The copy's access ACL has u:alice:r-x (decoded as the engine does)."""
    raw = acl_of(node)
    uid = int(node.ok("id -u alice"))
    return raw is not None and any(e.tag == USER and e.id == uid and e.perm == 5 for e in decode_acl(raw))


def drop_acl(node: Node) -> None:
    """What the copy looked like after a reinstall before issue 18's fix: no ACL at all."""
    node.ok(f"python3 -c \"import os; os.removexattr('{DEST}', 'system.posix_acl_access')\"")


def test_a_copy_replaced_or_repaired_during_a_job_keeps_the_grant_and_the_epilog_leaves_nothing(
        cluster: Cluster) -> None:
    """Issue 18: a perf upgrade during alice's job (the package hook's `heal --if-source-changed`
    replaces the copy) and a heal that repairs it in place both end with her entry on the copy,
    rebuilt from the live grant record: she still profiles inside the job. An entry lost anyway is
    `job.grant_lost` and heal puts it back. The epilog of a record whose entry is already gone
    drains nothing, and ends the perf she started on the old copy (a deleted inode with its caps)."""
    node = cluster.node
    node.ok(f"rm -f {STOP2} {IN_JOB} {IN_JOB}.part /tmp/left.pid")
    job = granted_job(cluster, PROFILES_AFTER_STOP)
    _wait(lambda: node.path("/tmp/left.pid").exists() and node.path("/tmp/left.pid").read_text().strip(),
          "the job's background perf")
    pid = int(node.path("/tmp/left.pid").read_text())
    _wait(lambda: os.readlink(f"/proc/{pid}/exe").endswith("/perf"), "perf running")
    assert alice_entry(node)
    inode = node.path(DEST).stat().st_ino
    # The upgrade: a new /usr/bin/perf (another inode, one more byte), then the hook's heal.
    node.ok("cp /usr/bin/perf /usr/bin/.perf-new && printf '\\0' >> /usr/bin/.perf-new && "
            "mv /usr/bin/.perf-new /usr/bin/perf")
    code, report = audit(node)
    found = finding_ids(report)
    assert found.get("copy.stale") == "warning" and found.get("job.grant_active") == "ok", report
    healed = node.run([NODE_CMD, "heal", "--group", GROUP, "--if-source-changed"])
    assert healed.returncode == 0, healed.stdout + healed.stderr
    assert f"r-x kept for the live job grants of alice (job {job})" in healed.stdout, healed.stdout
    assert node.path(DEST).stat().st_ino != inode
    assert node.ok(f"sha256sum {DEST} /usr/bin/perf | cut -d' ' -f1 | uniq | wc -l").strip() == "1"
    assert alice_entry(node) and not alice_refused(node)
    assert os.readlink(f"/proc/{pid}/exe").endswith("/perf (deleted)")  # still running the old copy
    code, report = audit(node)
    assert code == 0 and finding_ids(report).get("job.grant_active") == "ok", \
        [f for f in report["findings"] if f["severity"] != "ok"]
    # Repaired in place (capabilities lost): the same entry, rebuilt from the record.
    node.ok(f"setcap -r {DEST}")
    healed = node.run([NODE_CMD, "heal", "--group", GROUP])
    assert healed.returncode == 0 and "set " in healed.stdout, healed.stdout + healed.stderr
    assert "cap_perfmon" in node.ok(f"getcap {DEST}") and alice_entry(node) and not alice_refused(node)
    # Lost by other means: the audit says so, heal puts it back.
    drop_acl(node)
    code, report = audit(node)
    found = finding_ids(report)
    assert code == 1 and found.get("job.grant_lost") == "warning" and "job.grant_active" not in found, report
    assert node.run([NODE_CMD, "heal", "--group", GROUP]).returncode == 0
    assert alice_entry(node) and audit(node)[0] == 0
    # Inside the job, through the copy as it is now.
    node.ok(f"touch {STOP}")
    _wait(lambda: node.path(IN_JOB).exists(), "the job's perf run")
    out = node.path(IN_JOB).read_text()
    assert "perf=0" in out and "cpu-clock" in out, out
    # The epilog of a record whose entry is already gone: nothing to fail on, nothing left.
    drop_acl(node)
    node.ok(f"touch {STOP2}")
    cluster.wait_job(job, ("COMPLETED",))
    cluster.wait_for(lambda: not grants(node), "the epilog")
    clean_after(cluster)
    assert not _alive(pid)
    assert cluster.state() == "idle", node.ok(f"scontrol show node {cluster_node_name()}")
    node.ok(f"rm -f {STOP} {STOP2}")


def test_remove_revokes_every_grant_then_removes_the_scripts(cluster: Cluster) -> None:
    node = cluster.node
    granted_job(cluster)
    assert not alice_refused(node)
    removed = node.run([PERFGROUP, "remove", "--group", GROUP])
    assert removed.returncode == 0, removed.stdout + removed.stderr
    assert grants(node) == []
    for path in (PROLOG, EPILOG, DEST):
        assert not node.path(path).exists(), path
    assert alice_refused(node)
    node.ok(f"touch {STOP}")
    cluster.wait_for(lambda: node.sh("squeue -h").stdout.strip() == "", "the job over")
    assert cluster.state() == "idle"  # the epilog found no record: nothing to fail on


@pytest.mark.parametrize(("args", "words"), [
    (["--job-feature", "perf;reboot"], "--job-feature 'perf;reboot' is not a Slurm feature name"),
    (["--job-feature", "perf", "--job-paranoid", "2"], "--job-paranoid must be 0 or 1, not 2"),
    (["--job-feature", "perf", "--job-paranoid", "5"], "--job-paranoid must be 0 or 1, not 5"),
    (["--job-feature", "perf", "--job-paranoid", "x"], "Invalid value for '--job-paranoid': 'x' is not a valid integer"),
    (["--job-feature"], "Option '--job-feature' requires an argument"),
    (["--job-paranoid", "0"], "--job-paranoid goes with --job-feature"),
])
def test_setup_refuses_bad_job_options_with_one_line_and_changes_nothing(users: Node, args: list[str],
                                                                         words: str) -> None:
    before = users.snapshot()
    result = users.run([PERFGROUP, "setup", "--group", GROUP, "--no-verify", *args])
    assert result.returncode == 2, result.stdout + result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert result.stderr.startswith("perfgroup: error: ") and words in result.stderr, result.stderr
    assert users.snapshot() == before


def test_the_role_refuses_a_bad_job_paranoid_with_the_clis_line(users: Node) -> None:
    """The module (through the collection's action plugin, as the role runs it) refuses
    perf_users_job_paranoid: 5 with the very line the CLI prints, before anything changes."""
    from perfgroup import collection

    cli = users.run([PERFGROUP, "setup", "--group", GROUP, "--job-feature", "perf", "--job-paranoid", "5"])
    assert cli.returncode == 2 and cli.stderr.startswith("perfgroup: error: "), cli.stderr
    users.ok(f"mkdir -p /tmp/collections/ansible_collections/perfgroup && "
             f"ln -s {collection.CHECKOUT} /tmp/collections/ansible_collections/perfgroup/hpc")
    before = users.snapshot()
    ansible = os.path.join(os.path.dirname(PERFGROUP), "ansible")
    result = users.run([ansible, "localhost", "-c", "local", "-m", "perfgroup.hpc.perf_users", "-a",
                        json.dumps({"group": GROUP, "job_feature": "perf", "job_paranoid": 5})],
                       env={"ANSIBLE_COLLECTIONS_PATH": "/tmp/collections", "ANSIBLE_LOCALHOST_WARNING": "0",
                            "ANSIBLE_STDOUT_CALLBACK": "perfgroup.hpc.perfgroup_json", "ANSIBLE_LOAD_CALLBACK_PLUGINS": "1",
                            "PYTHONWARNINGS": "ignore"})
    assert result.stdout.strip(), result.stderr
    answer = json.loads(result.stdout.strip().splitlines()[-1])["plays"][0]["tasks"][0]["hosts"]["localhost"]
    assert answer["failed"] and answer["refused"] and not answer["changed"], answer
    assert "perfgroup: error: " + answer["msg"] + "\n" == cli.stderr, (answer["msg"], cli.stderr)
    ansibles_own = ("root", "root/.ansible", "root/.ansible/tmp")  # ansible's (empty) temp directory
    assert {path: entry for path, entry in users.snapshot().items() if path not in ansibles_own} == before
