from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from node import Node, NodeOptions

# The CLI installed in the venv running the tests; the overlay's lower layer is `/`, so the
# very same path works inside every node.
PERFGROUP = str(Path(sys.executable).with_name("perfgroup"))
PYTHON = sys.executable


def integration_possible() -> str | None:
    if os.geteuid() != 0:
        return "integration tests need root (mount namespaces, overlayfs)"
    for tool in ("unshare", "nsenter", "chroot", "setpriv", "useradd", "groupadd", "gpasswd"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed"
    return None


@pytest.fixture
def make_node() -> Iterator[object]:
    reason = integration_possible()
    if reason:
        pytest.fail(reason)  # never skip silently: CI runs as root and must run these
    nodes: list[Node] = []

    def factory(**kwargs: object) -> Node:
        node = Node(NodeOptions(**kwargs))  # type: ignore[arg-type]
        nodes.append(node)
        return node

    yield factory
    for node in nodes:
        node.close()


@pytest.fixture
def node(make_node: object) -> Node:
    return make_node()  # type: ignore[operator]


@pytest.fixture
def users(node: Node) -> Node:
    """A throwaway node with the accounts alice and bob (no home, sh)."""
    node.ok("useradd -M -s /bin/sh alice && useradd -M -s /bin/sh bob")
    return node
