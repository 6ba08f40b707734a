"""Access that the mode bits do not show, and what setup leaves behind (issue 10).

POSIX ACLs on the copy and above it, holders of the group that /etc/group does not list
(gshadow members and administrators, a group password, primary gids, a second name on the gid),
processes that still hold the capabilities or the group's gid, capability-carrying files under
perfgroup's install root that are not a current copy, and the safety of the setup record itself.
For a group setup is about to create: the gids in use (group database, users' primary gids,
running processes) and the system gid range of /etc/login.defs.

Facts here are read without side effects and without root (what needs root, /etc/gshadow, is
reported as unreadable); findings and plans are pure functions of them.
"""

from __future__ import annotations

import errno
import grp
import os
import pwd

from .acl import Acl, read_acl
from .capabilities import CAP_NAMES, CAP_NUMBERS, PROFILING_CAPS, ROOT_EQUIVALENT_CAPS
from .desired import Desired
from .host import has_caps, load_state, owner_mode, read_text
from .paths import GSHADOW, LIBEXEC_ROOT, STATE_DIR
from .state import State
from .trust import setup_made, state_problem
from .tuples import NamedTuple

# Capabilities whose presence in a non-root process after `members remove`/`remove` means it kept
# the group's power: profiling's own and every root-equivalent one a copy may have carried.
WATCHED_CAPS = PROFILING_CAPS | ROOT_EQUIVALENT_CAPS
LOGIN_DEFS = "/etc/login.defs"
SYS_GIDS = (100, 999)  # SYS_GID_MIN, SYS_GID_MAX when /etc/login.defs does not set them


class Holder(NamedTuple):
    user: str
    via: str  # member | gshadow_member | gshadow_admin | primary_gid | same_gid_group


class Lingering(NamedTuple):
    pid: int
    user: str
    caps: tuple[str, ...]


class Holding(NamedTuple):
    """A process that holds a gid (real, effective, saved, fs or supplementary)."""

    pid: int
    user: str
    uid: int  # the first of its real, effective, saved, fs uids that is not 0; 0: all four are root's


class ProcessScan(NamedTuple):
    lingering: tuple[Lingering, ...] = ()
    holding: tuple[Holding, ...] = ()  # processes holding the gid asked for, root's too
    held_gids: tuple[int, ...] = ()  # every gid a process holds (only when asked for)


class AccessFacts(NamedTuple):
    copy_acl: Acl | None = None  # None: no ACL beyond the mode bits
    dir_acls: tuple[Acl, ...] = ()  # parents of the copy with an ACL (access or default)
    gshadow: tuple[str, tuple[str, ...], tuple[str, ...]] | None = None  # (password, admins, members); None: unreadable
    primary_members: tuple[str, ...] = ()
    same_gid_names: tuple[str, ...] = ()  # other group names sharing the gid
    same_gid_members: tuple[str, ...] = ()
    lingering: tuple[Lingering, ...] = ()  # non-root processes holding watched capabilities
    orphans: tuple[str, ...] = ()  # capability-carrying or recorded copies that are no current copy
    state_dir: tuple[int, int, str] | None = None  # (uid, mode, kind) of /var/lib/perfgroup
    state_file: tuple[int, int, str] | None = None  # (uid, mode, kind) of the record
    password_file: str = GSHADOW  # where newgrp/sg read the group password: /etc/group when gshadow has no line
    # Processes holding the group's gid (or, while the group does not exist, Desired.gid's), root's too.
    holding: tuple[Holding, ...] = ()
    # While the group does not exist (setup is to create it): gids that processes hold, gids of the
    # group database and users' primary gids, and SYS_GID_MIN..SYS_GID_MAX.
    held_gids: tuple[int, ...] = ()
    used_gids: tuple[int, ...] = ()
    sys_gids: tuple[int, int] = SYS_GIDS


# -- reading ---------------------------------------------------------------------------------

def parse_gshadow(text: str, group: str) -> tuple[str, tuple[str, ...], tuple[str, ...]] | None:
    for line in text.split("\n"):  # as shadow-utils reads it: a CR or form feed inside a name is no line break
        fields = line.split(":")
        if len(fields) >= 4 and fields[0] == group:
            return fields[1], _names(fields[2]), _names(fields[3])
    return None


def _names(value: str) -> tuple[str, ...]:
    return tuple(n for n in value.split(",") if n)


def password_set(password: str) -> bool:
    """A usable group password: anything but empty (newgrp/sg then refuse every non-member), the
    /etc/group placeholder 'x' or a locked marker ('!', '*', '!...'), none of which crypt can produce."""
    return bool(password) and password != "x" and not password.startswith(("!", "*"))


def group_password(gshadow_text: str | None, group: str) -> tuple[tuple[str, tuple[str, ...], tuple[str, ...]] | None, str]:
    """(password, admins, members) and the file newgrp/sg take the password from. As shadow-utils
    does: the gshadow line when there is one, else field 2 of /etc/group (also when there is no
    /etc/gshadow at all: gshadow_text ""). None: gshadow exists but is not ours to read."""
    if gshadow_text is None:
        return None, GSHADOW
    entry = parse_gshadow(gshadow_text, group)
    if entry is not None:
        return entry, GSHADOW
    try:
        password = grp.getgrnam(group).gr_passwd or ""
    except KeyError:
        password = ""
    return (password, (), ()), "/etc/group"


