"""A real one-node Slurm 22.05 cluster inside a throwaway node (tests/node.py): munge, slurmctld and
slurmd on 127.0.0.1 private ports, the node carrying Features=perf,noperf, prolog and epilog from
/etc/slurm/prolog.d/* and epilog.d/* as a site sets them. Nothing is mocked: jobs are submitted
with sbatch/srun as a user, under a hard `timeout -s KILL` (an srun left waiting ignores SIGTERM).
The daemons are stopped by the PIDs in their pid files (Node.close kills whatever else runs in
the node by its root)."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import time
from pathlib import Path

from cluster import free_port
from node import Node

NODE_NAME = "pgnode"
# Slurm's own ports (6817, 6818) in a VM; on this machine, two free ones per cluster, so that two
# test runs side by side (CI and a worktree) never talk to each other's daemons.
PORTS = (6817, 6818)
# What the prolog/epilog saw: a harmless site script of ours dumps its environment per job.
ENV_DUMP_DIR = "/var/tmp/slurm-env"


def slurm_conf(extra: str = "", *, node: str = NODE_NAME, hostname: str | None = None, cpus: int | None = None,
               proctrack: str = "linuxproc", prolog_flags: str = "Alloc", ports: tuple[int, int] = PORTS) -> str:
    """The one slurm.conf of the tests: the throwaway node's (defaults) and the qemu lane's
    (tests/vm/test_slurm_kernel.py: proctrack/cgroup, Contain)."""
    return f"""ClusterName=perfgroup-test
SlurmctldHost=localhost(127.0.0.1)
SlurmctldPort={ports[0]}
SlurmdPort={ports[1]}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
StateSaveLocation=/var/spool/slurmctld
SlurmdSpoolDir=/var/spool/slurmd
SlurmctldPidFile=/run/slurmctld.pid
SlurmdPidFile=/run/slurmd.pid
SlurmctldLogFile=/var/log/slurmctld.log
SlurmdLogFile=/var/log/slurmd.log
ProctrackType=proctrack/{proctrack}
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
Prolog=/etc/slurm/prolog.d/*
Epilog=/etc/slurm/epilog.d/*
PrologFlags={prolog_flags}
ReturnToService=2
SlurmdTimeout=30
MpiDefault=none
{extra}
NodeName={node} NodeAddr=127.0.0.1 NodeHostname={hostname or socket.gethostname()} CPUs={cpus or os.cpu_count()} RealMemory=1000 Features=perf,noperf State=UNKNOWN
PartitionName=main Nodes={node} Default=YES MaxTime=10 State=UP OverSubscribe=NO
"""


ENV_SCRIPT = f"""#!/bin/sh
# the site's own harmless script (the glob must always match something)
mkdir -p {ENV_DUMP_DIR}
env | sort > {ENV_DUMP_DIR}/$SLURM_SCRIPT_CONTEXT.$SLURM_JOB_ID
exit 0
"""


def two_free_ports() -> tuple[int, int]:
    first = free_port()
    second = free_port()
    while second == first:
        second = free_port()
    return first, second


class Cluster:
    def __init__(self, node: Node, extra_conf: str = "") -> None:
        self.node = node
        node.ok("mkdir -p /etc/slurm/prolog.d /etc/slurm/epilog.d /var/spool/slurmctld /var/spool/slurmd "
                "/run/munge && chown munge:munge /run/munge")
        self.write("/etc/slurm/slurm.conf", slurm_conf(extra_conf, ports=two_free_ports()))
        for where in ("prolog.d/00-site-env", "epilog.d/00-site-env"):
            self.write(f"/etc/slurm/{where}", ENV_SCRIPT, mode="755")
        node.ok("runuser -u munge -- /usr/sbin/munged")
        node.ok("/usr/sbin/slurmctld -i")
        self.wait_for(lambda: node.sh("scontrol ping").returncode == 0, "slurmctld answering")
        node.ok(f"/usr/sbin/slurmd -N {NODE_NAME}")
        self.wait_for(lambda: self.state() == "idle", "the node idle")

    def write(self, path: str, text: str, mode: str = "644") -> None:
        result = self.node.run(["sh", "-c", f"cat > {path} && chmod {mode} {path}"], input=text)
        assert result.returncode == 0, result.stderr

    def wait_for(self, check: object, what: str, seconds: float = 60) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if check():  # type: ignore[operator]
                return
            time.sleep(0.5)
        raise AssertionError(f"Slurm: waited {seconds}s for {what}: {self.logs()}")

    def state(self) -> str:
        return self.node.sh(f"sinfo -h -n {NODE_NAME} -o %T").stdout.strip()

    def logs(self) -> str:
        return self.node.sh("tail -n 20 /var/log/slurmctld.log /var/log/slurmd.log").stdout

    def srun(self, user: str, args: str, seconds: int = 90) -> tuple[int, str]:
        """A job step as `user`, waiting for its end; (exit code, stdout + stderr)."""
        result = self.node.run(["timeout", "-s", "KILL", str(seconds), "runuser", "-u", user, "--", "sh", "-c",
                                f"cd /tmp && srun --immediate=60 {args}"], timeout=seconds + 10)
        return result.returncode, result.stdout + result.stderr

    def sbatch(self, user: str, args: str, script: str) -> str:
        """Submit a batch job as `user`; its id."""
        result = self.node.run(["runuser", "-u", user, "--", "sh", "-c", f"cd /tmp && sbatch --parsable {args}"],
                               input=script, timeout=60)
        assert result.returncode == 0, result.stdout + result.stderr
        return result.stdout.strip().split(";")[0]

    def job_state(self, job: str) -> str:
        return self.node.sh(f"scontrol show job -o {job}").stdout

    def wait_job(self, job: str, states: tuple[str, ...], seconds: float = 90) -> None:
        self.wait_for(lambda: any(f"JobState={s}" in self.job_state(job) for s in states),
                      f"job {job} in {states}", seconds)

    def env_seen(self, context: str, job: str) -> dict[str, str]:
        text = self.node.path(f"{ENV_DUMP_DIR}/{context}.{job}").read_text()
        return dict(line.split("=", 1) for line in text.splitlines() if "=" in line)

    def daemon_pid(self, name: str) -> int | None:
        try:
            return int(self.node.path(f"/run/{name}.pid").read_text().strip())
        except (OSError, ValueError):
            return None

    def kill_slurmd(self) -> None:
        pid = self.daemon_pid("slurmd")
        assert pid is not None
        os.kill(pid, signal.SIGKILL)

    def stop(self) -> None:
        for name in ("slurmd", "slurmctld"):
            pid = self.daemon_pid(name)
            if pid is not None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGTERM)
        # munged and anything left: Node.close kills every process whose root is the node's


def read(path: Path) -> str:
    return path.read_text() if path.exists() else ""
