"""Ansible's --diff for a setup plan (pure): one entry per planned change, each a few lines.

A first setup writes some 40 files, the engine's own source among them (about 7,000 lines): shown
whole, a site's `--check --diff` drowns what changes machine-wide. So a small text file (a drop-in,
a unit, a hook) is shown whole (Ansible prints a short unified diff), a larger one as its sha256
and size before and after, and the node entry point's files (the launcher and the engine copy)
as one entry listing each path with its sha256.
"""

from __future__ import annotations

from .actions import Action, WriteFile
from .host import sha256_text
from .node_files_rules import is_entry_point
from .paths import ENGINE_DIR, LAUNCHER

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Dict, Sequence

    Entry = Dict[str, str]

# Above this a file is summarised by its hash: the longest artifact a site reads in a diff (a
# modulefile, a unit, the wrapper) fits, an engine module does not.
SMALL_LINES = 60
SMALL_CHARS = 4096


def entries(actions: Sequence[Action]) -> list[Entry]:
    """Ansible's diff list: the entry point's files as one entry where the first of them stands."""
    entry_files = [a for a in actions if isinstance(a, WriteFile) and is_entry_point(a.target)]
    out = []
    for action in actions:
        if action in entry_files:
            if action is entry_files[0]:
                out.append(entry_point(entry_files))
        elif isinstance(action, WriteFile):
            out.append(file_entry(action))
        else:
            out.append(entry(f"{action.target} ({action.kind})", action.before, action.after))
    return out


def entry(header: str, before: str, after: str) -> Entry:
    return {"before_header": header, "after_header": header, "before": _line_end(before), "after": _line_end(after)}


def file_entry(action: WriteFile) -> Entry:
    header = f"{action.target} ({action.kind})"
    if all(text is None or small(text) for text in (action.old, action.content)):
        return entry(header, action.old or "", action.content)
    return entry(header, digest(action.old), digest(action.content))


def entry_point(files: Sequence[WriteFile]) -> Entry:
    header = f"node entry point: {len(files)} files ({LAUNCHER}, {ENGINE_DIR}/)"
    before = "".join(f"{a.target} {digest(a.old)}" for a in files if a.old is not None)
    after = "".join(f"{a.target} {digest(a.content)}" for a in files)
    return entry(header, before, after)


def small(text: str) -> bool:
    return len(text) <= SMALL_CHARS and text.count("\n") <= SMALL_LINES


def digest(text: str | None) -> str:
    if text is None:
        return ""
    lines = text.count("\n")
    return f"sha256 {sha256_text(text)} ({lines} line{'' if lines == 1 else 's'}, {len(text.encode())} bytes)\n"


def _line_end(text: str) -> str:
    """Every non-empty side ends in a newline: Ansible marks a missing one on every entry."""
    return text if not text or text.endswith("\n") else text + "\n"
