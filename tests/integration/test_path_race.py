"""The directory-swap race on the dest path (issue 10), for real: two nested user-owned directories
above the copy, setup paused before each repair (apply.checkpoint), the user trying to swap the inner
one between the repairs. Outermost-first repair makes the swap impossible; the re-check after
applying catches whatever changed the path anyway."""

from __future__ import annotations

import json
import subprocess
import time
from typing import Any

import pytest
from conftest import PERFGROUP
from node import ENV, Node
from test_faults import MARKER, TRACE, wait_paused

from perfgroup.engine.errors import EXIT_TABLES, FAILED

pytestmark = pytest.mark.integration

OUTER = "/usr/local/libexec/perfgroup"
INNER = f"{OUTER}/perf_users"
DEST = f"{INNER}/perf"
PERF_A = ["stat", "-a", "-e", "cpu-clock", "--", "true"]
SWAP = f"cd {OUTER} && mv perf_users perf_users.old && mkdir perf_users && cp /usr/bin/perf perf_users/perf"
FAILED_CODE = next(code for outcome, code, _ in EXIT_TABLES["setup"] if outcome == FAILED)


def user_owned_path(make_node: Any) -> Node:
    """A converged node whose two directories above the copy were handed to alice (perfgroup made
    both, so setup repairs them rather than refusing)."""
    node: Node = make_node()
    node.ok("useradd -M -s /bin/sh alice && useradd -M -s /bin/sh bob")
    first = node.run([PERFGROUP, "setup", "--member", "bob"])
    assert first.returncode == 0, first.stdout + first.stderr
    node.ok(f"chown alice {OUTER} {INNER}")
    return node


def start_paused_setup(node: Node) -> subprocess.Popen[str]:
    env = {**ENV, "PERFGROUP_TEST_PAUSE_FILE": MARKER, "PERFGROUP_TEST_PAUSE_AT": "repair_dir",
           "PERFGROUP_TEST_TRACE": TRACE}
    return subprocess.Popen(node.argv([PERFGROUP, "setup"]), env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def next_pause(node: Node, proc: subprocess.Popen[str]) -> str:
    """Wait until setup pauses; the step it paused at."""
    wait_paused(node, proc)
    return node.path(MARKER).read_text().split()[1]


def resume(node: Node) -> None:
    node.path(MARKER).unlink()
    time.sleep(0.2)  # let the paused step run before the next pause is looked for


def owner(node: Node, path: str) -> str:
    return node.ok(f"stat -c '%U %a' {path}").strip()


def test_the_user_cannot_swap_the_inner_directory_between_repairs(make_node: Any) -> None:
    node = user_owned_path(make_node)
    proc = start_paused_setup(node)
    assert next_pause(node, proc) == f"repair_dir:{OUTER}"  # outermost first
    resume(node)
    assert next_pause(node, proc) == f"repair_dir:{INNER}"
    # Between the two repairs: the outer directory is root's again, so alice cannot swap the inner one.
    assert owner(node, OUTER) == "root 755"
    swap = node.sh(SWAP, user="alice")
    assert swap.returncode != 0 and "Permission denied" in swap.stderr
    resume(node)
    stdout, stderr = proc.communicate(timeout=180)
    assert proc.returncode == 0, stdout + stderr
    assert "verified" in stdout
    steps = [s for s in node.path(TRACE).read_text().split() if s.startswith("repair_dir")]
    assert steps == [f"repair_dir:{OUTER}", f"repair_dir:{INNER}"]
    for path in (OUTER, INNER):
        assert owner(node, path) == "root 755", path
    assert not node.path(f"{OUTER}/perf_users.old").exists()
    assert node.run([DEST, *PERF_A], user="alice").returncode != 0  # alice never became a holder
    assert node.run([PERFGROUP, "audit"]).returncode == 0


def test_a_path_changed_after_its_repair_fails_the_path_check(make_node: Any) -> None:
    """Whatever changes the path once it was repaired (here root hands the outer directory back to
    alice between the repairs, and she swaps the inner one): setup does not say verified."""
    node = user_owned_path(make_node)
    proc = start_paused_setup(node)
    assert next_pause(node, proc) == f"repair_dir:{OUTER}"
    resume(node)
    assert next_pause(node, proc) == f"repair_dir:{INNER}"
    node.ok(f"chown alice {OUTER}")
    swap = node.sh(SWAP, user="alice")
    assert swap.returncode == 0, swap.stderr
    resume(node)
    stdout, stderr = proc.communicate(timeout=180)
    assert proc.returncode == FAILED_CODE, stdout + stderr
    assert "verified" not in stdout
    assert "check_path" in stderr and "changed while setup ran" in stderr and OUTER in stderr
    # The copy alice moved aside is still root's, unchanged and closed to her; audit says what is wrong.
    moved = f"{OUTER}/perf_users.old/perf"
    assert node.ok(f"stat -c '%U %G %a' {moved}").strip() == "root perf_users 750"
    assert node.run([moved, *PERF_A], user="alice").returncode != 0
    code = node.run([PERFGROUP, "audit", "--json"])
    problems = {f["id"] for f in json.loads(code.stdout)["findings"] if f["severity"] == "critical"}
    assert code.returncode == 2 and problems, problems
    # Setup run again repairs the path and installs the copy in the right directory.
    again = node.run([PERFGROUP, "setup"])
    assert again.returncode == 0 and "verified" in again.stdout, again.stdout + again.stderr
    assert owner(node, OUTER) == "root 755" and owner(node, INNER) == "root 755"
