"""Which rendered node files apply here, and which files are perfgroup's (rules layer): facts in
node_files_facts.py, plan in node_files_plan.py.
"""

from __future__ import annotations

import os
import re

from .desired import NodeArtifact
from .paths import ARTIFACT_DIRS, ENGINE_DIR, LAUNCHER, VISUDO, shell_paths

# Checks a rendered file must pass, run on its temp file before the rename (apply.replace_atomically):
# a sudoers drop-in that does not parse would break sudo for everyone on the node.
CHECKS = {"sudoers": (VISUDO, "-cf")}


def is_ours(content: str, group: str) -> bool:
    head = content.splitlines()[:3]
    return any(f"Managed by perfgroup for group {group}:" in line for line in head)


def select(artifacts: tuple[NodeArtifact, ...], existing: frozenset[str]) -> tuple[NodeArtifact, ...]:
    """The artifacts whose node-side condition holds (pure; `existing` from existing_requirements):
    a package manager's hook where that package manager is, a modulefile where that module system
    looks, the wrapper variant for the stock perf this node has. The same rule for the CLI and the
    role, which render every candidate."""
    out = []
    for item in artifacts:
        want = item.requires
        if want and (want.lstrip("!") in existing) == want.startswith("!"):
            continue
        out.append(item._replace(requires=""))
    return tuple(out)


def owned(group: str, path: str) -> bool:
    """Whether remove may delete a recorded path: the entry point, or an artifact in one of the
    artifact directories whose name carries the group (or perfgroup's own NHC script)."""
    directory, name = os.path.split(path)
    if path == LAUNCHER or (directory == ENGINE_DIR and name.endswith(".py")) or path in shell_paths(group):
        return True
    if directory not in ARTIFACT_DIRS or not name.startswith(("perfgroup", "80perfgroup", "50-perfgroup")):
        return False
    return name == "perfgroup.nhc" or re.search(rf"[-_.]{re.escape(group)}(\.[a-z]+)?\Z", name) is not None


def is_entry_point(path: str) -> bool:
    return path == LAUNCHER or os.path.dirname(path) == ENGINE_DIR
