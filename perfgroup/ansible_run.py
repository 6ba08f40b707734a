"""Running the perf_users role and the audit playbook with ansible-playbook.

ansible-playbook, not ansible-runner: it is already what admins run, it streams per-host progress
through our stdout callback, and it adds no dependency (ansible-runner would add pexpect and a
private-data-dir layout). The playbooks and the role come from PERFGROUP_PLAYBOOKS, the checkout
beside this package, or the copy an installed wheel puts under <prefix>/share/perfgroup."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

from .engine.errors import RefusedError


def playbooks_dir() -> Path:
    """Where playbooks/ (and roles/ beside it) are: explicit, checkout, or installed data."""
    if os.environ.get("PERFGROUP_PLAYBOOKS"):
        return Path(os.environ["PERFGROUP_PLAYBOOKS"])
    checkout = Path(__file__).resolve().parent.parent / "playbooks"
    if checkout.is_dir():
        return checkout
    return Path(sys.prefix) / "share" / "perfgroup" / "playbooks"


PLAYBOOKS = playbooks_dir()


class DeployError(RefusedError):
    """Ansible could not be run as asked (missing tool, inventory or playbook)."""


def ansible_playbook() -> str:
    sibling = Path(sys.executable).with_name("ansible-playbook")
    found = str(sibling) if sibling.exists() else shutil.which("ansible-playbook")
    if not found:
        raise DeployError("ansible-playbook not found: install ansible-core (pip install 'ansible-core<2.20')")
    return found


def run(playbook: str, inventory: str, limit: str | None, extra: list[str], forks: int | None) -> dict[str, Any]:
    """Run a playbook; progress lines go to our stderr as they happen; returns the JSON report."""
    path = PLAYBOOKS / playbook
    if not path.exists():
        raise DeployError(f"{path} not found (set PERFGROUP_PLAYBOOKS to the checkout's playbooks/)")
    if not os.path.exists(inventory):
        raise DeployError(f"inventory {inventory} not found")
    argv = [ansible_playbook(), "-i", inventory, str(path), *extra]
    if limit:
        argv += ["--limit", limit]
    if forks:
        argv += ["--forks", str(forks)]
    env = {
        **os.environ,
        "ANSIBLE_CALLBACK_PLUGINS": str(PLAYBOOKS / "callback_plugins"),
        "ANSIBLE_ROLES_PATH": str(PLAYBOOKS.parent / "roles"),
        "ANSIBLE_STDOUT_CALLBACK": "perfgroup_json",
        "ANSIBLE_PIPELINING": os.environ.get("ANSIBLE_PIPELINING", "True"),
        "ANSIBLE_SSH_ARGS": os.environ.get("ANSIBLE_SSH_ARGS", "-o ControlMaster=auto -o ControlPersist=60s"),
    }
    result = subprocess.run(argv, env=env, stdout=subprocess.PIPE, stderr=None, text=True, check=False)
    try:
        return dict(json.loads(result.stdout.strip().splitlines()[-1]))
    except (ValueError, IndexError):
        raise DeployError(f"ansible-playbook exited {result.returncode} without a result (see messages above)") from None


def host_results(report: dict[str, Any], task_suffix: str) -> dict[str, dict[str, Any]]:
    """Per host: the named task's result, or the failure that stopped the host before it."""
    hosts: dict[str, dict[str, Any]] = {}
    for play in report.get("plays", []):
        for task in play.get("tasks", []):
            is_target = task["task"]["name"].endswith(task_suffix)
            for host, data in task["hosts"].items():
                if is_target or data.get("failed") or data.get("unreachable"):
                    hosts[host] = data
    return hosts
