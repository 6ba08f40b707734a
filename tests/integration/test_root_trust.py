"""The one rule (trust.py), path by path: every file and directory root reads, runs or writes
through, planted by someone other than root, is refused by setup (exit 2, nothing written there),
repaired where perfgroup owns the file outright, and reported by audit as critical. The node entry
point refuses to import an engine others could change. Review item 3 (and 2, 7: the record's own
items are in test_record_trust.py; the --perf source's path in test_hostile_input.py)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from conftest import PERFGROUP
from node import Node

pytestmark = pytest.mark.integration

NODE = "/usr/local/sbin/perfgroup-node"
ENGINE = "/usr/local/lib/perfgroup/perfgroup_engine"
SHELL_HELPER = "/usr/local/libexec/perfgroup/perf_users/perf-shell"

# (name, what someone else did, the audit finding (critical), what setup does: "refuses" or
# "repairs", does perfgroup-node refuse to run)
PLANTED: list[tuple[str, str, str, str, bool]] = [
    ("node entry directory o+w", "chmod 0777 /usr/local/lib/perfgroup", "file.unsafe", "refuses", True),
    ("engine directory user-owned", f"chown nobody {ENGINE}", "file.unsafe", "refuses", True),
    ("an engine file o+w", f"chmod 0666 {ENGINE}/facts.py", "file.unsafe", "repairs", True),
    ("a planted bytecode cache", f"mkdir -p {ENGINE}/__pycache__ && touch {ENGINE}/__pycache__/x.pyc && "
     f"chown nobody {ENGINE}/__pycache__/x.pyc", "file.unsafe", "repairs", True),
    ("a root-owned module beside the engine", "echo 'import os' > /usr/local/lib/perfgroup/__future__.py",
     "file.unsafe", "refuses", True),
    ("a package inside the engine", f"mkdir {ENGINE}/node_main && echo 'raise SystemExit(9)' > {ENGINE}/node_main/__init__.py",
     "file.unsafe", "refuses", True),
    ("perfgroup-node 0666", f"chmod 0666 {NODE}", "file.unsafe", "repairs", False),
    ("wrapper 0777", "chmod 0777 /usr/local/bin/perf", "file.unsafe", "repairs", False),
    ("wrapper edited", "echo 'cp /bin/sh /tmp/rootsh; chmod 4755 /tmp/rootsh' >> /usr/local/bin/perf",
     "file.modified", "repairs", False),
    ("profile.d user-owned", "chown nobody /etc/profile.d", "file.unsafe", "refuses", False),
    ("systemd unit directory o+w", "chmod o+w /etc/systemd/system", "file.unsafe", "refuses", False),
    ("apt hook directory user-owned", "chown nobody /etc/apt/apt.conf.d", "file.unsafe", "refuses", False),
    ("sysctl.d user-owned", "chown nobody /etc/sysctl.d", "", "refuses", False),
    # perf-shell (setup --shell): sudo runs the helper as root; the drop-in decides who may.
    ("perf-shell helper 0777", f"chmod 0777 {SHELL_HELPER}", "file.unsafe", "repairs", False),
    ("perf-shell helper edited", f"echo 'exec /bin/sh' >> {SHELL_HELPER}", "shell.modified", "repairs", False),
    ("sudoers.d user-owned", "chown nobody /etc/sudoers.d", "file.unsafe", "refuses", False),
]
SHELL_ROWS = {row[0] for row in PLANTED if "perf-shell" in row[0] or "sudoers" in row[0]}


def perfgroup(node: Node, *args: str) -> Any:
    return node.run([PERFGROUP, *args])


def critical(node: Node) -> dict[str, str]:
    found = json.loads(perfgroup(node, "audit", "--json").stdout)["findings"]
    return {f["id"]: f["message"] for f in found if f["severity"] == "critical"}


@pytest.mark.parametrize(("done", "finding", "setup_does", "node_refuses"), [p[1:] for p in PLANTED],
                         ids=[p[0] for p in PLANTED])
def test_a_path_root_uses_planted_by_someone_else(node: Node, done: str, finding: str, setup_does: str,
                                                  node_refuses: bool) -> None:
    node.ok("useradd -M -s /bin/sh alice")
    shell = ("--shell",) if done in {row[1] for row in PLANTED if row[0] in SHELL_ROWS} else ()
    first = perfgroup(node, "setup", "--member", "alice", *shell)
    assert first.returncode == 0, first.stdout + first.stderr
    node.ok(done)
    audit = perfgroup(node, "audit")
    found = critical(node)
    assert audit.returncode == 2 and (not finding or finding in found), (audit.stdout, found)
    entry = node.run([NODE, "audit", "--group", "perf_users"])
    if node_refuses:
        assert entry.returncode == 2 and entry.stderr.startswith("perfgroup-node: refusing to run:"), entry.stderr
        assert len(entry.stderr.strip().splitlines()) == 1
    else:
        assert entry.returncode in (2, 126) and "Traceback" not in entry.stderr, entry.stdout + entry.stderr  # 126: 0666
    before = node.snapshot()
    again = perfgroup(node, "setup", "--member", "alice", *shell)
    if setup_does == "refuses":
        assert again.returncode == 2 and len(again.stderr.strip().splitlines()) == 1, again.stdout + again.stderr
        assert "root's alone" in again.stderr or "not trusted" in again.stderr or "writable" in again.stderr, again.stderr
        assert node.snapshot() == before
    else:
        assert again.returncode == 0, again.stdout + again.stderr
        assert perfgroup(node, "audit").returncode in (0, 1), critical(node)