def cap_names(mask: int) -> frozenset[str]:
    return frozenset(CAP_NAMES[bit] for bit in CAP_NAMES if mask >> bit & 1)


_STATUS_CAPS = (b"\nCapPrm:", b"\nCapEff:", b"\nCapAmb:")


def parse_status(text: str | bytes) -> tuple[int | None, int]:
    """(real uid, CapEff | CapPrm | CapAmb) of one /proc/PID/status."""
    data = b"\n" + (text.encode() if isinstance(text, str) else text)
    at = data.find(b"\nUid:")
    uid = int(data[at + 5:data.find(b"\n", at + 5)].split()[0]) if at >= 0 else None
    mask = 0
    for key in _STATUS_CAPS:
        at = data.find(key)
        if at >= 0:
            end = data.find(b"\n", at + 1)
            mask |= int(data[at + len(key):end if end >= 0 else len(data)], 16)
    return uid, mask


def _ints(data: bytes, key: bytes) -> list[int]:
    at = data.find(key)
    if at < 0:
        return []
    end = data.find(b"\n", at + 1)
    return [int(n) for n in data[at + len(key):end if end >= 0 else len(data)].split()]


def parse_ids(text: str | bytes) -> tuple[tuple[int, ...], tuple[int, ...], bool]:
    """(uids: real, effective, saved, fs; every gid held: the `Gid:` line's real, effective, saved
    and fs gid and the `Groups:` line's supplementary ones, sorted, each once; a zombie) of one
    /proc/PID/status."""
    data = b"\n" + (text.encode() if isinstance(text, str) else text)
    # A zombie leader whose other threads still run (pthread_exit in main) is no zombie: those
    # threads keep the gid and may execve the copy.
    dead = data.find(b"\nState:\tZ") >= 0 or data.find(b"\nState:\tX") >= 0
    threads = _ints(data, b"\nThreads:")
    zombie = dead and (not threads or threads[0] <= 1)
    return tuple(_ints(data, b"\nUid:")), tuple(sorted(set(_ints(data, b"\nGid:") + _ints(data, b"\nGroups:")))), zombie


def _read_status(path: str) -> bytes:
    # One open/read/close per process, bytes only: the scan runs on every audit over every PID
    # of the node (kernel threads included), so no text layer and no line splitting.
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        return os.read(fd, 1 << 16)
    finally:
        os.close(fd)


def _user(uid: int, names: dict[int, str]) -> str:
    if uid not in names:
        try:
            names[uid] = pwd.getpwuid(uid).pw_name
        except KeyError:
            names[uid] = str(uid)
    return names[uid]


def scan_processes(proc: str = "/proc", gid: int | None = None, all_gids: bool = False) -> ProcessScan:
    """One read of each /proc/PID/status: non-root processes holding watched capabilities, the
    processes holding `gid` (any uid; zombies run nothing and are left out) and, with all_gids,
    every gid some process holds. Processes of another root (a container) are not this system's."""
    watched = 0
    for name in WATCHED_CAPS:
        watched |= 1 << CAP_NUMBERS[name]
    lingering: list[Lingering] = []
    holding: list[Holding] = []
    held: set[int] = set()
    names: dict[int, str] = {}
    needle = b"%d" % gid if gid is not None else b""
    try:
        pids = [n for n in os.listdir(proc) if n.isdigit()]
        ours = os.stat("/")
    except OSError:
        return ProcessScan()
    for pid in pids:
        try:
            data = _read_status(f"{proc}/{pid}/status")
            uid, mask = parse_status(data)
            # Most processes' status does not even contain the gid's digits: a substring test spares them the parse.
            ids = all_gids or (gid is not None and needle in data)
            uids, gids, zombie = parse_ids(data) if ids else ((), (), False)
        except (OSError, ValueError, IndexError):
            continue
        caps = uid is not None and uid != 0 and mask & watched
        holds = gid in gids and not zombie
        fresh = all_gids and not zombie and not held.issuperset(gids)
        if not (caps or holds or fresh) or not _same_root(f"{proc}/{pid}/root", ours):
            continue
        if caps and uid is not None:
            lingering.append(Lingering(int(pid), _user(uid, names), tuple(sorted(cap_names(mask & watched)))))
        if holds:
            named = next((u for u in uids if u != 0), 0)
            holding.append(Holding(int(pid), _user(named, names), named))
        if fresh:
            held.update(gids)
    return ProcessScan(tuple(sorted(lingering)), tuple(sorted(holding)), tuple(sorted(held)))


