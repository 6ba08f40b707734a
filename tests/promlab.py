"""Real Prometheus and node_exporters on 127.0.0.1 for the monitoring tests (Debian's `prometheus`
and `prometheus-node-exporter`): free ports, the HTTP API, and processes stopped by the PID the
test started."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import pytest


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

    def prometheus(self, config: dict[str, Any], directory: Path, *extra: str) -> int:
        """A Prometheus with this config (written as JSON, which is YAML) and its own storage; its port,
        once ready."""
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / "prometheus.yml"
        path.write_text(json.dumps(config))
        port = free_port()
        proc = self.start([tool("prometheus"), f"--config.file={path}", f"--storage.tsdb.path={directory / 'tsdb'}",
                           f"--web.listen-address=127.0.0.1:{port}", *extra], directory / "prometheus.log")

        def ready() -> bool:
            assert proc.poll() is None, (directory / "prometheus.log").read_text()
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/-/ready", timeout=5):
                    return True
            except urllib.error.HTTPError as error:
                return error.code == 401  # ready, and asking for credentials
        wait_for("Prometheus ready", ready)
        return port
