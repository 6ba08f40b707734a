"""Which copies a setup record names that setup could really have made (issue 10).

The record is root's, but root-owned is not the same as true: it may be tampered with, restored
from another node or hand-edited. `remove` deletes, and setup neutralises, only the recorded copies
that still look like what setup installs; everything else the record names is left in place and
reported.

What setup installs at a copy path is a regular file (never a symlink: InstallCopy renames a
temp file into place), owned by root, a perf ELF, with the group's gid or carrying
`security.capability`, at a path --dest accepts, inside perfgroup's install root or a directory
setup recorded creating. A copy in a directory that existed before setup (--dest /opt/tools/perf2)
is trusted only with both marks: the recorded gid and file capabilities. A symlink is never
trusted, even inside perfgroup's directories: the created_dirs list is as forgeable as the copies
list, and unlinking a name is only harmless where we know who made the directory.
"""

from __future__ import annotations

import os
import stat

from .errors import RefusedError
from .host import has_caps
from .paths import LIBEXEC_ROOT
from .perfsource import SYSTEM_DIRS, is_perf_elf
from .state import State
from .validate import check_dest_path


def _inside(path: str, directory: str) -> bool:
    return path.startswith(directory.rstrip("/") + "/")


def setup_made(path: str, state: State) -> bool:
    """The recorded copy `path` (which exists) is one setup could have installed."""

    try:
        check_dest_path(path)
    except RefusedError:
        return False
    if os.path.dirname(path) in SYSTEM_DIRS:  # the distribution's perf: setup refuses to install there
        return False
    try:
        info = os.lstat(path)
    except OSError:
        return False
    if not stat.S_ISREG(info.st_mode) or info.st_uid != 0 or not is_perf_elf(path):
        return False
    # gid 0 is no mark of ours: every root:root file has it.
    ours_gid = info.st_gid == state.gid and state.gid > 0
    caps = has_caps(path)
    ours_dir = _inside(path, LIBEXEC_ROOT) or any(_inside(path, d) for d in state.created_dirs if d != "/")
    return (ours_dir and (ours_gid or caps)) or (ours_gid and caps)


def untrusted_note(path: str) -> str:
    return f"record names {path}, which setup could not have created; left in place"


def state_problem(entry: tuple[int, int, str] | None, kind: str) -> str | None:
    if entry is None:
        return None
    uid, mode, found = entry
    if found != kind:
        return f"is a {found}"
    if uid != 0:
        return f"is owned by uid {uid}"
    if mode & 0o022:
        return f"is writable by others (mode {mode:04o})"
    return None
