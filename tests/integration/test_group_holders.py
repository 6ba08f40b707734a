"""Processes that still hold the group's gid (security review finding 5), for real in throwaway
nodes: a session that outlives `members remove`, and one that outlives `remove` and would inherit
a group re-created with the same gid."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
from pathlib import Path
from typing import Any, Iterator

import pytest
from conftest import PERFGROUP
from node import ENV, Node

pytestmark = pytest.mark.integration


def perfgroup(node: Node, *args: str) -> subprocess.CompletedProcess[str]:
    return node.run([PERFGROUP, *args])


def audit(node: Node) -> tuple[int, dict[str, Any]]:
    result = perfgroup(node, "audit", "--json")
    return result.returncode, json.loads(result.stdout)


def holds(report: dict[str, Any]) -> list[dict[str, str]]:
    return [f for f in report["findings"] if f["id"] == "process.holds_group"]


def gid_of(node: Node, group: str) -> int:
    return int(node.ok(f"getent group {group}").split(":")[2])


class Session:
    """A login-like session of `user` inside the node, with the groups a login gives them
    (setpriv --init-groups): a shell and the long-running process it waits for. Ended by the
    PIDs it started (never by user name: nodes share this machine's PID namespace); the shell
    reaps its child and this test reaps the shell, so no zombie is left."""

    def __init__(self, node: Node, user: str) -> None:
        self.shell = subprocess.Popen(
            node.argv(["sh", "-c", "sleep 300 >/dev/null 2>&1 & echo $!; wait"], user=user),
            env=ENV, stdout=subprocess.PIPE, text=True)
        assert self.shell.stdout is not None
        self.pid = int(self.shell.stdout.readline())  # the sleep; self.shell.pid is the shell itself
        self.pids = (self.shell.pid, self.pid)

    def end(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, signal.SIGKILL)
        self.shell.wait(timeout=30)  # the shell's `wait` returns once the sleep is gone


@contextlib.contextmanager
def session(node: Node, user: str) -> Iterator[Session]:
    started = Session(node, user)
    try:
        yield started
    finally:
        started.end()


def test_a_session_that_outlives_members_remove_is_named_and_critical(users: Node) -> None:
    node = users
    assert perfgroup(node, "setup", "--member", "alice").returncode == 0
    gid = gid_of(node, "perf_users")
    with session(node, "alice") as alice:
        for pid in alice.pids:
            status = Path(f"/proc/{pid}/status").read_text()
            assert str(gid) in status.split("\nGroups:", 1)[1].split("\n", 1)[0].split()  # holds the group
        code, report = audit(node)
        assert holds(report) == [] and code == 0, [f for f in report["findings"] if f["severity"] != "ok"]
        removed = perfgroup(node, "members", "remove", "alice")
        assert removed.returncode == 0, removed.stderr
        assert f"gid {gid}" in removed.stdout
        assert all(f"pid {pid} (alice)" in removed.stdout for pid in alice.pids), removed.stdout
        code, report = audit(node)
        (finding,) = holds(report)
        assert finding["severity"] == "critical" and code == 2
        assert all(f"pid {pid} (alice)" in finding["message"] for pid in alice.pids), finding
        assert finding["fix"] == f"kill {' '.join(map(str, sorted(alice.pids)))}  # or end the user's session"
        alice.end()
        code, report = audit(node)
        assert holds(report) == [] and code == 0, [f for f in report["findings"] if f["severity"] != "ok"]


def test_a_recreated_group_does_not_reuse_a_gid_a_session_still_holds(users: Node) -> None:
    node = users
    assert perfgroup(node, "setup", "--member", "alice").returncode == 0
    old = gid_of(node, "perf_users")
    with session(node, "alice") as alice:
        pid = alice.pid
        removed = perfgroup(node, "remove")
        assert removed.returncode == 0, removed.stderr
        assert f"pid {pid} (alice)" in removed.stdout and f"gid {old}" in removed.stdout
        assert node.sh(f"getent group {old}").returncode != 0  # the gid is free in /etc/group ...
        # ... and an explicit --gid that the session holds is refused before any change.
        before = node.snapshot()
        refused = perfgroup(node, "setup", "--gid", str(old))
        assert refused.returncode == 2 and f"pid {pid} (alice)" in refused.stderr, refused.stderr
        assert len(refused.stderr.strip().splitlines()) == 1
        assert node.snapshot() == before
        again = perfgroup(node, "setup", "--member", "bob")
        assert again.returncode == 0, again.stdout + again.stderr
        new = gid_of(node, "perf_users")
        assert new != old, f"the new group got gid {old}, which alice's old session (pid {pid}) still holds"
        report = audit(node)[1]
        assert holds(report) == [], holds(report)  # alice's session holds a gid that is no longer the group's
