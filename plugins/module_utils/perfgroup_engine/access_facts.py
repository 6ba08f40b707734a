"""Access that the mode bits do not show, and what setup leaves behind (issue 10).

POSIX ACLs on the copy and above it, holders of the group that /etc/group does not list
(gshadow members and administrators, a group password, primary gids, a second name on the gid),
processes that still hold the capabilities, capability-carrying files under perfgroup's install
root that are not a current copy, and the safety of the setup record itself.

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
from .host import has_caps, load_state, owner_mode
from .paths import GSHADOW, LIBEXEC_ROOT, STATE_DIR
from .state import State
from .trust import setup_made
from .tuples import NamedTuple

# Capabilities whose presence in a non-root process after `members remove`/`remove` means it kept
# the group's power: profiling's own and every root-equivalent one a copy may have carried.
WATCHED_CAPS = PROFILING_CAPS | ROOT_EQUIVALENT_CAPS


class Holder(NamedTuple):
    user: str
    via: str  # member | gshadow_member | gshadow_admin | primary_gid | same_gid_group


class Lingering(NamedTuple):
    pid: int
    user: str
    caps: tuple[str, ...]


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


def _read_status(path: str) -> bytes:
    # One open/read/close per process, bytes only: the scan runs on every audit over every PID
    # of the node (kernel threads included), so no text layer and no line splitting.
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        return os.read(fd, 1 << 16)
    finally:
        os.close(fd)


def scan_processes(proc: str = "/proc") -> tuple[Lingering, ...]:
    watched = 0
    for name in WATCHED_CAPS:
        watched |= 1 << CAP_NUMBERS[name]
    found = []
    try:
        pids = [n for n in os.listdir(proc) if n.isdigit()]
        ours = os.stat("/")
    except OSError:
        return ()
    for pid in pids:
        try:
            uid, mask = parse_status(_read_status(f"{proc}/{pid}/status"))
        except (OSError, ValueError, IndexError):
            continue
        if uid is None or uid == 0 or not mask & watched or not _same_root(f"{proc}/{pid}/root", ours):
            continue
        try:
            user = pwd.getpwuid(uid).pw_name
        except KeyError:
            user = str(uid)
        found.append(Lingering(int(pid), user, tuple(sorted(cap_names(mask & watched)))))
    return tuple(sorted(found))


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
        state, _ = load_state(f"{STATE_DIR}/{name}")
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
    return AccessFacts(
        copy_acl=copy_acl, dir_acls=dir_acls, gshadow=gshadow, primary_members=primary,
        same_gid_names=names, same_gid_members=name_members, lingering=() if desired.image else scan_processes(),
        orphans=find_orphans(state, desired.dest, desired.group), state_dir=owner_mode(STATE_DIR),
        state_file=owner_mode(desired.state_path), password_file=password_file,
    )


# -- judging ---------------------------------------------------------------------------------


# -- planning --------------------------------------------------------------------------------


