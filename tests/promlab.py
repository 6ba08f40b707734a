"""Real Prometheus and node_exporters on 127.0.0.1 for the monitoring tests (Debian's `prometheus`
and `prometheus-node-exporter`): free ports, the HTTP API, and processes stopped by the PID the
test started."""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import ssl
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from node import Node

TEXTFILE = "/var/lib/prometheus/node-exporter"
DEST = "/usr/local/libexec/perfgroup/perf_users/perf"
SERVICE = "/etc/systemd/system/perfgroup-textfile-perf_users.service"


def tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        # CI installs them (.ci/run); a developer machine without them skips, and says why.
        pytest.skip(f"{name} is not installed: apt-get install --no-install-recommends prometheus prometheus-node-exporter")
    return path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def get(url: str, timeout: float = 10) -> Any:
    with urllib.request.urlopen(url, timeout=timeout) as response:  # 127.0.0.1 only
        return json.load(response)


def query(port: int, expr: str) -> list[dict[str, Any]]:
    url = f"http://127.0.0.1:{port}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
    try:
        answer = get(url)
    except urllib.error.HTTPError as error:
        raise AssertionError(f"{expr}: {error.read().decode()}") from error
    assert answer["status"] == "success", answer
    result: list[dict[str, Any]] = answer["data"]["result"]
    return result


def alerts(port: int) -> dict[tuple[str, str], str]:
    """(alertname, instance) -> pending or firing, from Prometheus's /api/v1/alerts."""
    data = get(f"http://127.0.0.1:{port}/api/v1/alerts")["data"]["alerts"]
    return {(a["labels"]["alertname"], a["labels"].get("instance", "")): a["state"] for a in data}


def wait_for(what: str, check: Any, timeout: float = 60) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        try:
            value = check()
        except (OSError, AssertionError):
            value = None
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.5)


class Processes:
    def __init__(self) -> None:
        self.started: list[subprocess.Popen[bytes]] = []

    def start(self, argv: list[str], log: Path) -> subprocess.Popen[bytes]:
        with log.open("wb") as out:
            proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT)
        self.started.append(proc)
        return proc

    @staticmethod
    def stop(proc: subprocess.Popen[bytes]) -> None:
        if proc.poll() is None:
            os.kill(proc.pid, 15)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.kill(proc.pid, 9)
                proc.wait()

    def close(self) -> None:
        for proc in self.started:
            self.stop(proc)

    def node_exporter(self, textfile_dir: Path, log: Path) -> int:
        """One node_exporter with only the textfile collector; its port."""
        port = free_port()
        self.start([tool("prometheus-node-exporter"), f"--web.listen-address=127.0.0.1:{port}",
                    "--collector.disable-defaults", "--collector.textfile",
                    f"--collector.textfile.directory={textfile_dir}"], log)
        return port

    def prometheus(self, config: dict[str, Any], directory: Path, *extra: str, ca_file: Path | None = None) -> int:
        """A Prometheus with this config (written as JSON, which is YAML) and its own storage; its port,
        once ready (over https trusting ca_file when its web config serves TLS)."""
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / "prometheus.yml"
        path.write_text(json.dumps(config))
        port = free_port()
        proc = self.start([tool("prometheus"), f"--config.file={path}", f"--storage.tsdb.path={directory / 'tsdb'}",
                           f"--web.listen-address=127.0.0.1:{port}", *extra], directory / "prometheus.log")

        def ready() -> bool:
            assert proc.poll() is None, (directory / "prometheus.log").read_text()
            context = ssl.create_default_context(cafile=str(ca_file)) if ca_file else None
            try:
                with urllib.request.urlopen(f"{'https' if ca_file else 'http'}://127.0.0.1:{port}/-/ready", timeout=5,
                                            context=context):
                    return True
            except urllib.error.HTTPError as error:
                return error.code == 401  # ready, and asking for credentials
        wait_for("Prometheus ready", ready)
        return port


# -- textfiles as the timer writes them ----------------------------------------------------------------

