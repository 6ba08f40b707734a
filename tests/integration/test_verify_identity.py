"""Security review finding 1: whom `verify` runs perf as, for real, inside a throwaway node.

The privileged copy and the stock perf are replaced by a spy script after setup, so every probe and
workload `perfgroup verify` starts reports its identity (uid, groups, HOME, cwd) and the first one
pauses, leaving a child behind (`setsid sleep`, as a workload's child would). While it is paused a
process running as uid 65534 (any daemon running as `nobody`) tries what the review found: plant a
libtraceevent plugin in the HOME and the working directory of the process holding the group, and
ptrace its child. After verify returns, nothing it started may still hold the group.
"""

from __future__ import annotations

import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from conftest import PERFGROUP
from node import ENV, Node

pytestmark = pytest.mark.integration

NOBODY = 65534
DEST = "/usr/local/libexec/perfgroup/perf_users/perf"
STOCK = "/usr/bin/perf"
SPY_DIR = "/spy"  # 1777: the spy runs as whatever identity verify picked
# Reports the identity of every probe; the member's system-wide counting workload leaves
# a child in its own session behind and waits for the test.
SPY = f"""#!/bin/sh
set -u
line="$(id -u) $(id -G | tr ' ' ,) $HOME $(pwd -P) $$ $0"
echo "$line" >> {SPY_DIR}/seen
if [ "$0" = "{DEST}" ] && [ "$*" = "stat -a -e cpu-clock -- sleep 0.1" ] && mkdir {SPY_DIR}/once 2>/dev/null; then
    setsid sleep 300 </dev/null >/dev/null 2>&1 &
    echo "$! $line" > {SPY_DIR}/paused.tmp && mv {SPY_DIR}/paused.tmp {SPY_DIR}/paused
    n=0
    while [ ! -e {SPY_DIR}/go ] && [ $n -lt 400 ]; do sleep 0.1; n=$((n+1)); done
fi
case "$*" in *--sort*) echo " 1.00%  [k] schedule";; esac
exit 0
"""
# Run as uid 65534 inside the node: what a compromised daemon would do.
PLANT = 'mkdir -p "$1/.local/lib/traceevent/plugins" && : > "$1/.local/lib/traceevent/plugins/x.so" && echo planted'
PTRACE = """
import ctypes, os, sys
libc = ctypes.CDLL(None, use_errno=True)
libc.ptrace.argtypes = [ctypes.c_long, ctypes.c_long, ctypes.c_void_p, ctypes.c_void_p]
PTRACE_SEIZE = 0x4206
rc = libc.ptrace(PTRACE_SEIZE, int(sys.argv[1]), None, None)
print("attached" if rc == 0 else "refused " + os.strerror(ctypes.get_errno()))
"""


def spied_node(make_node: object) -> Node:
    node: Node = make_node()  # type: ignore[operator]
    node.ok("useradd -M -s /bin/sh alice")
    result = node.run([PERFGROUP, "setup", "--group", "perf_users", "--member", "alice", "--no-verify"])
    assert result.returncode == 0, result.stdout + result.stderr
    node.ok(f"mkdir -m 1777 {SPY_DIR} && touch {SPY_DIR}/seen && chmod 0666 {SPY_DIR}/seen")
    node.path(f"{SPY_DIR}/spy").write_text(SPY)
    node.ok(f"cp {SPY_DIR}/spy {DEST} && chown root:perf_users {DEST} && chmod 0750 {DEST}"
            f" && cp {SPY_DIR}/spy {STOCK} && chmod 0755 {STOCK}")
    return node


def group_gid(node: Node) -> int:
    return int(node.ok("getent group perf_users | cut -d: -f3"))


def status(pid: int) -> dict[str, list[str]]:
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        fields[key] = value.split()
    return fields


def holders(pids: list[int], gid: int | None = None, uids: set[int] | None = None) -> dict[int, str]:
    """Live processes among pids holding gid (in any of their gids or groups) or running as one of uids."""
    found = {}
    for pid in pids:
        try:
            fields = status(pid)
        except OSError:
            continue
        if fields.get("State", ["Z"])[0] == "Z":
            continue
        gids = {int(g) for g in fields["Gid"] + fields.get("Groups", [])}
        if (gid is not None and gid in gids) or (uids and uids & {int(u) for u in fields["Uid"]}):
            found[pid] = f"pid {pid} ({fields['Name'][0]}) uid {fields['Uid']} groups {sorted(gids)}"
    return found


def all_pids() -> list[int]:
    return [int(entry.name) for entry in Path("/proc").iterdir() if entry.name.isdigit()]


def as_nobody(node: Node, argv: list[str]) -> str:
    result = node.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--", *argv])
    return (result.stdout + result.stderr).strip()


