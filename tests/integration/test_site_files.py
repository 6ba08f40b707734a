"""A site's own file at a path setup once wrote and recorded (security review finding 6): setup
refuses to overwrite it and remove leaves it, saying so."""

from __future__ import annotations

import json
from typing import Any

import pytest
from conftest import PERFGROUP
from node import Node

pytestmark = pytest.mark.integration

WRAPPER = "/usr/local/bin/perf"
STATE = "/var/lib/perfgroup/perf_users.json"
DEST = "/usr/local/libexec/perfgroup/perf_users/perf"
SITE = "#!/bin/sh\n# the site's own perf wrapper\nexec /opt/site/perf \"$@\"\n"


def test_a_sites_perf_placed_after_setup_is_neither_overwritten_nor_removed(make_node: Any) -> None:
    node: Node = make_node()
    node.ok("useradd -M -s /bin/sh alice")
    first = node.run([PERFGROUP, "setup", "--member", "alice"])
    assert first.returncode == 0, first.stdout + first.stderr
    assert WRAPPER in dict(json.loads(node.path(STATE).read_text())["files"])
    node.path(WRAPPER).write_text(SITE)  # the site's own perf, after setup
    node.ok(f"chmod 755 {WRAPPER}")
    before = node.snapshot()
    again = node.run([PERFGROUP, "setup", "--member", "alice"])
    lines = [line for line in again.stderr.splitlines() if line.strip()]
    assert again.returncode == 2 and len(lines) == 1, again.stdout + again.stderr
    assert WRAPPER in lines[0] and "perfgroup did not write it" in lines[0], lines
    assert node.snapshot() == before
    removed = node.run([PERFGROUP, "remove"])
    assert removed.returncode == 0, removed.stdout + removed.stderr
    assert node.path(WRAPPER).read_text() == SITE
    assert f"note: {WRAPPER}" in removed.stdout and "not what perfgroup wrote" in removed.stdout, removed.stdout
    for path in (DEST, STATE):
        assert not node.path(path).exists(), path
