"""Per-job access under Slurm on a real kernel and a real systemd (bookworm's): what the overlay
nodes of tests/integration/test_slurm.py cannot show.

Debian's own units start munge, slurmctld and slurmd (slurmd.service has Delegate=yes), with
`ProctrackType=proctrack/cgroup` on cgroup v2 and `PrologFlags=Alloc,Contain`, as a site runs them.
Alice (not a member) submits with sbatch:
- an exclusive `-C perf` job: the prolog lowers kernel.perf_event_paranoid to 0 (`--job-paranoid 0`),
  an in-process perf_event_open counter (what LIKWID and PAPI do) counts CPU-wide, plain `perf`
  profiles system-wide; the epilog restores 2, and alice is refused again;
- a shared `-C perf` job runs with paranoid and the copy untouched, and journald has the prolog's
  "gets no grant" line;
- an epilog that cannot restore drains the node (`scontrol show node`: DRAIN and a reason);
- a grant left behind by a killed slurmd is critical in the audit, and after a real reboot the boot
  unit has revoked it (the state disk keeps /etc, /usr/local and /var/lib; /run is empty again).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from images import ensure_image
from qemu import BootResult, Machine, state_disk
from slurm import slurm_conf
from test_fresh_node import Expectations, step_rc

from perfgroup.engine.verify import COUNTER

pytestmark = pytest.mark.vm

COPY = "/usr/local/libexec/perfgroup/perf_users/perf"
VM_NODE, VM_CPUS = "pgvm", 2  # qemu.py boots every guest with -smp 2
GRANTS = "/run/perfgroup/grants"

# The guest has no network, only lo, and no /etc/hosts: names must resolve from files, and a
# second IPv4 address on lo makes glibc's AI_ADDRCONFIG (which Slurm uses) answer at all.
CLUSTER = f"""
hostname {VM_NODE}
printf '127.0.0.1 localhost {VM_NODE}\\n' > /etc/hosts
ip addr add 10.254.0.1/32 dev lo
mkdir -p /etc/slurm/prolog.d /etc/slurm/epilog.d /var/spool/slurmctld /var/spool/slurmd
cat > /etc/slurm/slurm.conf <<'EOF'
{slurm_conf(node=VM_NODE, hostname=VM_NODE, cpus=VM_CPUS, proctrack="cgroup", prolog_flags="Alloc,Contain")}EOF
""" + r"""
echo CgroupPlugin=cgroup/v2 > /etc/slurm/cgroup.conf
# The site's own scripts beside ours (the glob must always match something).
printf '#!/bin/sh\nexit 0\n' > /etc/slurm/prolog.d/00-site
cp /etc/slurm/prolog.d/00-site /etc/slurm/epilog.d/00-site
chmod 755 /etc/slurm/prolog.d/00-site /etc/slurm/epilog.d/00-site
[ -e /etc/munge/munge.key ] || mungekey --create
cat > /tmp/counter.py <<'PY'
""" + COUNTER + r"""PY
cat > /tmp/job.sh <<'EOF'
#!/bin/sh
{
    echo "paranoid $(cat /proc/sys/kernel/perf_event_paranoid)"
    echo "cgroup $(cat /proc/self/cgroup)"
    python3 /tmp/counter.py && echo "counter ok"
    perf stat -a -e cpu-clock -- true 2>/dev/null && echo "perf ok"
    /usr/local/libexec/perfgroup/perf_users/perf stat -a -e cpu-clock -- true 2>/dev/null && echo "copy ok"
} > /tmp/job.tmp 2>&1
mv /tmp/job.tmp /tmp/job.out
while [ ! -e /tmp/stop ]; do sleep 0.5; done
EOF
chmod 755 /tmp/job.sh /tmp/counter.py
# What the audit decides from the job's cgroup alone (no process list to go by).
ALIVE='/opt/perfgroup/bin/python -c "import sys; from perfgroup.engine.job_facts import job_alive; print(job_alive(sys.argv[1], 1000, proc=\"/nonexistent\"))" $(cat /tmp/jobid)'
# A wait measured by the clock: a command that itself takes seconds must not stretch it.
wait_for() {
    _end=$(($(date +%s) + $1)); shift
    until sh -c "$*" >/dev/null 2>&1; do
        [ "$(date +%s)" -lt "$_end" ] || return 1
        sleep 1
    done
}
submit() {
    rm -f /tmp/stop /tmp/job.out
    runuser -u alice -- sh -c "cd /tmp && sbatch --parsable $1 -o /dev/null /tmp/job.sh" > /tmp/jobid
    wait_for 120 'test -e /tmp/job.out' || true
}
finish() {
    touch /tmp/stop
    wait_for 120 'test -z "$(squeue -h)"' || true
}
"""

SETUP = r"""
step setup perfgroup setup --group perf_users --member bob --job-feature perf --job-paranoid 0 --no-verify
step_sh daemons 'systemctl start munge slurmctld slurmd'
wait_for 120 'test "$(sinfo -h -o %T)" = idle' || true
step_sh sinfo 'sinfo -h -o %T; tail -n 20 /var/log/slurmctld.log /var/log/slurmd.log >&2'
"""

EXCLUSIVE_JOB = r"""
submit '-C perf --exclusive'
step_sh job_out 'cat /tmp/job.out'
step_sh record 'cat /run/perfgroup/grants/$(cat /tmp/jobid)'
step audit_during perfgroup audit --json
step_sh alive_during "$ALIVE"
finish
step paranoid_after cat /proc/sys/kernel/perf_event_paranoid
step records_after ls -A /run/perfgroup/grants
step acl_after getfacl -cp /usr/local/libexec/perfgroup/perf_users/perf
step_as alice_after alice 'python3 /tmp/counter.py'
"""

SHARED_JOB = r"""
submit '-C perf'
step_sh shared_out 'cat /tmp/job.out'
finish
step_sh shared_log 'journalctl -q -o cat -t perfgroup | grep "gets no grant"'
"""

DRAIN = r"""
submit '-C perf --exclusive'
# Someone other than root could have changed the record: the epilog must not trust it.
chmod 666 /run/perfgroup/grants/$(cat /tmp/jobid)
touch /tmp/stop
wait_for 120 'sinfo -h -o %T | grep -q drain' || true
step_sh drained 'scontrol show node "$(hostname)"'
step paranoid_drained cat /proc/sys/kernel/perf_event_paranoid
chmod 644 /run/perfgroup/grants/$(cat /tmp/jobid)
step_sh repair '/usr/local/sbin/perfgroup-node job-revoke --group perf_users --job $(cat /tmp/jobid)'
step paranoid_repaired cat /proc/sys/kernel/perf_event_paranoid
"""


def findings(result: BootResult, step: str) -> dict[str, str]:
    try:
        return {f["id"]: f["severity"] for f in json.loads(result.steps[step].stdout)["findings"]}
    except (KeyError, ValueError):
        return {}


def test_job_paranoid_drain_and_cgroup_proctrack_under_systemd(wheels: Path) -> None:
    machine = Machine(ensure_image("bookworm-slurm"), wheels)
    result = machine.boot(CLUSTER + SETUP + EXCLUSIVE_JOB + SHARED_JOB + DRAIN, mode="systemd", timeout=900)
    exp = Expectations(result)
    exp.expect(result.install_rc == 0, f"perfgroup installs from the wheel:\n{result.install_log}")
    exp.expect(step_rc(result, "setup") == 0, "setup --job-feature perf --job-paranoid 0", "setup")
    sinfo = result.steps.get("sinfo")
    exp.expect(sinfo is not None and sinfo.stdout.strip() == "idle", "Debian's units bring the node up idle", "sinfo")
    out = result.steps.get("job_out")
    exp.expect(out is not None and "paranoid 0" in out.stdout, "the exclusive job sees paranoid 0", "job_out")
    exp.expect(out is not None and "counter ok" in out.stdout,
               "an in-process CPU-wide perf_event_open counter works in the job", "job_out")
    exp.expect(out is not None and "perf ok" in out.stdout, "plain perf stat -a works in the job", "job_out")
    exp.expect(out is not None and "copy ok" in out.stdout, "alice runs the privileged copy in her job", "job_out")
    alive = result.steps.get("alive_during")
    exp.expect(alive is not None and alive.stdout.strip() == "True",
               "the job's populated cgroup alone says it runs", "alive_during")
    exp.expect(out is not None and re.search(r"0::/system.slice/[^/]*_slurmstepd.scope/job_[0-9]+/step_batch/", out.stdout),
               "the job runs in its own cgroup in NODENAME_slurmstepd.scope (proctrack/cgroup)", "job_out")
    record = result.steps.get("record")
    exp.expect(record is not None and "paranoid_before=2" in record.stdout, "the record holds the value before",
               "record")
    during = findings(result, "audit_during")
    exp.expect(during.get("job.grant_active") == "ok" and "paranoid.low" not in during,
               f"the audit names the live grant, not a low paranoid: {during}", "audit_during")
    after = result.steps.get("paranoid_after")
    exp.expect(after is not None and after.stdout.strip() == "2", "the epilog restores paranoid 2", "paranoid_after")
    records = result.steps.get("records_after")
    exp.expect(records is not None and records.rc == 0 and records.stdout.strip() == "", "no record after the job",
               "records_after")
    acl = result.steps.get("acl_after")
    exp.expect(acl is not None and acl.rc == 0 and "group::" in acl.stdout and "user:alice" not in acl.stdout,
               "no ACL entry for alice after the job", "acl_after")
    refused = result.steps.get("alice_after")
    exp.expect(refused is not None and refused.rc != 0 and "Permission denied" in refused.stderr + refused.stdout,
               "alice's counter is refused after the job", "alice_after")
    shared = result.steps.get("shared_out")
    exp.expect(shared is not None and "paranoid 2" in shared.stdout and "counter ok" not in shared.stdout
               and "copy ok" not in shared.stdout,
               "a shared -C perf job runs with paranoid 2 and gets nothing", "shared_out")
    log = result.steps.get("shared_log")
    exp.expect(log is not None and "not exclusive" in log.stdout and "alice" in log.stdout,
               "journald has the prolog's line: alice's job asked for perf, not exclusive", "shared_log")
    drained = result.steps.get("drained")
    exp.expect(drained is not None and "DRAIN" in drained.stdout and "Reason=Epilog error" in drained.stdout,
               "an epilog that cannot restore drains the node with a reason", "drained")
    kept = result.steps.get("paranoid_drained")
    exp.expect(kept is not None and kept.stdout.strip() == "0", "the drained node still has the job's 0", "paranoid_drained")
    exp.expect(step_rc(result, "repair") == 0, "root's repair: the record made root's again, job-revoke", "repair")
    repaired = result.steps.get("paranoid_repaired")
    exp.expect(repaired is not None and repaired.stdout.strip() == "2", "job-revoke restores 2", "paranoid_repaired")
    exp.check()


# A node crash: every slurmstepd (the job with it) and slurmd die, no epilog runs.
CRASH = r"""
submit '-C perf --exclusive'
step_sh crash_record 'cat /run/perfgroup/grants/$(cat /tmp/jobid)'
# The stepds live in NODENAME_slurmstepd.scope, apart from slurmd.service: the kernel kills that tree.
scope=$(echo /sys/fs/cgroup/system.slice/*slurmstepd.scope)
step_sh crash "systemctl kill -s KILL slurmd.service slurmctld.service && echo 1 > $scope/cgroup.kill"
wait_for 60 "! grep -qs 'populated 1' $scope/job_$(cat /tmp/jobid)/cgroup.events" || true
step_sh crash_cgroup "grep -s populated $scope/job_$(cat /tmp/jobid)/cgroup.events || echo gone"
step_sh alive_crashed "$ALIVE"
step audit_crashed perfgroup audit --json
"""

# The next boot: /run is empty, the ACL entry is still on the copy (the state disk); the boot unit
# has run before this scenario (it is ordered before multi-user.target).
AFTER_REBOOT = f"""
step heal_log journalctl -b -o cat -u perfgroup-heal-perf_users.service
step acl_rebooted getfacl -cp {COPY}
step paranoid_rebooted cat /proc/sys/kernel/perf_event_paranoid
step audit_rebooted perfgroup audit --json
step_as alice_rebooted alice '{COPY} stat -e task-clock true'
"""


def test_a_grant_left_by_a_crash_is_critical_and_the_boot_unit_revokes_it(wheels: Path, tmp_path: Path) -> None:
    machine = Machine(ensure_image("bookworm-slurm"), wheels)
    disk = state_disk(tmp_path / "state.img")
    crashed = machine.boot(CLUSTER + SETUP + CRASH, mode="systemd", state=disk, timeout=900)
    exp = Expectations(crashed)
    exp.expect(step_rc(crashed, "setup") == 0, "setup --job-feature perf --job-paranoid 0", "setup")
    record = crashed.steps.get("crash_record")
    exp.expect(record is not None and "user=alice" in record.stdout, "alice's job was granted", "crash_record")
    cgroup = crashed.steps.get("crash_cgroup")
    exp.expect(cgroup is not None and cgroup.stdout.strip() in ("gone", "populated 0"),
               "after the crash the job's cgroup is gone or empty", "crash_cgroup")
    alive = crashed.steps.get("alive_crashed")
    exp.expect(alive is not None and alive.stdout.strip() == "False", "and the job is gone for the audit",
               "alive_crashed")
    found = findings(crashed, "audit_crashed")
    exp.expect(step_rc(crashed, "audit_crashed") == 2 and found.get("job.grant_stale") == "critical"
               and found.get("job.record_gone") == "warning",
               f"the audit calls the grant stale (critical) and its job gone: {found}", "audit_crashed")
    exp.check()
    rebooted = machine.boot(AFTER_REBOOT, mode="systemd", state=disk)
    exp = Expectations(rebooted)
    acl = rebooted.steps.get("acl_rebooted")
    exp.expect(acl is not None and acl.rc == 0 and "group::" in acl.stdout and "user:alice" not in acl.stdout,
               "after the reboot the boot unit has taken alice's ACL entry off the copy", "acl_rebooted")
    heal = rebooted.steps.get("heal_log")
    exp.expect(heal is not None and "alice" in heal.stdout, "the boot unit's journal names what it revoked",
               "heal_log")
    paranoid = rebooted.steps.get("paranoid_rebooted")
    exp.expect(paranoid is not None and paranoid.stdout.strip() == "2", "paranoid is setup's 2 again",
               "paranoid_rebooted")
    found = findings(rebooted, "audit_rebooted")
    exp.expect(step_rc(rebooted, "audit_rebooted") == 0 and not [f for f in found if f.startswith("job.")],
               f"the audit is clean: {found}", "audit_rebooted")
    refused = rebooted.steps.get("alice_rebooted")
    exp.expect(refused is not None and refused.rc != 0 and "Permission denied" in refused.stderr,
               "alice is refused the copy again", "alice_rebooted")
    exp.check()
