"""The --perf source swapped between its check and the copy (security review finding 4), for real:
setup paused after it checked and hashed the source (apply.checkpoint "write_copy"), the source
replaced (renamed over, or written in place), setup resumed. The copy holds the bytes that were
checked or the run fails; the swapped ELF never becomes the privileged copy."""

from __future__ import annotations

import json
import subprocess
from typing import Any

import pytest
from conftest import PERFGROUP
from node import ENV, Node
from test_faults import MARKER, wait_paused

from perfgroup.engine.errors import EXIT_TABLES, FAILED

pytestmark = pytest.mark.integration

SRC_DIR = "/opt/perfsrc"
SRC = f"{SRC_DIR}/perf"
ORIGINAL = "/root/perf.orig"
DEST = "/usr/local/libexec/perfgroup/perf_users/perf"
FAILED_CODE = next(code for outcome, code, _ in EXIT_TABLES["setup"] if outcome == FAILED)
SWAPS = {
    "renamed over": f"cp /usr/bin/perf {SRC}.new && printf EVIL >> {SRC}.new && mv {SRC}.new {SRC}",
    "written in place": f"printf EVIL >> {SRC}",
}


def sha(node: Node, path: str) -> str | None:
    result = node.sh(f"sha256sum {path}")
    return result.stdout.split()[0] if result.returncode == 0 else None


@pytest.mark.parametrize("swap", list(SWAPS))
def test_a_source_swapped_after_its_check_is_never_installed(make_node: Any, swap: str) -> None:
    node: Node = make_node()
    node.ok(f"useradd -M -s /bin/sh alice && mkdir -p {SRC_DIR} && cp /usr/bin/perf {SRC} && cp {SRC} {ORIGINAL}")
    checked = sha(node, SRC)
    env = {**ENV, "PERFGROUP_TEST_PAUSE_FILE": MARKER, "PERFGROUP_TEST_PAUSE_AT": "write_copy"}
    proc = subprocess.Popen(node.argv([PERFGROUP, "setup", "--perf", SRC, "--member", "alice"]), env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    wait_paused(node, proc)  # the source was checked and hashed; the copy is next
    node.ok(SWAPS[swap])
    swapped = sha(node, SRC)
    assert swapped != checked
    node.path(MARKER).unlink()
    stdout, stderr = proc.communicate(timeout=180)
    copy = sha(node, DEST)
    assert copy != swapped, "the swapped ELF became the privileged copy"
    assert proc.returncode == FAILED_CODE, stdout + stderr
    assert "verified" not in stdout
    assert f"source perf {SRC} changed since it was checked" in stderr, stderr
    assert copy is None
    assert node.ok(f"ls -A {DEST.rsplit('/', 1)[0]}").split() == []  # no temp copy left behind
    # The original put back: nothing claims a current copy, and setup run again installs the checked bytes.
    node.ok(f"cp {ORIGINAL} {SRC}")
    audit = node.run([PERFGROUP, "audit", "--json"])
    assert "copy.current" not in {f["id"] for f in json.loads(audit.stdout)["findings"]}
    again = node.run([PERFGROUP, "setup", "--perf", SRC])
    assert again.returncode == 0 and "verified" in again.stdout, again.stdout + again.stderr
    assert sha(node, DEST) == checked
    assert node.run([PERFGROUP, "audit"]).returncode == 0
