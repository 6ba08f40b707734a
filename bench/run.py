"""perfgroup benchmarks: one command, everything side by side, ratios against a baseline.

    .venv/bin/python bench/run.py [--runs 7] [--fleet-runs 5] [--sizes 1,2,4,8,16] [--skip-fleet] [--baseline REV]

Needs root (it builds throwaway overlay-root nodes and a loopback SSH cluster, exactly like the
integration tests) and the bench extra (pytest-testinfra). Medians of several runs; the claims are
the ratios, not the absolute seconds. Nothing on the machine is changed.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))

from cluster import Cluster  # noqa: E402
from node import Node, NodeOptions  # noqa: E402

BIN = Path(sys.executable).parent
PY = sys.executable
PERFGROUP = str(BIN / "perfgroup")
SSH_ENV = {
    "ANSIBLE_PIPELINING": "True",
    "ANSIBLE_SSH_ARGS": "-o ControlMaster=auto -o ControlPersist=60s",
    "ANSIBLE_GATHERING": "explicit",
}
MEMBERS = ["-e", json.dumps({"perf_users_members": ["alice"]})]


def median(samples: list[float]) -> float:
    return statistics.median(samples)


def verdict(ok: bool) -> str:
    return "PASS" if ok else "MISS"


def line(label: str, seconds: float, base: float, note: str = "") -> None:
    print(f"  {label:44} {seconds:8.3f} s  {seconds / base:6.2f}x  {note}")


def compile_bytecode() -> None:
    # An installed package ships .pyc files; an editable checkout would otherwise recompile
    # every module on every run (PYTHONDONTWRITEBYTECODE is set in the nodes).
    subprocess.run([PY, "-m", "compileall", "-q", str(REPO / "perfgroup")], check=True, stdout=subprocess.DEVNULL)


def baseline_install(rev: str) -> str:
    """The perfgroup command of another revision, installed (not editable) in its own venv, so the
    same run can time it side by side with this checkout."""
    where = Path(f"/tmp/perfgroup-bench-{rev}")
    if not (where / "venv" / "bin" / "perfgroup").exists():
        subprocess.run(["rm", "-rf", str(where)], check=True)
        where.mkdir(parents=True)
        archive = subprocess.run(["git", "-C", str(REPO), "archive", rev], check=True, capture_output=True).stdout
        subprocess.run(["tar", "-x", "-C", str(where)], input=archive, check=True)
        subprocess.run([PY, "-m", "venv", str(where / "venv")], check=True)
        subprocess.run([str(where / "venv" / "bin" / "pip"), "install", "-q", str(where)], check=True)
    return str(where / "venv" / "bin" / "perfgroup")


def checkout_install() -> str:
    """This checkout's perfgroup command, installed (not editable) in its own venv exactly as
    baseline_install installs the baseline: an editable install adds setuptools' import finder
    (pathlib, urllib, ipaddress: ~5 ms here) to every start, which the baseline does not pay."""
    where = Path("/tmp/perfgroup-bench-checkout")
    subprocess.run(["rm", "-rf", str(where / "src")], check=True)
    (where / "src").mkdir(parents=True)
    files = subprocess.run(["git", "-C", str(REPO), "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                           check=True, capture_output=True).stdout.decode().split("\0")
    for name in filter(None, files):
        if (REPO / name).is_symlink() or (REPO / name).is_file():  # the package's engine is a link into plugins/
            (where / "src" / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, where / "src" / name, follow_symlinks=False)
    if not (where / "venv" / "bin" / "pip").exists():
        subprocess.run([PY, "-m", "venv", str(where / "venv")], check=True)
        subprocess.run([str(where / "venv" / "bin" / "pip"), "install", "-q", str(where / "src")], check=True)
    else:  # dependencies are there: only this checkout's files change between runs
        subprocess.run([str(where / "venv" / "bin" / "pip"), "install", "-q", "--no-deps", "--force-reinstall",
                        str(where / "src")], check=True)
    return str(where / "venv" / "bin" / "perfgroup")


def process_count(node: Node, argv: list[str]) -> tuple[int, int]:
    """(execve calls, new processes or threads) of argv and everything it starts."""
    trace = node.run(["strace", "-f", "-qq", "-e", "trace=execve,clone,clone3,fork,vfork", "-o", "/dev/stderr", *argv])
    lines = trace.stderr.splitlines()
    execs = sum("execve(" in x for x in lines)
    forks = sum(any(f"{c}(" in x for c in ("clone", "fork", "vfork")) for x in lines)
    return execs, forks


def local(runs: int, baseline: str | None = None) -> dict[str, float]:
    print(f"\n1. Static local audit on one converged node (median of {runs}, timed inside the node)")
    base_cmd = baseline_install(baseline) if baseline else None
    installed = checkout_install()
    with Node(NodeOptions()) as node:
        node.ok("useradd -M alice")
        # Converged by the baseline when there is one: this checkout reads (migrates) its record.
        assert node.run([base_cmd or PERFGROUP, "setup", "--member", "alice"]).returncode == 0
        commands = {
            "floor": [PY, "-c", "import click"],
            "audit": [installed, "audit", "--json"],
            "text": [installed, "audit"],
            "editable": [PERFGROUP, "audit", "--json"],
            "shell": ["/bin/sh", str(REPO / "bench" / "audit.sh")],
        }
        if base_cmd:
            commands["baseline"] = [base_cmd, "audit", "--json"]
            commands["baseline_text"] = [base_cmd, "audit"]
        result = node.run([PY, str(REPO / "bench" / "timeit_cmds.py"), str(runs), json.dumps(commands)], timeout=900)
        samples = json.loads(result.stdout)
        m = {name: median(values) for name, values in samples.items()}
        line('python -c "import click" (floor)', m["floor"], m["floor"])
        line("perfgroup audit --json", m["audit"], m["floor"], f"target <= 1.25x: {verdict(m['audit'] <= 1.25 * m['floor'])}")
        line("perfgroup audit", m["text"], m["floor"])
        line("perfgroup audit --json, editable checkout", m["editable"], m["floor"], "(setuptools' finder at every start)")
        line("shell script (getent/stat/getcap/cat)", m["shell"], m["floor"])
        if base_cmd:
            line(f"perfgroup audit --json at {baseline}", m["baseline"], m["floor"],
                 f"this checkout / baseline = {m['audit'] / m['baseline']:.2f}x (target <= 1.0x + noise)")
            line(f"perfgroup audit at {baseline}", m["baseline_text"], m["floor"],
                 f"this checkout / baseline = {m['text'] / m['baseline_text']:.2f}x (target <= 1.0x + noise)")
        for name, argv in (("perfgroup audit --json", commands["audit"]), ("shell script", commands["shell"])):
            execs, forks = process_count(node, argv)
            print(f"  {name:44} execve {execs} (itself included), new processes/threads {forks}")
        probe = node.run([PY, "-c", "import sys\nfrom perfgroup.cli import main\ntry:\n    main(['audit','--json'])\n"
                          "except SystemExit:\n    pass\nprint(sorted(m for m in sys.modules if m.split('.')[0] in ('jinja2','ansible')), file=sys.stderr)"])
        print(f"  jinja2/ansible modules imported by the audit: {probe.stderr.strip().splitlines()[-1]}")
        return m


NODE_ENTRY = "/usr/local/sbin/perfgroup-node"
NODE_PYTHON = "/usr/bin/python3"


def node_entry(runs: int) -> dict[str, float]:
    """The node entry point's static audit as NHC (--format nagios) and the textfile timer
    (--format prometheus) run it, on the node's own python3, side by side with that
    interpreter's bare start and with the shell equivalent."""
    print(f"\n1b. Node entry point {NODE_ENTRY} on {NODE_PYTHON} (median of {runs}, timed inside the node)")
    with Node(NodeOptions()) as node:
        node.ok("useradd -M alice && mkdir -p /var/lib/node_exporter")
        assert node.run([PERFGROUP, "setup", "--member", "alice"]).returncode == 0
        nhc = [NODE_ENTRY, "audit", "--group", "perf_users", "--format", "nagios"]
        timer = [NODE_ENTRY, "audit", "--group", "perf_users", "--format", "prometheus",
                 "--textfile-dir", "/var/lib/node_exporter"]
        node.run(nhc)  # as root, like NHC: python writes the engine's bytecode cache once
        commands = {"floor": [NODE_PYTHON, "-c", "pass"], "nhc": nhc, "timer": timer,
                    "shell": ["/bin/sh", str(REPO / "bench" / "audit.sh")]}
        result = node.run([NODE_PYTHON, str(REPO / "bench" / "timeit_cmds.py"), str(runs), json.dumps(commands)],
                          timeout=900)
        m = {name: median(values) for name, values in json.loads(result.stdout).items()}
        line(f'{NODE_PYTHON} -c pass (floor)', m["floor"], m["floor"])
        line("shell script (getent/stat/getcap/cat)", m["shell"], m["floor"])
        for name, label in (("nhc", "perfgroup-node audit --format nagios (NHC)"),
                            ("timer", "perfgroup-node audit --format prometheus")):
            line(label, m[name], m["floor"],
                 f"/ shell = {m[name] / m['shell']:.2f}x, target <= 1.0x: {verdict(m[name] <= m['shell'])}")
        for name, argv in (("perfgroup-node audit (NHC)", nhc), ("perfgroup-node audit (timer)", timer),
                           ("shell script", commands["shell"])):
            execs, forks = process_count(node, argv)
            print(f"  {name:44} execve {execs} (itself included), new processes/threads {forks}")
        return m


