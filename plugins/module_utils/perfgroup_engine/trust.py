"""Which paths root may trust: what a path names and every directory and link above it
(`path_problem`), and which copies a setup record names that setup could really have made (issue 10).

A path is root's alone when no one else can change what it names: every component from / down is
owned by root and not writable by group or others, by mode or by an ACL entry. A symlink on the
way is followed only when root owns it (its target is then checked the same way); who may write
the directory holding it was checked one step before.

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

from .acl import W, read_acl
from .errors import RefusedError
from .host import has_caps
from .paths import LIBEXEC_ROOT
from .perfsource import SYSTEM_DIRS, is_perf_elf
from .state import State
from .validate import check_dest_path

# As the kernel's MAXSYMLINKS: more links than this on one path is a loop.
MAX_SYMLINKS = 40


def path_problem(path: str, kind: str = "file") -> str | None:
    """Why root may not trust what the absolute `path` names (a "file" or a "dir"), or None if it
    may: every component from / down is lstat'ed, must be owned by uid 0 and not writable by group or
    others (mode, or a named ACL entry granting write), every component but the last must be a
    directory and the last of `kind`. A symlink component is allowed only if root owns it; its target
    is then walked the same way (relative to the directory holding it)."""
    if not path.startswith("/"):
        return f"{path} is not an absolute path"
    todo = [name for name in reversed(path.split("/")) if name]  # the next component last
    current = "/"
    problem = _node_problem("/", "dir" if todo else kind)
    links = 0
    while todo and problem is None:
        name = todo.pop()
        if name == ".":
            continue
        if name == "..":
            current = os.path.dirname(current)  # already walked: a real directory, root's alone
            if not todo and kind != "dir":
                return f"{current} is a directory"
            continue
        here = os.path.join(current, name)
        try:
            info = os.lstat(here)
        except OSError as error:
            return f"{here}: {error.strerror}"
        if stat.S_ISLNK(info.st_mode):
            if info.st_uid != 0:
                return f"{here} is a symlink owned by uid {info.st_uid}"
            links += 1
            if links > MAX_SYMLINKS:
                return f"{path}: too many levels of symbolic links"
            try:
                target = os.readlink(here)
            except OSError as error:
                return f"{here}: {error.strerror}"
            if target.startswith("/"):
                current = "/"
            todo.extend(n for n in reversed(target.split("/")) if n)
            continue
        problem = _node_problem(here, kind if not todo else "dir", info)
        current = here
    return problem


def _node_problem(path: str, kind: str, info: os.stat_result | None = None) -> str | None:
    """One component, not a symlink: its type, owner, mode and access ACL."""
    if info is None:
        try:
            info = os.lstat(path)
        except OSError as error:
            return f"{path}: {error.strerror}"
    mode = info.st_mode
    if kind == "dir" and not stat.S_ISDIR(mode):
        return f"{path} is not a directory"
    if kind != "dir" and not stat.S_ISREG(mode):
        return f"{path} is a directory" if stat.S_ISDIR(mode) else f"{path} is not a regular file"
    if info.st_uid != 0:
        return f"{path} is owned by uid {info.st_uid}"
    if mode & (stat.S_IWGRP | stat.S_IWOTH):
        return f"{path} is writable by group or others (mode {stat.S_IMODE(mode):04o})"
    acl = read_acl(path, "access")
    writers = acl.grants(W) if acl is not None else ()
    if writers:
        return f"{path}: an ACL lets {', '.join(e.text() for e in writers)} write"
    return None


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
