"""Faults and races, for real: SIGKILL at every step of setup and remove, concurrent runs,
damaged state files, a full disk and a read-only /etc. The kill point is stepped through the
whole run with a narrow hook that only pauses (apply.checkpoint); nothing is faked."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import time
from typing import Any

import pytest
from conftest import PERFGROUP
from node import ENV, Node

pytestmark = pytest.mark.integration

DEST = "/usr/local/libexec/perfgroup/perf_users/perf"
PROFILE = "/etc/profile.d/perfgroup-perf_users.sh"
SYSCTL = "/etc/sysctl.d/90-perfgroup-perf_users.conf"
STATE = "/var/lib/perfgroup/perf_users.json"
MARKER = "/run/perfgroup-test-paused"
TRACE = "/run/perfgroup-test-trace"
PERF_A = ["stat", "-a", "-e", "cpu-clock", "--", "true"]

# Every step a fresh `setup --member alice` on a node with perf_event_paranoid=1 passes through,
# in order. If apply.py gains a step, this list must learn it (the trace test fails otherwise).
SETUP_STEPS = [
    # What only a record remembers (the group, directories, member it creates) is written down first.
    "write_pending", "rename_write_pending",
    "create_group", "create_dir", "write_copy", "fsync_copy", "chmod_private", "chown_copy", "chmod_copy",
    "setcap_copy", "rename_copy", "write_profile", "rename_write_profile", "set_paranoid", "write_sysctl",
    "rename_write_sysctl", "add_member", "write_node-entry", "rename_write_node-entry", "write_boot",
    "rename_write_boot", "create_symlink", "write_apt", "rename_write_apt",
    # A modulefile goes only where that module system is installed (the nodes see this machine's /etc).
    *(["write_lmod", "rename_write_lmod"] if os.path.isdir("/etc/lmod/modules") else []),
    *(["write_tcl-module", "rename_write_tcl-module"] if os.path.isdir("/etc/environment-modules/modules") else []),
    "write_csh", "rename_write_csh", "write_wrapper", "rename_write_wrapper",
    # The node's fstab mounts tracefs (fresh()): the edit is journaled before fstab changes.
    "edit_fstab", "journal_fstab", "rename_journal_fstab", "rename_edit_fstab",
    "write_state", "rename_write_state", "delete_pending", "delete_fstab_journal",
]
# A reinstall over an existing copy (the binary was replaced) adds the old inode's retirement.
REINSTALL_STEPS = ["write_copy", "fsync_copy", "chmod_private", "chown_copy", "chmod_copy", "setcap_copy",
                   "rename_copy", "write_state", "rename_write_state"]
REMOVE_STEPS = [
    "delete_copy", "retire_removed_copy", "unlink_removed_copy", "delete_file:80perfgroup-perf_users",
    *(["delete_file:privileged.lua"] if os.path.isdir("/etc/lmod/modules") else []),
    *(["delete_file:privileged"] if os.path.isdir("/etc/environment-modules/modules") else []),
    "delete_file:perfgroup-perf_users.csh", "delete_file:perfgroup-perf_users.sh",
    "delete_file:90-perfgroup-perf_users.conf", "delete_file:perfgroup-heal-perf_users.service", "delete_file:perf",
    "delete_file:node-entry", "remove_dir", "restore_fstab", "rename_restore_fstab", "delete_group",
    "delete_state:perf_users.json",
]
FSTAB_ENTRY = "tracefs\t/sys/kernel/tracing\ttracefs\tnosuid,nodev,noexec\t0 0"


def fresh(make_node: Any) -> Node:
    node: Node = make_node(sysctls={"kernel/perf_event_paranoid": "1"})
    node.ok("useradd -M -s /bin/sh alice && useradd -M -s /bin/sh bob")
    node.ok(f"printf '{FSTAB_ENTRY}\\n' >> /etc/fstab")
    return node


def fstab_entry(node: Node) -> str:
    lines = [line for line in node.path("/etc/fstab").read_text().splitlines() if "tracefs" in line]
    assert len(lines) == 1, lines
    return lines[0]


def start(node: Node, *args: str, pause_at: str | None = None) -> subprocess.Popen[str]:
    env = {**ENV, "PERFGROUP_TEST_PAUSE_FILE": MARKER}
    if pause_at:
        env["PERFGROUP_TEST_PAUSE_AT"] = pause_at
    return subprocess.Popen(node.argv([PERFGROUP, *args]), env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def wait_paused(node: Node, proc: subprocess.Popen[str]) -> int:
    marker = node.path(MARKER)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if marker.exists() and marker.read_text().strip():
            return int(marker.read_text().split()[0])
        if proc.poll() is not None:
            raise AssertionError(f"run ended before pausing: {proc.communicate()}")
        time.sleep(0.02)
    raise AssertionError("run never paused")


def capability_files(node: Node) -> list[tuple[str, int]]:
    """Every file written on the node that carries capabilities, with its mode."""
    found = []
    for dirpath, _, filenames in os.walk(node.upper):
        for name in filenames:
            full = os.path.join(dirpath, name)
            if os.path.islink(full):
                continue
            if "security.capability" in os.listxattr(full, follow_symlinks=False):
                found.append((os.path.relpath(full, node.upper), os.stat(full).st_mode & 0o7777))
    return found


def assert_nothing_opened(node: Node) -> None:
    for path, mode in capability_files(node):
        assert not mode & 0o007, f"{path} carries capabilities and is open to others ({mode:04o})"
        assert not mode & 0o020, f"{path} carries capabilities and is group-writable ({mode:04o})"
        assert not mode & 0o6000, f"{path} carries capabilities and is setuid/setgid ({mode:04o})"


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def assert_each_artifact_before_or_after(node: Node) -> None:
    copy = node.path(DEST)
    if copy.exists():
        info = copy.stat()
        assert (info.st_mode & 0o7777, info.st_uid, info.st_nlink) == (0o750, 0, 1)
        assert sha(copy.read_bytes()) == sha(node.path("/usr/bin/perf").read_bytes())
        assert "cap_ipc_lock,cap_syslog,cap_perfmon=ep" in node.ok(f"getcap {DEST}")
    for path, marker in ((PROFILE, "perfgroup"), (SYSCTL, "kernel.perf_event_paranoid = 2")):
        file = node.path(path)
        if file.exists():
            assert marker in file.read_text(), path
    state = node.path(STATE)
    if state.exists():
        json.loads(state.read_text())
    gid = node.sh("getent group perf_users").stdout.split(":")[2:3]
    assert fstab_entry(node) in (FSTAB_ENTRY, *(FSTAB_ENTRY.replace("noexec", f"noexec,gid={g},mode=0750") for g in gid))
    paranoid = node.ok("cat /proc/sys/kernel/perf_event_paranoid").strip()
    assert paranoid in ("1", "2")


def converges(node: Node) -> None:
    again = node.run([PERFGROUP, "setup", "--member", "alice"])
    assert again.returncode == 0, again.stdout + again.stderr
    audit = json.loads(node.run([PERFGROUP, "audit", "--json"]).stdout)
    assert audit["status"] == "ok", [f for f in audit["findings"] if f["severity"] != "ok"]
    assert node.run([DEST, *PERF_A], user="alice").returncode == 0


def trace_of(node: Node, *args: str) -> list[str]:
    result = node.run([PERFGROUP, *args], env={"PERFGROUP_TEST_TRACE": TRACE})
    assert result.returncode == 0, result.stdout + result.stderr
    steps = node.path(TRACE).read_text().split()
    node.ok(f"rm {TRACE}")
    return list(dict.fromkeys(steps))


def test_the_step_lists_match_real_runs(make_node: Any) -> None:
    node = fresh(make_node)
    assert trace_of(node, "setup", "--member", "alice") == SETUP_STEPS
    node.ok(f"cp /usr/bin/perf /tmp/p && printf x >> /tmp/p && cat /tmp/p > {DEST}")
    assert trace_of(node, "setup") == REINSTALL_STEPS
    assert trace_of(node, "remove") == REMOVE_STEPS


@pytest.mark.parametrize("step", SETUP_STEPS)
def test_kill_during_setup(make_node: Any, step: str) -> None:
    node = fresh(make_node)
    proc = start(node, "setup", "--member", "alice", pause_at=step)
    pid = wait_paused(node, proc)
    assert_nothing_opened(node)
    os.kill(pid, signal.SIGKILL)
    proc.wait(timeout=30)
    assert_nothing_opened(node)
    assert_each_artifact_before_or_after(node)
    converges(node)
    assert not any(".perfgroup-tmp-" in path for path in node.snapshot())
    # Whatever the killed run did to fstab, remove puts the original line back; and what it
    # created before its record (the group, with alice in it) is known as created: remove deletes it.
    assert node.run([PERFGROUP, "remove"]).returncode == 0
    assert fstab_entry(node) == FSTAB_ENTRY
    assert node.run(["getent", "group", "perf_users"]).returncode != 0
    assert not node.path("/var/lib/perfgroup/perf_users.pending").exists()


@pytest.mark.parametrize("step", ["chmod_private", "chown_copy", "setcap_copy", "retire_old_copy", "rename_copy"])
def test_kill_during_reinstall_over_a_tampered_copy(make_node: Any, step: str) -> None:
    node = fresh(make_node)
    converges(node)
    node.ok(f"ln {DEST} /usr/local/libexec/perfgroup/stray && chmod o+x {DEST}")
    node.ok(f"cp /usr/bin/perf /tmp/p && printf x >> /tmp/p && cat /tmp/p > {DEST}")  # tampered, still o+x
    proc = start(node, "setup", pause_at=step)
    pid = wait_paused(node, proc)
    os.kill(pid, signal.SIGKILL)
    proc.wait(timeout=30)
    converges(node)
    stray = node.path("/usr/local/libexec/perfgroup/stray")
    assert stray.stat().st_mode & 0o777 == 0o600 and "security.capability" not in os.listxattr(stray)


@pytest.mark.parametrize("step", REMOVE_STEPS)
def test_kill_during_remove(make_node: Any, step: str) -> None:
    node = fresh(make_node)
    converges(node)
    proc = start(node, "remove", pause_at=step)
    pid = wait_paused(node, proc)
    os.kill(pid, signal.SIGKILL)
    proc.wait(timeout=30)
    assert_nothing_opened(node)
    assert_each_artifact_before_or_after(node)
    again = node.run([PERFGROUP, "remove"])
    assert again.returncode == 0, again.stdout + again.stderr
    for path in (DEST, "/usr/local/libexec/perfgroup", PROFILE, SYSCTL, STATE):
        assert not node.path(path).exists(), path
    assert fstab_entry(node) == FSTAB_ENTRY
    assert node.sh("getent group perf_users").returncode != 0


def test_two_setups_at_once_one_waits(make_node: Any) -> None:
    node = fresh(make_node)
    first = start(node, "setup", "--member", "alice", pause_at="setcap_copy")
    wait_paused(node, first)
    second = start(node, "setup", "--member", "alice")
    assert second.stderr is not None
    assert "another perfgroup run holds" in second.stderr.readline()
    assert second.poll() is None  # still waiting for the lock
    node.path(MARKER).unlink()  # let the first go on
    assert first.wait(timeout=120) == 0
    assert second.wait(timeout=120) == 0
    converges(node)


def test_two_setups_started_together(make_node: Any) -> None:
    node = fresh(make_node)
    runs = [start(node, "setup", "--member", "alice") for _ in range(2)]
    assert [run.wait(timeout=180) for run in runs] == [0, 0]
    converges(node)


def test_remove_racing_setup_waits_and_wins_last(make_node: Any) -> None:
    node = fresh(make_node)
    converges(node)
    node.ok(f"chmod o+x {DEST}")  # so setup has work to do under the lock
    setup = start(node, "setup", pause_at="chmod_private")
    wait_paused(node, setup)
    remove = start(node, "remove")
    assert remove.stderr is not None
    assert "another perfgroup run holds" in remove.stderr.readline()
    node.path(MARKER).unlink()
    assert setup.wait(timeout=120) == 0
    assert remove.wait(timeout=120) == 0
    assert not node.path(DEST).exists() and not node.path(STATE).exists()


def test_setup_racing_remove_waits_then_converges(make_node: Any) -> None:
    node = fresh(make_node)
    converges(node)
    remove = start(node, "remove", pause_at="delete_group")
    wait_paused(node, remove)
    setup = start(node, "setup", "--member", "alice")
    node.path(MARKER).unlink()
    assert remove.wait(timeout=120) == 0
    assert setup.wait(timeout=120) == 0, setup.communicate()
    converges(node)


@pytest.mark.parametrize("damage", ["rm {state}", ": > {state}", "head -c 100 {state} > /tmp/s && cat /tmp/s > {state}",
                                    "echo garbage > {state}", "echo '[1,2]' > {state}"])
def test_damaged_state_file(make_node: Any, damage: str) -> None:
    node = fresh(make_node)
    converges(node)
    node.ok(damage.format(state=STATE))
    audit = node.run([PERFGROUP, "audit", "--json"])
    report = json.loads(audit.stdout)
    problems = {f["id"] for f in report["findings"] if f["severity"] != "ok"}
    assert problems <= {"state.missing", "state.unusable"} and problems, problems
    assert audit.returncode == 1
    before = node.snapshot()
    refused = node.run([PERFGROUP, "remove"])
    assert refused.returncode == 2 and "will not guess" in refused.stderr
    assert node.snapshot() == before
    converges(node)  # setup works from the host's real state and writes a new record
    assert node.run([PERFGROUP, "remove"]).returncode == 0
    assert node.sh("getent group perf_users").returncode == 0  # after the loss, the group counts as adopted


def test_disk_full_while_installing(make_node: Any) -> None:
    node: Node = make_node(extra_setup="mkdir -p $R/usr/local/libexec/perfgroup/perf_users && "
                                       "mount -t tmpfs -o size=64k tmpfs $R/usr/local/libexec/perfgroup/perf_users")
    node.ok("useradd -M alice")
    result = node.run([PERFGROUP, "setup", "--member", "alice"])
    assert result.returncode == 1
    assert "install_copy" in result.stderr and "No space left on device" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert node.ok("ls -A /usr/local/libexec/perfgroup/perf_users").strip() == ""
    assert not node.path(STATE).exists()


def test_read_only_etc_while_writing(make_node: Any) -> None:
    node: Node = make_node(extra_setup="mount --bind $R/etc/sysctl.d $R/etc/sysctl.d && "
                                       "mount -o remount,bind,ro $R/etc/sysctl.d")
    node.ok("useradd -M alice")
    result = node.run([PERFGROUP, "setup", "--member", "alice"])
    assert result.returncode == 1
    assert "write_sysctl" in result.stderr and "Read-only file system" in result.stderr
    assert not any(name.startswith(".perfgroup-tmp-") for name in os.listdir(node.path("/etc/sysctl.d")))
    assert not node.path(SYSCTL).exists()
    # What came before is complete, and the copy is safe.
    assert "cap_ipc_lock,cap_syslog,cap_perfmon=ep" in node.ok(f"getcap {DEST}")
    assert_nothing_opened(node)


def test_filesystem_without_xattrs_is_named(make_node: Any) -> None:
    node: Node = make_node(extra_setup="mkdir -p $R/usr/local/libexec/perfgroup/perf_users && "
                                       "mount -t ramfs ramfs $R/usr/local/libexec/perfgroup/perf_users")
    node.ok("useradd -M alice")
    result = node.run([PERFGROUP, "setup", "--member", "alice"])
    assert result.returncode == 1, result.stdout + result.stderr
    assert "cannot store file capabilities" in result.stderr
    assert node.ok("ls -A /usr/local/libexec/perfgroup/perf_users").strip() == ""
    assert_nothing_opened(node)
