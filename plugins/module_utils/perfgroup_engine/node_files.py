"""Files setup installs on the node besides the copy: the node entry point (a copy of this engine
package plus a launcher, so `perfgroup-node audit|heal` needs only the node's python3) and the
rendered node artifacts of any kind (boot unit and its enablement link, package-manager hooks,
textfile timer, NHC check, and whatever other kinds callers render).

Facts (`read`), plan (`plan`) and what remove may delete (`owned`) for all of them, in one place:
facts.py, plan.py and remove.py each call in here once.
"""

from __future__ import annotations

import os

from .desired import NodeArtifact
from .errors import RefusedError
from .paths import ARTIFACT_DIRS, ENGINE_DIR, LAUNCHER, LIB_DIR, optional_paths
from .tuples import NamedTuple

TYPE_CHECKING = False  # as typing.TYPE_CHECKING (mypy knows the name), without importing typing at run time
if TYPE_CHECKING:
    from typing import Optional, Tuple

if TYPE_CHECKING:  # actions pull in dataclasses: not on the audit path
    from .actions import Action

# -I: ignore PYTHON* variables, the user site and the script's directory: root runs this at boot
# and from package hooks, with whatever environment they have. -S: no site module, no site-packages
# (the engine is standard library only): NHC and the textfile timer start it every few minutes.
LAUNCHER_TEXT = '''#!/usr/bin/python3 -IS
"""perfgroup node entry point, installed by `perfgroup setup`: audit and heal with the node's own
python3 and the engine copy beside it (no pip, no click, no Ansible)."""
import sys

sys.path.insert(0, "LIB_DIR")
from perfgroup_engine.node_main import main  # noqa: E402

sys.exit(main())
'''.replace("LIB_DIR", LIB_DIR)


if TYPE_CHECKING:
    Sources = Optional[Tuple[Tuple[str, str], ...]]


class NodeFileFacts(NamedTuple):
    engine_sources: Sources = None  # (file name, text) of this engine package; None: unreadable
    present: tuple[tuple[str, str | None, str | None], ...] = ()  # (path, content or None, link target or None)


def read_engine_sources() -> Sources:
    """This engine's own source files, to copy to the node. None when the engine runs from
    somewhere that is not a plain directory (an Ansible module's zip)."""
    here = os.path.dirname(os.path.abspath(__file__))
    try:
        names = sorted(name for name in os.listdir(here) if name.endswith(".py"))
        out = []
        for name in names:
            with open(os.path.join(here, name), encoding="utf-8") as handle:
                out.append((name, handle.read()))
    except OSError:
        return None
    return tuple(out) if names else None


def entry_point(sources: Sources) -> tuple[NodeArtifact, ...]:
    if not sources:
        return ()
    files = [NodeArtifact(f"{ENGINE_DIR}/{name}", text, 0o644, "node-entry") for name, text in sources]
    return (*files, NodeArtifact(LAUNCHER, LAUNCHER_TEXT, 0o755, "node-entry"))


def wanted(desired_artifacts: tuple[NodeArtifact, ...], sources: Sources, node_entry: bool) -> tuple[NodeArtifact, ...]:
    return (*(entry_point(sources) if node_entry else ()), *desired_artifacts)


def existing_requirements(artifacts: tuple[NodeArtifact, ...], root: str = "/") -> frozenset[str]:
    """The facts select() decides from: which of the artifacts' required paths exist here."""
    paths = {item.requires.lstrip("!") for item in artifacts if item.requires}
    return frozenset(path for path in paths if os.path.exists(os.path.join(root, path.lstrip("/"))))


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


def _current(path: str) -> tuple[str, str | None, str | None]:
    link = None
    try:  # noqa: SIM105 - contextlib is not imported on the audit path
        link = os.readlink(path)
    except OSError:
        pass
    try:
        with open(path, encoding="utf-8", errors="replace") as handle:
            text: str | None = handle.read(16 << 20)
    except OSError:
        text = None
    return path, text, link