def timed(cluster: Cluster, argv: list[str], runs: int) -> list[float]:
    samples = []
    env = {**cluster.env(), **SSH_ENV}
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=REPO, check=False)
        samples.append(time.perf_counter() - start)
    return samples


def make_cluster(size: int) -> Cluster:
    cluster = Cluster({f"n{i:02d}": NodeOptions() for i in range(size)})
    for ssh in cluster.nodes.values():
        ssh.node.ok("useradd -M alice")
    return cluster


def fleet_commands(cluster: Cluster, forks: int) -> dict[str, list[str]]:
    inv = str(cluster.inventory)
    return {
        "ping": [str(BIN / "ansible"), "all", "-i", inv, "-m", "ansible.builtin.ping", "--forks", str(forks)],
        "audit": [PERFGROUP, "audit", "-i", inv, "--json"],
        "deploy": [PERFGROUP, "deploy", "-i", inv, "--forks", str(forks), *MEMBERS, "--json"],
        "testinfra": [PY, "-m", "pytest", "-q", "-c", "/dev/null", "-p", "no:cacheprovider", "--hosts=ansible://all",
                      f"--ansible-inventory={inv}", str(REPO / "bench" / "testinfra_audit.py")],
        "builtin": [str(BIN / "ansible-playbook"), "-i", inv, str(REPO / "bench" / "audit_builtin.yml"), "--forks", str(forks)],
    }