def timer_command(node: Node) -> str:
    """ExecStart of the textfile service setup installed: what the timer runs every 5 minutes."""
    return next(line.split("=", 1)[1] for line in node.ok(f"cat {SERVICE}").splitlines() if line.startswith("ExecStart="))


def write_textfile(node: Node) -> None:
    result = node.sh(timer_command(node))
    assert result.returncode in (0, 1, 2), result.stderr  # the audit's status; the file is written either way


def setup_with_textfile(node: Node, perfgroup: str) -> None:
    result = node.run([perfgroup, "setup", "--group", "perf_users", "--gid", "995", "--textfile-dir", TEXTFILE])
    assert result.returncode == 0, result.stdout + result.stderr
    node.ok(f"mkdir -p {TEXTFILE}")
    write_textfile(node)


def timer_textfiles(perfgroup: str) -> dict[str, str]:
    """The timer's output on a converged throwaway node ("ok"), and with the copy's capabilities
    removed ("nocaps"); "gid" and "build" are the converged file with that one label changed."""
    with Node() as node:
        setup_with_textfile(node, perfgroup)
        out = {"ok": node.ok(f"cat {TEXTFILE}/perfgroup_perf_users.prom")}
        node.ok(f"setcap -r {DEST}")
        write_textfile(node)
        out["nocaps"] = node.ok(f"cat {TEXTFILE}/perfgroup_perf_users.prom")
    out["gid"] = re.sub(r'gid="\d+"', 'gid="4711"', out["ok"])
    out["build"] = re.sub(r'sha256="[0-9a-f]+"', 'sha256="' + "b" * 64 + '"', out["ok"])
    return out


# -- a large fleet, backfilled ----------------------------------------------------------------------

def _textfile_series(text: str) -> list[tuple[str, str, str]]:
    """(metric, labels without braces, value) of each sample of a textfile."""
    out = []
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        series, value = line.rsplit(" ", 1)
        name, _, labels = series.partition("{")
        out.append((name, labels.rstrip("}"), value))
    return out


def fleet_openmetrics(path: Path, textfiles: dict[str, str], layout: dict[int, str], nodes: int, now: int) -> None:
    """OpenMetrics for `promtool tsdb create-blocks-from openmetrics`: `nodes` node_exporters
    (instance nNNNNN:9100) whose perfgroup series are the textfile of their variant (layout: node
    index -> variant, the rest "ok"): samples over the last 3 minutes, each node's audit timestamp
    and textfile mtime current. Variants "stale" (an audit an hour old), "stopped" (reported 25
    minutes ago, nothing since) and "never" (node_exporter without perfgroup) need no textfile of
    their own. Written family by family, one series at a time, as the format requires."""
    live, gone = (now - 180, now - 120, now - 60, now), (now - 1500, now - 1440)
    parsed = {variant: _textfile_series(text) for variant, text in textfiles.items()}
    variant_of = [layout.get(i, "ok") for i in range(nodes)]
    families: dict[str, None] = {"node_exporter_build_info": None, "node_textfile_mtime_seconds": None}
    for samples in parsed.values():
        families.update((name, None) for name, _, _ in samples)
    with path.open("w") as out:
        for family in families:
            out.write(f"# TYPE {family} gauge\n")
            for i, variant in enumerate(variant_of):
                base = f'instance="n{i:05d}:9100",job="node"'
                times = gone if variant == "stopped" else live
                age = 3600 if variant == "stale" else 0
                if family == "node_exporter_build_info":
                    rows = [("", "1")]
                elif variant == "never":
                    continue
                elif family == "node_textfile_mtime_seconds":
                    rows = [(',file="/var/lib/prometheus/node-exporter/perfgroup_perf_users.prom"', "T")]
                else:
                    source = parsed.get(variant, parsed["ok"])
                    rows = [(("," + labels) if labels else "", "T" if name == "perfgroup_audit_timestamp_seconds" else value)
                            for name, labels, value in source if name == family]
                for labels, value in rows:
                    for t in times:
                        out.write(f"{family}{{{base}{labels}}} {t - age if value == 'T' else value} {t}\n")
        out.write("# EOF\n")