def wait_for(path: Path, proc: subprocess.Popen[str], seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while not path.exists():
        if proc.poll() is not None:
            out, err = proc.communicate()
            raise AssertionError(f"verify ended before the spy paused: {out}{err}")
        assert time.monotonic() < deadline, "the spy never paused"
        time.sleep(0.05)


@dataclass
class Seen:
    """What one spied `perfgroup verify` showed, collected first so each test asserts its part."""

    gid: int
    member_uid: int = -1
    member_groups: list[str] = field(default_factory=list)
    dirs: dict[str, list[str]] = field(default_factory=dict)  # HOME and cwd, then each parent: [uid, mode]
    others: list[str] = field(default_factory=list)  # processes of the member uid verify did not start
    account: list[str] = field(default_factory=list)  # getent answers for the member uid
    planted: dict[str, str] = field(default_factory=dict)  # directory -> what nobody's attempt said
    traced: str = ""  # nobody's PTRACE_SEIZE on the child holding the group
    probes: list[list[str]] = field(default_factory=list)  # every spy run: uid, groups, HOME, cwd, pid, $0
    left: list[str] = field(default_factory=list)  # node processes holding the group after verify
    left_uids: list[str] = field(default_factory=list)  # processes of the identities verify used, after
    left_other: list[str] = field(default_factory=list)  # the other user's (daemon) processes, after
    output: str = ""


def spied_verify(make_node: object) -> Seen:
    node = spied_node(make_node)
    seen = Seen(gid=group_gid(node))
    proc = subprocess.Popen(node.argv([PERFGROUP, "verify", "--group", "perf_users"]), env=ENV,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_for(node.path(f"{SPY_DIR}/paused"), proc)
        child, uid, groups, home, cwd, spy_pid = node.path(f"{SPY_DIR}/paused").read_text().split()[:6]
        seen.member_uid, seen.member_groups = int(uid), groups.split(",")
        seen.account = [out for db in ("passwd", "group") if (out := node.run(["getent", db, uid]).stdout.strip())]
        started = {int(spy_pid), int(child)}
        seen.others = [line for pid, line in holders(all_pids(), uids={seen.member_uid}).items()
                       if pid not in started and status(pid)["PPid"][0] != spy_pid]
        for directory in (home, cwd):
            while True:
                seen.dirs.setdefault(directory, node.ok(f"stat -c '%u %a' {directory}").split())
                if directory == "/":
                    break
                directory = str(Path(directory).parent)
        for directory in (home, cwd):
            seen.planted[directory] = as_nobody(node, ["sh", "-c", PLANT, "sh", directory])
        seen.traced = as_nobody(node, ["python3", "-c", PTRACE, child])
    finally:
        node.path(f"{SPY_DIR}/go").write_text("")
        out, err = proc.communicate(timeout=300)
    seen.output = out + err
    seen.probes = [line.split() for line in node.path(f"{SPY_DIR}/seen").read_text().splitlines()]
    uids = {int(entry[0]) for entry in seen.probes}
    seen.left = list(holders(node.processes(), gid=seen.gid).values())
    seen.left_uids = list(holders(all_pids(), uids=uids).values())
    seen.left_other = list(holders(node.processes(), uids={1}).values())
    return seen


def test_verify_runs_as_a_fresh_uid_nothing_else_is(make_node: object) -> None:
    seen = spied_verify(make_node)
    assert seen.member_uid != NOBODY, "the member identity is uid nobody"
    assert str(seen.gid) in seen.member_groups
    assert not seen.account, f"uid {seen.member_uid} is an account: {seen.account}"
    assert not seen.others, f"other processes run as the verify uid: {seen.others}"
    uids = {int(entry[0]) for entry in seen.probes}
    assert NOBODY not in uids, seen.probes
    members = {int(e[0]) for e in seen.probes if str(seen.gid) in e[1].split(",")}
    non_members = {int(e[0]) for e in seen.probes if str(seen.gid) not in e[1].split(",")}
    assert members and non_members, f"{seen.probes}\n{seen.output}"
    assert not members & non_members, "the non-member runs as the member's uid"


def test_nobody_cannot_plant_in_home_or_ptrace_the_member(make_node: object) -> None:
    seen = spied_verify(make_node)
    for directory, said in seen.planted.items():
        assert "planted" not in said, f"nobody planted a traceevent plugin in {directory} (and ptrace: {seen.traced})"
    assert seen.traced.startswith("refused"), f"nobody could ptrace a process holding the group: {seen.traced}"
    # HOME and cwd: only root or the verify uid can write them, every directory above is root's.
    for directory, (owner, bits) in seen.dirs.items():
        mode = int(bits, 8)
        if directory in seen.planted:
            assert owner in ("0", str(seen.member_uid)), (directory, owner, bits)
            assert mode & 0o077 == 0 or (owner == "0" and mode & 0o022 == 0), (directory, owner, bits)
        else:
            assert owner == "0" and mode & 0o022 == 0, (directory, owner, bits)


def test_nothing_verify_started_outlives_it(make_node: object) -> None:
    seen = spied_verify(make_node)
    assert not seen.left, f"still holding the group after verify: {seen.left}"
    assert not seen.left_uids, f"processes of the verify identities outlived it: {seen.left_uids}"
    assert not seen.left_other, f"the other user's process outlived verify: {seen.left_other}"
