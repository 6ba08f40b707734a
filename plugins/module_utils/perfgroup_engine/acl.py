"""POSIX ACLs: the kernel's posix_acl xattr decoded, and read from a path (read layer).

Who may do what beyond the mode bits: access_facts reports ACLs on the copy and above it, trust
refuses a path whose ACL lets a non-root user write, apply strips them.
"""

from __future__ import annotations

import grp
import os
import pwd
import struct

from .tuples import NamedTuple

ACL_ACCESS = "system.posix_acl_access"
ACL_DEFAULT = "system.posix_acl_default"
ACL_VERSION = 2
USER_OBJ, USER, GROUP_OBJ, GROUP, MASK, OTHER = 0x01, 0x02, 0x04, 0x08, 0x10, 0x20
TAG_NAMES = {USER_OBJ: "user_obj", USER: "user", GROUP_OBJ: "group_obj", GROUP: "group", MASK: "mask", OTHER: "other"}
R, W, X = 4, 2, 1


class AclEntry(NamedTuple):
    tag: int
    perm: int
    id: int | None = None  # uid or gid for USER/GROUP entries

    def text(self) -> str:
        who = TAG_NAMES.get(self.tag, hex(self.tag))
        if self.tag in (USER, GROUP):
            who += f":{_name(self.tag, self.id)}"
        return who + ":" + "".join(c if self.perm & bit else "-" for c, bit in (("r", R), ("w", W), ("x", X)))


class Acl(NamedTuple):
    path: str
    kind: str  # "access" or "default"
    entries: tuple[AclEntry, ...]

    def named(self) -> tuple[AclEntry, ...]:
        return tuple(e for e in self.entries if e.tag in (USER, GROUP))

    def effective(self, entry: AclEntry) -> int:
        """Named entries are limited by the mask (access ACLs; a default ACL is what new files get)."""
        mask = next((e.perm for e in self.entries if e.tag == MASK), 7)
        return entry.perm & mask

    def grants(self, bits: int, skip_root: bool = True) -> tuple[AclEntry, ...]:
        return tuple(
            e for e in self.named() if self.effective(e) & bits and not (skip_root and e.id == 0)
        )

    def text(self) -> str:
        return ",".join(e.text() for e in self.named())


def _name(tag: int, ident: int | None) -> str:
    if ident is None:
        return "?"
    try:
        return pwd.getpwuid(ident).pw_name if tag == USER else grp.getgrgid(ident).gr_name
    except KeyError:
        return str(ident)


def decode_acl(raw: bytes) -> tuple[AclEntry, ...]:
    """The kernel's posix_acl xattr: u32 version 2, then (u16 tag, u16 perm, u32 id) entries."""
    if len(raw) < 4 or (len(raw) - 4) % 8:
        raise ValueError(f"malformed ACL ({len(raw)} bytes)")
    (version,) = struct.unpack_from("<I", raw, 0)
    if version != ACL_VERSION:
        raise ValueError(f"ACL version {version}")
    entries = []
    for offset in range(4, len(raw), 8):
        tag, perm, ident = struct.unpack_from("<HHI", raw, offset)
        entries.append(AclEntry(tag, perm & 7, ident if tag in (USER, GROUP) else None))
    return tuple(entries)


def read_acl(path: str, kind: str) -> Acl | None:
    """The access or default ACL of path (never through a symlink), None when it has none beyond
    the mode bits. An ACL in an unknown format is one entry granting everything."""
    name = ACL_ACCESS if kind == "access" else ACL_DEFAULT
    try:
        raw = os.getxattr(path, name, follow_symlinks=False)
    except OSError:
        return None  # none, unsupported, or not ours to read: the mode bits tell the rest
    try:
        entries = decode_acl(raw)
    except (ValueError, struct.error):
        return Acl(path, kind, (AclEntry(0, 7, None),))  # unknown format: reported as an entry
    acl = Acl(path, kind, entries)
    return acl if acl.named() or len(entries) > 3 else None


def encode_acl(entries: tuple[AclEntry, ...]) -> bytes:
    """The xattr decode_acl reads, entries in the order the kernel requires (tag, then id)."""
    ordered = sorted(entries, key=lambda e: (e.tag, e.id if e.id is not None else -1))
    return struct.pack("<I", ACL_VERSION) + b"".join(
        struct.pack("<HHI", e.tag, e.perm, e.id if e.id is not None else 0xFFFFFFFF) for e in ordered)


def with_user(entries: tuple[AclEntry, ...], mode: int, uid: int, perm: int) -> tuple[AclEntry, ...]:
    """The access ACL with `u:uid:perm` added (entries: the current ones, () for the mode bits
    alone); the mask widens to let it through, the owner, group and other bits stay as they are."""
    base = entries or (AclEntry(USER_OBJ, (mode >> 6) & 7), AclEntry(GROUP_OBJ, (mode >> 3) & 7),
                       AclEntry(OTHER, mode & 7))
    kept = tuple(e for e in base if e.tag != MASK and not (e.tag == USER and e.id == uid))
    named = [e.perm for e in kept if e.tag in (USER, GROUP, GROUP_OBJ)] + [perm]
    mask = 0
    for bits in named:
        mask |= bits
    return (*kept, AclEntry(USER, perm, uid), AclEntry(MASK, mask))


def without_user(entries: tuple[AclEntry, ...], uid: int) -> tuple[AclEntry, ...]:
    """The access ACL without uid's entry; () when only the mode bits are left (no xattr)."""
    kept = tuple(e for e in entries if not (e.tag == USER and e.id == uid))
    if not any(e.tag in (USER, GROUP) for e in kept):
        return ()
    return kept
