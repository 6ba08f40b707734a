"""The README's first copy-paste line, run as written on a node (root, Debian 12)."""

from __future__ import annotations

from pathlib import Path

import pytest
from node import Node

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[2]


def quick_start_line() -> str:
    text = (REPO / "README.md").read_text()
    return text.split("```sh\n", 1)[1].split("\n", 1)[0]


def test_quick_start_installs_sets_up_and_verifies(node: Node) -> None:
    line = quick_start_line()
    assert "perfgroup setup --group perf_users" in line
    # Copy the checkout inside the node first: `pip install .` builds in place.
    copy = (f"mkdir /root/perfgroup-src && tar -C {REPO} --exclude=./.venv --exclude='./.venv-*' --exclude=./build "
            "--exclude=./.cache --exclude=./.ansible --exclude='*.egg-info' -cf - . | tar -C /root/perfgroup-src -xf -")
    result = node.run(["bash", "-c", f"{copy} && cd /root/perfgroup-src && {line}"], timeout=900)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    assert "verified" in result.stdout
    audit = node.run(["perfgroup", "audit"])  # on root's PATH, as the README promises
    assert audit.returncode == 0, audit.stdout
    assert node.ok("command -v perfgroup").strip() == "/usr/local/bin/perfgroup"
    # the same line brings ansible-core (a dependency), so `perfgroup deploy` works after it
    assert node.run(["test", "-x", "/opt/perfgroup/bin/ansible-playbook"]).returncode == 0
