"""The Slurm prolog's cost per job, side by side in one run (issue 18): what every job pays
(a job that asks for nothing, one that asks for another feature), against `/bin/sh -c true`,
and the granting path (prolog then epilog for a real exclusive job: the node entry point, scontrol
asking the real slurmctld, the record, the ACL, and the revoke).

    .venv/bin/python bench/slurm_prolog.py [--runs 21]

Root; builds a throwaway node with a one-node Slurm (tests/slurm.py) like the integration tests;
nothing on the machine is changed. Timed inside the node with bench/timeit_cmds.py (each round
runs every command once, in turn). Prints a markdown table (docs/slurm.md has the last one).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))

from node import Node  # noqa: E402
from slurm import Cluster  # noqa: E402

PERFGROUP = str(Path(sys.executable).parent / "perfgroup")
GROUP = "perf_users"
PROLOG = f"/etc/slurm/prolog.d/50-perfgroup-{GROUP}"
EPILOG = f"/etc/slurm/epilog.d/50-perfgroup-{GROUP}"
WAITS = "#!/bin/sh\nwhile [ ! -e /tmp/bench-stop ]; do sleep 0.5; done\n"


def job_env(job: str, constraints: str | None) -> list[str]:
    env = ["env", "-i", "PATH=/usr/sbin:/usr/bin:/sbin:/bin", f"SLURM_JOB_ID={job}", "SLURM_JOB_USER=alice",
           "SLURM_JOB_UID=1001", "SLURM_SCRIPT_CONTEXT=prolog_slurmd"]
    return env + ([f"SLURM_JOB_CONSTRAINTS={constraints}"] if constraints is not None else [])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=21)
    runs = parser.parse_args().runs
    with Node() as node:
        node.ok("useradd -M -u 1001 -s /bin/sh alice && rm -f /tmp/bench-stop")
        done = node.run([PERFGROUP, "setup", "--group", GROUP, "--job-feature", "perf", "--no-verify"])
        assert done.returncode == 0, done.stderr
        cluster = Cluster(node)
        try:
            job = cluster.sbatch("alice", "-C perf --exclusive -o /dev/null", WAITS)
            cluster.wait_job(job, ("RUNNING",))
            # The prolog already granted it: time revoke + grant as one round (the record is gone
            # after the epilog, so every round takes the whole granting path).
            grant_cycle = ["sh", "-c", f"{' '.join(job_env(job, None))} SLURM_SCRIPT_CONTEXT=epilog_slurmd "
                                       f"/bin/sh {EPILOG} && {' '.join(job_env(job, 'perf'))} /bin/sh {PROLOG}"]
            commands = {
                "true": [*job_env("7", None), "/bin/sh", "-c", "true"],
                "nothing": [*job_env("7", None), "/bin/sh", PROLOG],
                "other": [*job_env("7", "noperf&bigmem"), "/bin/sh", PROLOG],
                "grant": grant_cycle,
            }
            result = node.run([sys.executable, str(REPO / "bench" / "timeit_cmds.py"), str(runs),
                               json.dumps(commands)], timeout=1800)
            assert result.returncode == 0, result.stderr
            samples = json.loads(result.stdout)
            assert node.path(f"/run/perfgroup/grants/{job}").exists()  # the last round granted again
            node.ok("touch /tmp/bench-stop")
        finally:
            cluster.stop()
    m = {name: statistics.median(values) for name, values in samples.items()}
    print(f"| prolog run (median of {runs}, timed inside the node) | ms | / `sh -c true` |")
    print("|---|---:|---:|")
    for name, label in (("true", "`/bin/sh -c true` (through the same `env -i`)"),
                        ("nothing", "job without constraints"),
                        ("other", "job with `-C noperf&bigmem`"),
                        ("grant", "`-C perf --exclusive`: epilog + prolog (revoke, scontrol, grant)")):
        print(f"| {label} | {m[name] * 1000:.2f} | {m[name] / m['true']:.1f}x |")


if __name__ == "__main__":
    main()
