"""tracefs mounted from /etc/fstab, in throwaway nodes: setup edits exactly the entry's options,
audit sees it, remove puts fstab back byte for byte. The node's /etc/fstab is its overlay's copy.
tracefs itself is hidden in nodes (tests/node.py: one superblock per kernel), so these runs plan
no remount: the fstab entry is edited all the same (it is what the next boot uses). The live
remount and the reboot are tested on a real kernel: tests/vm/test_tracefs_from_fstab_boot.py."""

from __future__ import annotations

import json
import os
from typing import Any

import pytest
from conftest import PERFGROUP
from node import Node

pytestmark = pytest.mark.integration

ENTRY = "tracefs\t/sys/kernel/tracing  tracefs\tnosuid,nodev,noexec,mode=0700\t0 0"


def with_entry(make_node: Any, *entries: str) -> tuple[Node, bytes]:
    node: Node = make_node(sysctls={"kernel/perf_event_paranoid": "1"})
    node.ok("useradd -M -s /bin/sh alice")
    lines = "".join(f"{e}\n" for e in entries)
    node.ok(f"printf '# site comment\\n%s' '{lines}' >> /etc/fstab && chown root:disk /etc/fstab && chmod 0640 /etc/fstab")
    return node, node.path("/etc/fstab").read_bytes()


def findings(node: Node) -> dict[str, dict[str, Any]]:
    report = json.loads(node.run([PERFGROUP, "audit", "--json"]).stdout)
    return {f["id"]: f for f in report["findings"]}


def test_setup_edits_the_entry_and_remove_restores_fstab(make_node: Any) -> None:
    node, before = with_entry(make_node, ENTRY)
    assert findings(node).get("tracefs.not_persistent") is None  # no group yet: nothing to compare with
    result = node.run([PERFGROUP, "setup", "--member", "alice"])
    assert result.returncode == 0, result.stdout + result.stderr
    assert "fstab" in result.stdout
    gid = node.ok("getent group perf_users").split(":")[2]
    after = node.path("/etc/fstab").read_bytes()
    assert after == before.replace(b"noexec,mode=0700\t", f"noexec,gid={gid},mode=0750\t".encode())
    info = os.stat(node.path("/etc/fstab"))
    assert (info.st_mode & 0o7777, info.st_gid) == (0o640, int(node.ok("getent group disk").split(":")[2]))
    record = json.loads(node.path("/var/lib/perfgroup/perf_users.json").read_text())
    assert record["fstab_edits"] == [[ENTRY, ENTRY.replace("mode=0700", f"gid={gid},mode=0750")]]
    assert "tracefs.not_persistent" not in findings(node)
    again = node.run([PERFGROUP, "setup", "--member", "alice"])
    assert again.returncode == 0 and node.path("/etc/fstab").read_bytes() == after  # converged

    node.ok(f"sed -i 's/gid={gid},mode=0750/mode=0755/' /etc/fstab")  # someone opens it to everyone
    assert findings(node)["tracefs.not_persistent"]["severity"] == "warning"
    assert node.run([PERFGROUP, "setup"]).returncode == 0
    assert node.path("/etc/fstab").read_bytes() == after
    assert json.loads(node.path("/var/lib/perfgroup/perf_users.json").read_text())["fstab_edits"][0][0] == ENTRY

    removed = node.run([PERFGROUP, "remove"])
    assert removed.returncode == 0, removed.stdout + removed.stderr
    assert node.path("/etc/fstab").read_bytes() == before
    assert os.stat(node.path("/etc/fstab")).st_mode & 0o7777 == 0o640
    assert not [p for p in os.listdir(node.path("/etc")) if p.startswith(".perfgroup-tmp-")]


def test_no_tracefs_leaves_fstab_alone(make_node: Any) -> None:
    node, before = with_entry(make_node, ENTRY)
    result = node.run([PERFGROUP, "setup", "--member", "alice", "--no-tracefs"])
    assert result.returncode == 0, result.stdout + result.stderr
    assert node.path("/etc/fstab").read_bytes() == before
    assert findings(node)["tracefs.not_persistent"]["severity"] == "ok"
    assert node.run([PERFGROUP, "remove"]).returncode == 0
    assert node.path("/etc/fstab").read_bytes() == before


def test_two_entries_for_one_mount_point_are_refused_and_nothing_changes(make_node: Any) -> None:
    node, before = with_entry(make_node, ENTRY, "none /sys/kernel/tracing tracefs defaults 0 0")
    snapshot = node.snapshot()
    result = node.run([PERFGROUP, "setup", "--member", "alice"])
    assert result.returncode == 2, result.stdout + result.stderr
    assert "several tracefs entries for /sys/kernel/tracing" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert node.snapshot() == snapshot and node.path("/etc/fstab").read_bytes() == before
