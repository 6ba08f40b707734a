"""pytest-testinfra checks of the privileged perf users group, through perfgroup's own findings.

For sites whose acceptance tests are testinfra suites: each node is judged by the very audit
`perfgroup audit` runs (the perfgroup.hpc.perf_users_audit module, one call per host), so a
testinfra run and a perfgroup audit cannot disagree.

    pytest --hosts='ansible://perf_nodes' --ansible-inventory=INVENTORY --pyargs perfgroup.testinfra

Needs pytest-testinfra (`pip install 'perfgroup[testinfra]'`) and ansible-core on the controller.
Environment: PERFGROUP_GROUP (default perf_users), PERFGROUP_DEST (default: the setup record's),
PERFGROUP_FUNCTIONAL=1 to also run perf as a member and a non-member on each node.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import pytest

from . import collection

# Make the collection findable by the `ansible` command testinfra's ansible backend runs.
_SCRATCH = tempfile.TemporaryDirectory(prefix="perfgroup-testinfra-")
_EXISTING = os.environ.get("ANSIBLE_COLLECTIONS_PATH")
os.environ["ANSIBLE_COLLECTIONS_PATH"] = str(collection.collections_path(Path(_SCRATCH.name))) + (
    f":{_EXISTING}" if _EXISTING else "")

MODULE = f"{collection.FQCN}.perf_users_audit"
AREAS = ("group", "copy", "caps", "path", "paranoid", "sysctl", "profile", "state", "verify")
_CACHE: dict[str, dict[str, Any]] = {}


def module_args() -> str:
    args: dict[str, Any] = {"group": os.environ.get("PERFGROUP_GROUP", "perf_users"),
                            "functional": os.environ.get("PERFGROUP_FUNCTIONAL", "") == "1"}
    if os.environ.get("PERFGROUP_DEST"):
        args["dest"] = os.environ["PERFGROUP_DEST"]
    return json.dumps(args)


@pytest.fixture
def perfgroup_audit(host: Any) -> dict[str, Any]:
    """The node's audit document (as `perfgroup audit --json` prints it), read once per host."""
    key = str(host.backend.get_pytest_id())
    if key not in _CACHE:
        result = host.ansible(MODULE, module_args(), check=True, become=True)
        report = result.get("ansible_facts", {}).get("perf_users_audit")
        assert report is not None, f"{MODULE} gave no audit: {result.get('msg', result)}"
        _CACHE[key] = report
    return _CACHE[key]


def _problems(report: dict[str, Any], area: str) -> list[str]:
    return [f"{f['severity']} {f['id']}: {f['message']}" + (f" (fix: {f['fix']})" if f.get("fix") else "")
            for f in report["findings"] if f["id"].split(".")[0] == area and f["severity"] != "ok"]


@pytest.mark.parametrize("area", AREAS)
def test_perf_users_group(perfgroup_audit: dict[str, Any], area: str) -> None:
    """One test per area of the audit (group, copy, caps, ...): no warning or critical finding."""
    problems = _problems(perfgroup_audit, area)
    assert not problems, "; ".join(problems)


def test_perf_users_status(perfgroup_audit: dict[str, Any]) -> None:
    """The node's overall audit status, every finding included."""
    bad = [f"{f['severity']} {f['id']}: {f['message']}" for f in perfgroup_audit["findings"] if f["severity"] != "ok"]
    assert perfgroup_audit["status"] == "ok", "; ".join(bad)
