"""inventory.example as Ansible reads it: every node perfgroup deploys gets the same settings
(one gid, caps auto), so a site copying it never trips the fleet audit's own consistency checks
(fleet.gid_mismatch, fleet.caps_mismatch) and no node loses cap_syslog (kernel symbols)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def hostvars() -> dict[str, dict[str, object]]:
    inventory = str(Path(sys.executable).with_name("ansible-inventory"))
    listed = subprocess.run([inventory, "-i", str(REPO / "inventory.example"), "--list"], capture_output=True,
                            text=True, check=True, timeout=120)
    data = json.loads(listed.stdout)
    perf_nodes = set(data["perf_nodes"].get("hosts", ()))
    for child in data["perf_nodes"].get("children", ()):
        perf_nodes |= set(data[child].get("hosts", ()))
    return {host: data["_meta"]["hostvars"].get(host, {}) for host in perf_nodes}


def test_every_deployed_node_gets_one_gid_and_caps_auto() -> None:
    nodes = hostvars()
    assert len(nodes) > 100  # compute and gpu both expanded
    assert {str(v.get("perf_users_caps")) for v in nodes.values()} == {"auto"}
    assert {str(v.get("perf_users_gid")) for v in nodes.values()} == {"2950"}