def parse_login_defs(text: str | None) -> tuple[int, int]:
    """SYS_GID_MIN and SYS_GID_MAX as groupadd reads them (SYS_GID_MAX defaults to GID_MIN - 1)."""
    values: dict[str, int] = {}
    for line in (text or "").split("\n"):
        fields = line.split()
        if len(fields) >= 2 and fields[0] in ("SYS_GID_MIN", "SYS_GID_MAX", "GID_MIN") and fields[1].isdigit():
            values[fields[0]] = int(fields[1])
    high = values.get("SYS_GID_MAX", values["GID_MIN"] - 1 if "GID_MIN" in values else SYS_GIDS[1])
    return values.get("SYS_GID_MIN", SYS_GIDS[0]), high


def used_gids() -> tuple[int, ...]:
    """gids a new group must not get: the group database's and every user's primary gid (a user
    whose primary gid it is would be a member of the new group)."""
    return tuple(sorted({g.gr_gid for g in grp.getgrall()} | {u.pw_gid for u in pwd.getpwall()}))


def _same_root(link: str, ours: os.stat_result) -> bool:
    """A process of this system, not of a container with its own root (whose copies are its own).
    Unknowable without root for others' processes: then counted, to err on the side of reporting."""
    try:
        theirs = os.stat(link)
    except OSError as error:
        return error.errno != errno.ENOENT
    return (theirs.st_dev, theirs.st_ino) == (ours.st_dev, ours.st_ino)


def recorded_dests(group: str) -> set[str]:
    """The current copy of every other group with a setup record (theirs are not orphans)."""

    dests: set[str] = set()
    try:
        names = [n for n in os.listdir(STATE_DIR) if n.endswith(".json") and n != f"{group}.json"]
    except OSError:
        return dests
    for name in names:
        path = f"{STATE_DIR}/{name}"
        if state_problem(owner_mode(path), "file") is not None:
            continue  # a record someone else could have written hides nothing
        state, _ = load_state(path)
        if state is not None:
            dests.add(state.dest)
    return dests


def find_orphans(state: State | None, current: str, group: str) -> tuple[str, ...]:
    """Capability-carrying regular files under the install root, and recorded copies of this group
    that setup could have made, that are not a current copy (this group's, or another group's by its record)."""
    keep = {current} | recorded_dests(group)
    # A hard link to the current copy is the copy itself (reported as copy.hardlinked; a reinstall
    # neutralises the old inode under every name).
    same = {_inode(path) for path in keep} - {None}
    found = set()
    for directory, subdirs, names in os.walk(LIBEXEC_ROOT):
        subdirs[:] = [d for d in subdirs if not os.path.islink(os.path.join(directory, d))]
        for name in names:
            path = os.path.join(directory, name)
            if (path not in keep and os.path.isfile(path) and not os.path.islink(path) and has_caps(path)
                    and _inode(path) not in same):
                found.add(path)
    if state is not None:
        found.update(path for path in state.copies
                     if path not in keep and os.path.lexists(path) and setup_made(path, state))
    return tuple(sorted(found))


def _inode(path: str) -> tuple[int, int] | None:
    try:
        info = os.lstat(path)
    except OSError:
        return None
    return info.st_dev, info.st_ino


def read(desired: Desired, state: State | None, gid: int | None, dirs: tuple[str, ...]) -> AccessFacts:
    copy_acl = read_acl(desired.dest, "access") if os.path.isfile(desired.dest) else None
    dir_acls = tuple(acl for d in dirs for acl in (read_acl(d, "access"), read_acl(d, "default")) if acl is not None)
    text: str | None
    try:
        with open(GSHADOW, encoding="utf-8", errors="replace", newline="") as handle:  # a CR stays in its name
            text = handle.read()
    except OSError as error:
        text = "" if error.errno == errno.ENOENT else None
    gshadow, password_file = group_password(text, desired.group)
    primary: tuple[str, ...] = ()
    names: tuple[str, ...] = ()
    name_members: tuple[str, ...] = ()
    if gid is not None:
        primary = tuple(sorted(e.pw_name for e in pwd.getpwall() if e.pw_gid == gid))
        others = [g for g in grp.getgrall() if g.gr_gid == gid and g.gr_name != desired.group]
        names = tuple(sorted(g.gr_name for g in others))
        name_members = tuple(sorted({m for g in others for m in g.gr_mem}))
    # The group's gid, or the one setup is asked to create it with; a group to create: every gid in use.
    # An image's processes are the build host's, not the nodes'.
    creating = gid is None
    scan = ProcessScan() if desired.image else scan_processes(
        gid=desired.gid if creating else gid, all_gids=creating)
    return AccessFacts(
        copy_acl=copy_acl, dir_acls=dir_acls, gshadow=gshadow, primary_members=primary,
        same_gid_names=names, same_gid_members=name_members, lingering=scan.lingering,
        orphans=find_orphans(state, desired.dest, desired.group), state_dir=owner_mode(STATE_DIR),
        state_file=owner_mode(desired.state_path), password_file=password_file, holding=scan.holding,
        held_gids=scan.held_gids, used_gids=used_gids() if creating else (),
        sys_gids=parse_login_defs(read_text(LOGIN_DEFS)) if creating else SYS_GIDS,
    )


# -- judging ---------------------------------------------------------------------------------


# -- planning --------------------------------------------------------------------------------
