"""The README's quick start, run as written on a node (root, Debian 12): the first line installs
and shows the plan without changing the node, the second sets up and verifies."""

from __future__ import annotations

from pathlib import Path

import pytest
from node import Node

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[2]


def quick_start_lines() -> list[str]:
    """The first line of each of the README's first two ```sh blocks."""
    blocks = (REPO / "README.md").read_text().split("```sh\n")[1:3]
    return [block.split("\n", 1)[0] for block in blocks]


def test_quick_start_looks_first_then_sets_up_and_verifies(node: Node) -> None:
    look, apply = quick_start_lines()
    assert look.endswith("perfgroup setup --group perf_users --dry-run") and "/usr/bin/python3 -m venv" in look
    assert apply == "perfgroup setup --group perf_users"
    # Copy the checkout inside the node first: `pip install .` builds in place.
    copy = (f"mkdir /root/perfgroup-src && tar -C {REPO} --exclude=./.venv --exclude='./.venv-*' --exclude=./build "
            "--exclude=./.cache --exclude=./.ansible --exclude='*.egg-info' -cf - . | tar -C /root/perfgroup-src -xf -")
    looked = node.run(["bash", "-c", f"{copy} && cd /root/perfgroup-src && {look}"], timeout=900)
    assert looked.returncode == 0, looked.stdout[-2000:] + looked.stderr[-2000:]
    plan = looked.stdout[looked.stdout.index("\nmachine-wide (for everyone on this node, not only members):"):]
    assert plan.index("machine-wide") < plan.index("capabilities:"), plan[:500]  # the plan opens with it
    assert "would change" in looked.stdout
    assert node.run(["getent", "group", "perf_users"]).returncode != 0, "--dry-run created the group"
    result = node.run(["bash", "-c", apply])
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    assert "verified" in result.stdout
    audit = node.run(["perfgroup", "audit"])  # on root's PATH, as the README promises
    assert audit.returncode == 0, audit.stdout
    assert node.ok("command -v perfgroup").strip() == "/usr/local/bin/perfgroup"
    # the same line brings ansible-core (a dependency), so `perfgroup deploy` works after it
    assert node.run(["test", "-x", "/opt/perfgroup/bin/ansible-playbook"]).returncode == 0
