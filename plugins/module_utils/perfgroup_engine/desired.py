"""What the administrator asked for, with the defaults filled in, and the paths derived from it."""

from __future__ import annotations

import os

from .paths import profile_path, state_path, sysctl_path
from .tuples import NamedTuple


class NodeArtifact(NamedTuple):
    """A file setup installs on the node besides the copy (boot unit, package hooks, the node
    entry point, ...): rendered before the engine sees it, so the engine never templates.
    `link` non-empty: a symlink to that path instead of a file (content is then the target's, for
    the record: reading a link follows it)."""

    path: str
    content: str
    mode: int = 0o644
    kind: str = "file"
    link: str = ""
    keep_sha256: str = ""  # set: only keep this (path, sha256) in the record, write nothing (heal, drifted)
    # Decided on the node (node_files.select): install only if this path exists ("!PATH": only
    # if PATH does not exist). The renderer (controller) cannot see the node.
    requires: str = ""


class Desired(NamedTuple):
    """The target state of one node for one perf group."""

    group: str
    dest: str
    members: tuple[str, ...] = ()
    members_exclusive: bool = False  # members is the whole local list: remove anyone else
    gid: int | None = None
    source: str | None = None  # None: find the system perf
    caps_override: frozenset[str] | None = None  # None: keep what setup recorded, else auto
    caps_auto: bool = False  # --caps auto given explicitly: drop a recorded override
    keep_paranoid: bool = False
    install_perf: bool = False
    allow_privileged_group: bool = False
    allow_root_equivalent: bool = False
    artifacts: tuple[NodeArtifact, ...] = ()  # rendered node artifacts, any kinds (see node_files.py)
    node_entry: bool = False  # install the node entry point (engine copy + launcher)
    tracefs: bool = True  # give the group tracefs (gid=, mode 0750), live and at boot
    # Preparing a node image (setup/audit --root, run chrooted into it): the running kernel is not
    # the nodes' one, so nothing live is read or changed; only files (and the copy's xattr).
    image: bool = False
    # perf-shell (setup --shell): members get a session with these capabilities ambient, through
    # sudo and capsh; shell_extra_caps are the opted-in ones beyond cap_perfmon (--shell-caps).
    shell: bool = False
    shell_extra_caps: frozenset[str] = frozenset()

    @property
    def dest_dir(self) -> str:
        return os.path.dirname(self.dest)

    @property
    def state_path(self) -> str:
        return state_path(self.group)

    @property
    def profile_path(self) -> str:
        return profile_path(self.group)

    @property
    def sysctl_path(self) -> str:
        return sysctl_path(self.group)
