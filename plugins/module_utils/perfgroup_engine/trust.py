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

import grp
import os
import stat

from . import fstab
from .acl import W, read_acl
from .errors import RefusedError
from .host import has_caps, owner_mode, read_text
from .paths import ENGINE_DIR, LIB_DIR, LIBEXEC_ROOT, TMP_PREFIX, TRACEFS_PATHS, journal_path
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


# -- the record's other items: one rule, "setup could have made it and it still looks that way" --

def created_dir_trusted(path: str, state: State) -> bool:
    """A recorded directory setup created: on the way to a recorded copy, a plain root-owned 0755
    directory (what CreateDir makes), never a mount point. Outside perfgroup's own tree it must
    also still hold a copy setup made with both marks (gid and capabilities): the created_dirs
    list alone is as forgeable as the record, and a forged one would have remove delete (or
    setup and heal chown) a directory that is the site's."""
    copies = (state.dest, *state.copies)
    if path in ("", "/") or not any(_inside(copy, path) for copy in copies):
        return False
    try:
        info = os.lstat(path)
    except OSError:
        return False  # gone: nothing to trust, nothing to do
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != 0 or stat.S_IMODE(info.st_mode) != 0o755 \
            or os.path.ismount(path):
        return False
    if path == LIBEXEC_ROOT or _inside(path, LIBEXEC_ROOT) or _inside(LIBEXEC_ROOT, path):
        return True  # perfgroup's own tree, and the parents setup creates for it where missing
    bare = state._replace(created_dirs=())
    return any(_inside(copy, path) and os.path.lexists(copy) and setup_made(copy, bare) for copy in copies)


def access_restorable(mode: int, gid: int) -> bool:
    """A tracefs root mode and gid remove may put back: no one but root writes, and no group but
    root's reads (a forged "before" would otherwise open tracefs to a group of the forger's)."""
    return 0 <= mode <= 0o7777 and not mode & 0o022 and (gid == 0 or not mode & 0o070) and 0 <= gid < 0xFFFFFFFF


def tracefs_before_trusted(entry: tuple[str, int, int]) -> bool:
    """A tracefs mount's mode and gid from before setup: a tracefs mount point and an access
    remove may restore (remove remounts with it)."""
    point, mode, gid = entry
    return point in TRACEFS_PATHS and access_restorable(mode, gid)


def fstab_edit_trusted(edit: tuple[str, str], gid: int) -> bool:
    """An fstab edit setup made: the line before is a tracefs entry and the line written is
    exactly setup's edit of it for the group's gid. Anything else would have remove write an
    arbitrary line into /etc/fstab (root at the next boot)."""
    before, written = edit
    found = fstab.entry(before)
    if found is None or gid <= 0 or fstab.edit_line(before, gid) != written:
        return False
    before_gid, before_mode, uid_given = fstab.access_before(found.options)
    return not uid_given and access_restorable(0o700 if before_mode is None else before_mode, before_gid)


def _gid_of(group: str) -> int | None:
    try:
        return grp.getgrnam(group).gr_gid
    except KeyError:
        return None


def sanitize(state: State) -> tuple[State, tuple[str, ...]]:
    """The record with only the items setup could have made and that still look that way, and
    a line naming each item dropped (setup, audit and remove say them)."""
    dirs = tuple(d for d in state.created_dirs if os.path.normpath(d) == d and created_dir_trusted(d, state))
    tracefs = tuple(e for e in state.tracefs_before if tracefs_before_trusted(e))
    edits = tuple(e for e in state.fstab_edits if fstab_edit_trusted(e, state.gid))
    dropped = [f"created directory {d}" for d in state.created_dirs if d not in dirs]
    dropped += [f"tracefs before {p} mode {m:04o} gid {g}" for p, m, g in state.tracefs_before
                if (p, m, g) not in tracefs]
    dropped += [f"fstab edit of {before!r}" for before, written in state.fstab_edits if (before, written) not in edits]
    # A group counts as created by setup only while it has the gid setup recorded: one the site
    # deleted and made again (or a record from another node) is the site's.
    created = state.group_created and _gid_of(state.group) in (None, state.gid)  # gone: heal makes it again
    if state.group_created and not created:
        dropped.append(f"group {state.group} created (its gid is no longer {state.gid})")
    clean = state._replace(created_dirs=dirs, tracefs_before=tracefs, fstab_edits=edits, group_created=created)
    return clean, tuple(f"record item not trusted (setup could not have made it, or it changed): {d}; ignored"
                        for d in dropped)


def fstab_journal(group: str, gid: int | None) -> tuple[tuple[tuple[str, str], ...], tuple[str, ...]]:
    """The fstab edits a killed run journaled (fstab.py), only from a journal that is root's
    alone and only edits setup could have made for the group's gid; and what was not trusted.
    A planted journal would otherwise enter the root-owned record, and remove would write its
    "before" line into /etc/fstab."""
    path = journal_path(group)
    entry = owner_mode(path)
    if entry is None:
        return (), ()
    problem = state_problem(entry, "file")
    if problem is not None:
        return (), (f"{path} {problem}: its fstab edits are ignored",)
    edits = fstab.parse_journal(read_text(path, exact=True) or "")
    good = tuple(edit for edit in edits if gid is not None and fstab_edit_trusted(edit, gid))
    return good, tuple(f"{path}: an edit of {before!r} setup could not have made; ignored"
                       for before, written in edits if (before, written) not in good)


def nearest_dir_problem(path: str) -> str | None:
    """Why root may not write `path`: the nearest existing directory above it (what a new file
    or directory would be created in) must be root's alone all the way up."""
    directory = os.path.dirname(path)
    while directory != "/" and not os.path.lexists(directory):
        directory = os.path.dirname(directory)
    return path_problem(directory, "dir")


def files_problems(paths: tuple[str, ...]) -> tuple[tuple[str, str], ...]:
    """(path, why) for each existing file root or members run or source (the wrapper, the node
    entry point, units, hooks, snippets) that someone other than root could change: the file
    and every directory above it. Each directory chain is walked once (an audit checks ~45 files)."""
    seen: dict[str, str | None] = {}
    out = []
    for path in paths:
        if not os.path.lexists(path):
            continue
        directory = os.path.dirname(path)
        if directory not in seen:
            seen[directory] = path_problem(directory, "dir")
        problem = seen[directory] or (path_problem(path, "file") if os.path.islink(path) else _node_problem(path, "file"))
        if problem is not None:
            out.append((path, problem))
    return tuple(out)


def foreign_entries() -> tuple[tuple[str, str], ...]:
    """(path, why) of what is not perfgroup's in the node entry point's directories: anything but
    the engine package beside it, the engine's .py files and its bytecode. Root imports from
    there (the launcher refuses to run while any exist; audit and setup name them)."""
    found = []
    for directory in (LIB_DIR, ENGINE_DIR, f"{ENGINE_DIR}/__pycache__"):
        try:
            names = sorted(os.listdir(directory))
        except OSError:
            continue
        found += [(f"{directory}/{name}", f"{directory}/{name} is not perfgroup's (root would import it)")
                  for name in names if not _entry_allowed(directory, name)]
    return tuple(found)


def _entry_allowed(directory: str, name: str) -> bool:
    if name.startswith(TMP_PREFIX):  # a killed run's temp file (never importable): the next write removes it
        return _node_problem(f"{directory}/{name}", "file") is None
    if directory == LIB_DIR:
        return name == "perfgroup_engine"
    if directory == ENGINE_DIR:
        return name.endswith(".py") or name == "__pycache__"
    return name.endswith(".pyc")