def read(artifacts: tuple[NodeArtifact, ...], node_entry: bool, group: str = "") -> NodeFileFacts:
    """Only setup and heal ask (audit passes nothing): an audit reads none of this."""
    if not artifacts and not node_entry:
        return NodeFileFacts()
    sources = read_engine_sources() if node_entry else None
    paths = [a.path for a in wanted(artifacts, sources, node_entry) if not a.keep_sha256]
    if artifacts and group:
        paths += [path for path in optional_paths(group) if path not in paths]
    return NodeFileFacts(engine_sources=sources, present=tuple(_current(p) for p in paths))


def plan(facts: NodeFileFacts, artifacts: tuple[NodeArtifact, ...], node_entry: bool, group: str = "",
         recorded_paths: tuple[str, ...] = ()) -> list[Action]:
    from .actions import CreateSymlink, DeleteFile, WriteFile

    now = {path: (text, link) for path, text, link in facts.present}
    actions: list[Action] = []
    for item in wanted(artifacts, facts.engine_sources, node_entry):
        text, link = now.get(item.path, (None, None))
        if item.keep_sha256:
            continue
        if item.link:
            if link != item.link:
                actions.append(CreateSymlink(item.path, f"{item.kind}: enable it", link_to=item.link,
                                             old=link or ("a file" if text is not None else None)))
        elif text != item.content or link is not None:
            actions.append(WriteFile(item.path, f"{item.kind} artifact", content=item.content, old=text,
                                     step=f"write_{item.kind}", mode=item.mode))
    if artifacts and group:  # a full render without the optional kinds: retire what this group's setup installed
        paths = {item.path for item in artifacts}
        for path in optional_paths(group):
            text, link = now.get(path, (None, None))
            if path not in paths and path in recorded_paths and (text is not None or link is not None):
                actions.append(DeleteFile(path, "no longer asked for (setup without --textfile-dir/--nhc, "
                                                "role variable unset)", step="delete_file:retired"))
    return actions


def refuse_foreign(facts: NodeFileFacts, artifacts: tuple[NodeArtifact, ...], group: str,
                   recorded_paths: tuple[str, ...]) -> None:
    """Never overwrite a file perfgroup did not write (e.g. a site's own /usr/local/bin/perf)."""
    from .reach import is_ours

    now = {path: text for path, text, _ in facts.present}
    for item in artifacts:
        old = now.get(item.path)
        if old is None or old == item.content or item.link or item.path in recorded_paths or is_ours(old, group) \
                or is_entry_point(item.path):
            continue
        raise RefusedError(
            f"{item.path} exists and perfgroup did not write it; refusing to overwrite a site's file "
            "(move it away, or leave members on PATH/module access only)"
        )


def recorded(facts: NodeFileFacts, artifacts: tuple[NodeArtifact, ...], node_entry: bool) -> tuple[tuple[str, str], ...]:
    """(path, sha256 of the content) for the record; a link records its target's content (audit
    reads through it), so a dangling or retargeted link shows up as modified/missing."""
    from .host import sha256_text

    return tuple((a.path, a.keep_sha256 or sha256_text(a.content))
                 for a in wanted(artifacts, facts.engine_sources, node_entry))


def owned(group: str, path: str) -> bool:
    """Whether remove may delete a recorded path: the entry point, or an artifact in one of the
    artifact directories whose name carries the group (or perfgroup's own NHC script)."""
    directory, name = os.path.split(path)
    if path == LAUNCHER or (directory == ENGINE_DIR and name.endswith(".py")):
        return True
    if directory not in ARTIFACT_DIRS or not name.startswith(("perfgroup", "80perfgroup")):
        return False
    import re

    return name == "perfgroup.nhc" or re.search(rf"[-_.]{re.escape(group)}(\.[a-z]+)?\Z", name) is not None


def is_entry_point(path: str) -> bool:
    return path == LAUNCHER or os.path.dirname(path) == ENGINE_DIR
