"""`perfgroup audit --prometheus` on a 10,000-node fleet, side by side in one run with the bare
HTTP queries it needs and with `audit -i` over SSH, extrapolated from a small loopback cluster.

    .venv/bin/python bench/prometheus_fleet.py [--nodes 10000] [--runs 5] [--ssh-nodes 8]

The fleet is built from real textfile output: a throwaway node runs setup --textfile-dir and the
timer's command (converged), then again with its capabilities removed; 10,000 instances (a few
with another gid, another build, no capabilities, a stale audit, gone, or without perfgroup) are
backfilled with `promtool tsdb create-blocks-from openmetrics` into a temporary Prometheus on
127.0.0.1. Needs root (the throwaway nodes), Debian's prometheus and curl. Nothing on the machine
is changed; every process is stopped by its PID.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))
sys.path.insert(0, str(REPO))

from promlab import Processes, fleet_openmetrics, timer_textfiles  # noqa: E402

from perfgroup import prometheus_audit  # noqa: E402

BIN = Path(sys.executable).parent
PERFGROUP = str(BIN / "perfgroup")
# node index -> variant: what the findings must name.
DRIFT = {
    **{i: "gid" for i in (17, 4242, 9001)}, **{i: "build" for i in (123, 7777)}, **{i: "nocaps" for i in (55, 5555)},
    **{i: "stale" for i in (99, 999)}, **{i: "stopped" for i in (1234, 4321)}, **{i: "never" for i in (2024, 8888)},
}


def backfill(directory: Path, nodes: int) -> float:
    """The fleet written and backfilled into directory/tsdb; seconds promtool took."""
    openmetrics = directory / "fleet.om"
    fleet_openmetrics(openmetrics, timer_textfiles(PERFGROUP), DRIFT, nodes, int(time.time()))
    start = time.perf_counter()
    subprocess.run([shutil.which("promtool") or "promtool", "tsdb", "create-blocks-from", "openmetrics", str(openmetrics),
                    str(directory / "prometheus" / "tsdb")], check=True, stdout=subprocess.DEVNULL)
    took = time.perf_counter() - start
    openmetrics.unlink()
    return took


def wall(argv: list[str], env: dict[str, str] | None = None) -> tuple[float, int, float]:
    """Seconds, exit code and the child's CPU seconds."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    code = subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, check=False).returncode
    took = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return took, code, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def max_rss_mb(argv: list[str]) -> float:
    """Peak memory of argv alone (a fresh parent, so no other child's peak counts)."""
    probe = ("import resource, subprocess, sys; subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, "
             "stderr=subprocess.DEVNULL); print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)")
    return int(subprocess.run([sys.executable, "-c", probe, *argv], capture_output=True, text=True, check=True).stdout) / 1024


def curl_argv(url: str, queries: list[str], parallel: int = 1) -> list[str]:
    """One curl asking every query (in turn, or `parallel` at a time as the audit does): the floor
    for asking the same PromQL."""
    argv = [shutil.which("curl") or "curl", "-sf"]
    if parallel > 1:
        argv += ["--parallel", "--parallel-max", str(parallel)]
    for n, expr in enumerate(queries):
        if n:
            argv += ["--next", "-sf"]
        argv += ["-o", "/dev/null", "--data-urlencode", f"query={expr}", f"{url}/api/v1/query"]
    return argv


def ssh_per_host(nodes: int, runs: int) -> tuple[float, float]:
    """audit -i on a loopback cluster (bench/run.py's): wall seconds and controller CPU-s per host."""
    import run as fleet_bench  # bench/run.py: the existing fleet bench's cluster and commands

    cluster = fleet_bench.make_cluster(nodes)
    try:
        commands = fleet_bench.fleet_commands(cluster, nodes)
        fleet_bench.timed(cluster, commands["deploy"], 1)
        env = {**os.environ, **cluster.env(), **fleet_bench.SSH_ENV}
        samples = [wall(commands["audit"], env) for _ in range(runs)]
        return statistics.median(s[0] for s in samples) / nodes, statistics.median(s[2] for s in samples) / nodes
    finally:
        cluster.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--nodes", type=int, default=10000)
    parser.add_argument("--runs", type=int, default=5, help="runs per measurement (median)")
    parser.add_argument("--ssh-nodes", type=int, default=8, help="loopback cluster for audit -i (0: skip)")
    args = parser.parse_args()
    if os.geteuid() != 0:
        sys.exit("bench/prometheus_fleet.py needs root (throwaway nodes)")
    procs = Processes()
    with tempfile.TemporaryDirectory(prefix="perfgroup-bench-") as tmp:
        try:
            directory = Path(tmp)
            took = backfill(directory, args.nodes)
            port = procs.prometheus({"global": {}}, directory / "prometheus", "--storage.tsdb.retention.time=10y")
            url = f"http://127.0.0.1:{port}"
            client = prometheus_audit.Client(url)
            report, queries = prometheus_audit.run(prometheus_audit.Settings("perf_users"), client.query)
            audit = [PERFGROUP, "audit", "--prometheus", url, "--json"]
            commands = {"curl": curl_argv(url, queries), "curl_parallel": curl_argv(url, queries, prometheus_audit.PARALLEL),
                        "audit": audit}
            measured: dict[str, list[tuple[float, int, float]]] = {name: [] for name in commands}
            for _ in range(args.runs):  # interleaved: a busy machine's drift hits all three alike
                for name, argv in commands.items():
                    measured[name].append(wall(argv))
            rss = max_rss_mb(audit)
        finally:
            procs.close()
    found = {f["id"]: len(f["hosts"]) for f in report["fleet"] if f["severity"] != "ok"}
    serial, bare, ours = (statistics.median(s[0] for s in measured[k]) for k in ("curl", "curl_parallel", "audit"))
    cpu = statistics.median(s[2] for s in measured["audit"])
    print(f"{args.nodes} nodes backfilled in {took:.2f} s (promtool); {len(queries)} PromQL queries; findings: {found}")
    print(f"  {'measurement':58} {'seconds':>8} {'ratio':>7}")
    print(f"  {f'curl of the same PromQL, {prometheus_audit.PARALLEL} at a time (bare HTTP)':58} {bare:8.3f} {1:7.2f}x")
    print(f"  {'curl of the same PromQL, one after another':58} {serial:8.3f} {serial / bare:7.2f}x")
    print(f"  {'perfgroup audit --prometheus --json':58} {ours:8.3f} {ours / bare:7.2f}x  "
          f"target <= 2x: {'PASS' if ours <= 2 * bare else 'MISS'} (CPU {cpu:.2f} s, peak RSS {rss:.0f} MB)")
    if args.ssh_nodes:
        per_host, cpu_per_host = ssh_per_host(args.ssh_nodes, args.runs)
        print(f"  {f'perfgroup audit -i, {args.nodes} nodes (extrapolated from {args.ssh_nodes})':58} "
              f"{per_host * args.nodes:8.0f} {per_host * args.nodes / bare:7.0f}x  "
              f"({per_host:.3f} s and {cpu_per_host:.3f} controller CPU-s per host)")
    print(json.dumps({"nodes": args.nodes, "curl_s": bare, "curl_serial_s": serial, "audit_s": ours, "audit_cpu_s": cpu, "audit_rss_mb": rss}))


if __name__ == "__main__":
    main()