def fleet(runs: int) -> None:
    size = 8
    print(f"\n2. Fleet audit, {size} nodes on loopback SSH (median of {runs}; testinfra median of {max(2, runs // 2)})")
    cluster = make_cluster(size)
    try:
        commands = fleet_commands(cluster, size)
        first = timed(cluster, commands["deploy"], 1)[0]
        ping = median(timed(cluster, commands["ping"], runs))
        audit = median(timed(cluster, commands["audit"], runs))
        builtin = median(timed(cluster, commands["builtin"], runs))
        testinfra = median(timed(cluster, commands["testinfra"], max(2, runs // 2)))
        line("ansible all -m ansible.builtin.ping (floor)", ping, ping)
        line("perfgroup audit -i", audit, ping, f"target <= 1.5x: {verdict(audit <= 1.5 * ping)}")
        line("pytest-testinfra suite (ansible://all)", testinfra, ping,
             f"perfgroup is {testinfra / audit:.1f}x faster, target >= 5x: {verdict(testinfra >= 5 * audit)}")
        line("playbook of builtin modules, task by task", builtin, ping, f"perfgroup is {builtin / audit:.1f}x faster")
        print(f"\n3. Converge, {size} nodes (first run once on fresh nodes, second run median of {runs})")
        second = median(timed(cluster, commands["deploy"], runs))
        line("perfgroup deploy, first run", first, ping)
        line("perfgroup deploy, second run (changed=0)", second, ping, f"target <= 2x ping: {verdict(second <= 2 * ping)}")
    finally:
        cluster.close()


def scaling(sizes: list[int], runs: int) -> None:
    print(f"\n4. Scaling (forks = nodes; median of {runs})")
    print(f"  {'nodes':>5} {'ping s':>8} {'audit -i s':>11} {'deploy 2nd s':>13} {'audit s/node':>13}")
    results: dict[int, float] = {}
    for size in sizes:
        cluster = make_cluster(size)
        try:
            commands = fleet_commands(cluster, size)
            timed(cluster, commands["deploy"], 1)
            ping = median(timed(cluster, commands["ping"], runs))
            audit = median(timed(cluster, commands["audit"], runs))
            deploy = median(timed(cluster, commands["deploy"], runs))
            results[size] = audit
            print(f"  {size:5d} {ping:8.3f} {audit:11.3f} {deploy:13.3f} {audit / size:13.3f}")
        finally:
            cluster.close()
    if 8 in results and 16 in results:
        ratio = results[16] / results[8]
        print(f"  audit -i, 16 nodes / 8 nodes: {ratio:.2f}x  target <= 1.3x: {verdict(ratio <= 1.3)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=9, help="runs per local measurement")
    parser.add_argument("--fleet-runs", type=int, default=5, help="runs per fleet measurement")
    parser.add_argument("--sizes", default="1,2,4,8,16", help="cluster sizes for the scaling table")
    parser.add_argument("--skip-fleet", action="store_true", help="only the local audit")
    parser.add_argument("--baseline", metavar="REV", help="also time the audit of git revision REV, side by side")
    args = parser.parse_args()
    if os.geteuid() != 0:
        sys.exit("bench/run.py needs root (throwaway nodes and a loopback SSH cluster)")
    if shutil.which("strace") is None:
        sys.exit("bench/run.py needs strace (apt-get install strace)")
    compile_bytecode()
    ansible = subprocess.run([str(BIN / "ansible"), "--version"], capture_output=True, text=True, check=False).stdout.split("\n")[0]
    print(f"perfgroup benchmarks, {time.strftime('%Y-%m-%d')}: {platform.node()}, Linux {platform.release()}, "
          f"{os.cpu_count()} cores, Python {platform.python_version()}, {ansible}")
    local(args.runs, args.baseline)
    node_entry(args.runs)
    if not args.skip_fleet:
        fleet(args.fleet_runs)
        scaling([int(x) for x in args.sizes.split(",")], args.fleet_runs)


if __name__ == "__main__":
    main()
