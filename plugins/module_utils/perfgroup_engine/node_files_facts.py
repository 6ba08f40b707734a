"""Files setup installs on the node besides the copy: the node entry point (a copy of this engine
package plus a launcher, so `perfgroup-node audit|heal` needs only the node's python3) and the
rendered node artifacts of any kind (boot unit and its enablement link, package-manager hooks,
textfile timer, NHC check, and whatever other kinds callers render).

Facts (`read`), plan (`plan`) and what remove may delete (`owned`) for all of them, in one place:
facts.py, plan.py and remove.py each call in here once.
"""

from __future__ import annotations

import os

from . import host
from .desired import NodeArtifact
from .paths import ENGINE_DIR, LAUNCHER, LIB_DIR, TMP_PREFIX, optional_paths
from .tuples import NamedTuple

TYPE_CHECKING = False  # as typing.TYPE_CHECKING (mypy knows the name), without importing typing at run time
if TYPE_CHECKING:
    from typing import Optional, Tuple

if TYPE_CHECKING:  # actions pull in dataclasses: not on the audit path
    pass

# -I: ignore PYTHON* variables, the user site and the script's directory: root runs this at boot
# and from package hooks, with whatever environment they have. -S: no site module, no site-packages
# (the engine is standard library only): NHC and the textfile timer start it every few minutes.
LAUNCHER_TEXT = '''#!/usr/bin/python3 -IS
"""perfgroup node entry point, installed by `perfgroup setup`: audit and heal with the node's own
python3 and the engine copy beside it (no pip, no click, no Ansible)."""
import os
import sys

LIB = "LIB_DIR"
ENGINE = LIB + "/perfgroup_engine"
# Root runs this from NHC, the textfile timer, the APT hook and the boot unit: nothing it imports
# may be something another user could have written (trust.py's rule, here without the engine).
os.umask(0o022)


def loose(path, info):
    if info.st_uid != 0 or (info.st_mode & 0o022 and not os.path.islink(path)):
        return "%s is owned by uid %d, mode %04o" % (path, info.st_uid, info.st_mode & 0o7777)
    return None


def chain(path):
    """Every component of path and of its resolved form, from / down."""
    real = os.path.realpath(path)
    for name in (path, real):
        parts = name.split("/")
        for end in range(1, len(parts) + 1):
            current = "/".join(parts[:end]) or "/"
            try:
                problem = loose(current, os.lstat(current))
            except OSError as error:
                problem = "%s: %s" % (current, error.strerror)
            if problem:
                return problem
    return None


def entries(directory, allowed):
    """Each entry root's alone and of a kind allowed here (anything else could be imported)."""
    try:
        names = sorted(os.listdir(directory))
    except FileNotFoundError:
        return None
    except OSError as error:
        return "%s: %s" % (directory, error.strerror)
    for name in names:
        path = directory + "/" + name
        if not allowed(name) and not name.startswith("TMP_PREFIX"):  # a killed run's temp file: not importable
            return "%s is not perfgroup's" % path
        problem = loose(path, os.lstat(path))
        if problem:
            return problem
    return None


problem = (chain(ENGINE)
           or entries(LIB, lambda name: name == "perfgroup_engine")
           or entries(ENGINE, lambda name: name.endswith(".py") or name == "__pycache__")
           or entries(ENGINE + "/__pycache__", lambda name: name.endswith(".pyc")))
if problem is not None:
    sys.stderr.write("perfgroup-node: refusing to run: %s (root would run code others can change; "
                     "make it root's alone or delete it, then run perfgroup setup)\\n" % problem)
    sys.exit(2)
sys.path.append(LIB)  # after the standard library: nothing here can stand in for one of its modules
from perfgroup_engine.node_main import main  # noqa: E402

sys.exit(main())
'''.replace("LIB_DIR", LIB_DIR).replace("TMP_PREFIX", TMP_PREFIX)


if TYPE_CHECKING:
    Sources = Optional[Tuple[Tuple[str, str], ...]]


class NodeFileFacts(NamedTuple):
    engine_sources: Sources = None  # (file name, text) of this engine package; None: unreadable
    present: tuple[tuple[str, str | None, str | None], ...] = ()  # (path, content or None, link target or None)
    # present files with the right content whose owner or mode lets others change them: rewritten
    loose: frozenset[str] = frozenset()


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


def _current(path: str) -> tuple[str, str | None, str | None]:
    link = None
    try:  # noqa: SIM105 - contextlib is not imported on the audit path
        link = os.readlink(path)
    except OSError:
        pass
    return path, host.read_text(path, 16 << 20), link


def _bytecode() -> tuple[str, ...]:
    cache = f"{ENGINE_DIR}/__pycache__"
    try:
        return tuple(f"{cache}/{name}" for name in sorted(os.listdir(cache)))
    except OSError:
        return ()


def _loose(path: str) -> bool:
    try:
        info = os.lstat(path)
    except OSError:
        return False
    return info.st_uid != 0 or bool(info.st_mode & 0o022)


def read(artifacts: tuple[NodeArtifact, ...], node_entry: bool, group: str = "") -> NodeFileFacts:
    """Only setup and heal ask (audit passes nothing): an audit reads none of this."""
    if not artifacts and not node_entry:
        return NodeFileFacts()
    sources = read_engine_sources() if node_entry else None
    paths = [a.path for a in wanted(artifacts, sources, node_entry) if not a.keep_sha256]
    if artifacts and group:
        paths += [path for path in optional_paths(group) if path not in paths]
    present = tuple(_current(p) for p in paths)
    loose = frozenset(p for p, text, link in present if text is not None and link is None and _loose(p))
    if node_entry:  # bytecode python would load instead of the engine's .py files
        loose |= frozenset(p for p in _bytecode() if _loose(p))
    return NodeFileFacts(engine_sources=sources, present=present, loose=loose)
