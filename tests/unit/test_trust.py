"""trust.py: whether root may trust what a path names (every component from / down,
symlinks followed only when root's), on a fake filesystem table and on this machine's own files."""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path
from typing import Any

import pytest

from perfgroup.engine import fstab, trust
from perfgroup.engine.acl import USER, Acl, AclEntry

DIR, FILE = stat.S_IFDIR, stat.S_IFREG

# path -> (type, uid, mode, symlink target); every path not listed is missing.
FAKE: dict[str, tuple[int, int, int, str]] = {
    "/": (DIR, 0, 0o755, ""),
    "/usr": (DIR, 0, 0o755, ""),
    "/usr/bin": (DIR, 0, 0o755, ""),
    "/usr/bin/perf": (FILE, 0, 0o755, ""),
    "/bin": (stat.S_IFLNK, 0, 0o777, "usr/bin"),
    "/tmp": (DIR, 0, 0o1777, ""),
    "/tmp/perf": (FILE, 0, 0o755, ""),
    "/opt": (DIR, 0, 0o755, ""),
    "/opt/groupw": (DIR, 0, 0o775, ""),
    "/opt/groupw/perf": (FILE, 0, 0o755, ""),
    "/opt/alice": (DIR, 1000, 0o755, ""),
    "/opt/alice/perf": (FILE, 0, 0o755, ""),
    "/opt/tools": (DIR, 0, 0o755, ""),
    "/opt/tools/user-perf": (FILE, 1000, 0o755, ""),
    "/opt/tools/ww-perf": (FILE, 0, 0o757, ""),
    "/opt/tools/gw-perf": (FILE, 0, 0o775, ""),
    "/opt/tools/acl-perf": (FILE, 0, 0o755, ""),
    "/opt/acldir": (DIR, 0, 0o755, ""),
    "/opt/acldir/perf": (FILE, 0, 0o755, ""),
    "/opt/rootlink": (stat.S_IFLNK, 0, 0o777, "/usr/bin"),
    "/opt/rellink": (stat.S_IFLNK, 0, 0o777, "../usr/bin/perf"),
    "/opt/userlink": (stat.S_IFLNK, 1000, 0o777, "/usr/bin"),
    "/opt/to-alice": (stat.S_IFLNK, 0, 0o777, "/opt/alice"),
    "/opt/loop": (stat.S_IFLNK, 0, 0o777, "/opt/loop"),
}
WRITE_ACL = {"/opt/tools/acl-perf", "/opt/acldir"}


class FakeOs:
    """The few os calls trust.path_problem makes, answered from FAKE; the rest is the real os."""

    path = os.path

    def __getattr__(self, name: str) -> Any:
        return getattr(os, name)

    @staticmethod
    def lstat(path: str) -> os.stat_result:
        if path not in FAKE:
            raise FileNotFoundError(errno.ENOENT, "No such file or directory", path)
        kind, uid, mode, _ = FAKE[path]
        return os.stat_result((kind | mode, 1, 1, 1, uid, 0, 0, 0, 0, 0))

    @staticmethod
    def readlink(path: str) -> str:
        return FAKE[path][3]


@pytest.fixture
def fake_fs(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(trust, "os", FakeOs())
    monkeypatch.setattr(trust, "read_acl", lambda path, kind: Acl(path, kind, (AclEntry(USER, 7, 1000),))
                        if path in WRITE_ACL and kind == "access" else None)


CASES: list[tuple[str, str, str, str | None]] = [
    ("root's all the way", "/usr/bin/perf", "file", None),
    ("a root directory", "/usr/bin", "dir", None),
    ("the root directory", "/", "dir", None),
    ("through root's relative symlink", "/bin/perf", "file", None),
    ("through root's absolute symlink", "/opt/rootlink/perf", "file", None),
    ("root's symlink with ..", "/opt/rellink", "file", None),
    ("dot and dot-dot", "/usr/./bin/../bin/perf", "file", None),
    ("a sticky world-writable directory", "/tmp/perf", "file", "/tmp is writable by group or others (mode 1777)"),
    ("a group-writable directory", "/opt/groupw/perf", "file", "/opt/groupw is writable by group or others"),
    ("a user's directory", "/opt/alice/perf", "file", "/opt/alice is owned by uid 1000"),
    ("a user's file", "/opt/tools/user-perf", "file", "/opt/tools/user-perf is owned by uid 1000"),
    ("a world-writable file", "/opt/tools/ww-perf", "file", "/opt/tools/ww-perf is writable by group or others"),
    ("a group-writable file", "/opt/tools/gw-perf", "file", "writable by group or others (mode 0775)"),
    ("a file a user may write by ACL", "/opt/tools/acl-perf", "file", "/opt/tools/acl-perf: an ACL lets user:"),
    ("a directory a user may write by ACL", "/opt/acldir/perf", "file", "/opt/acldir: an ACL lets user:"),
    ("a user's symlink", "/opt/userlink/perf", "file", "/opt/userlink is a symlink owned by uid 1000"),
    ("root's symlink into a user's directory", "/opt/to-alice/perf", "file", "/opt/alice is owned by uid 1000"),
    ("a symlink loop", "/opt/loop", "file", "too many levels of symbolic links"),
    ("missing", "/opt/missing/perf", "file", "/opt/missing: No such file or directory"),
    ("a directory asked as a file", "/usr/bin", "file", "/usr/bin is a directory"),
    ("a file asked as a directory", "/usr/bin/perf", "dir", "/usr/bin/perf is not a directory"),
    ("a file in the middle", "/usr/bin/perf/x", "file", "/usr/bin/perf is not a directory"),
    ("dot-dot to a directory asked as a file", "/usr/bin/..", "file", "/usr is a directory"),
    ("relative", "usr/bin/perf", "file", "not an absolute path"),
]


@pytest.mark.parametrize(("path", "kind", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_path_problem(fake_fs: None, path: str, kind: str, expected: str | None) -> None:
    problem = trust.path_problem(path, kind)
    if expected is None:
        assert problem is None
    else:
        assert problem is not None and expected in problem, problem


def test_path_problem_on_this_machine(tmp_path: Path) -> None:
    assert trust.path_problem("/usr", "dir") is None
    assert trust.path_problem(os.path.realpath("/bin/sh"), "file") is None
    mine = tmp_path / "perf"
    mine.write_bytes(b"\x7fELF")
    problem = trust.path_problem(str(mine), "file")
    # the first writable or non-root directory above it (/tmp, 1777, or a user's pytest base)
    assert problem is not None and str(mine).startswith(problem.split()[0]), problem


# -- the record's items: setup could have made it and it still looks that way --------------------

LINE = "tracefs /sys/kernel/tracing tracefs defaults 0 0"


@pytest.mark.parametrize(("entry", "trusted"), [
    (("/sys/kernel/tracing", 0o700, 0), True),
    (("/sys/kernel/debug/tracing", 0o755, 0), True),
    (("/sys/kernel/tracing", 0o777, 0), False),  # others could write: never put back
    (("/sys/kernel/tracing", 0o720, 0), False),
    (("/etc", 0o700, 0), False),  # not a tracefs mount point
    (("/sys/kernel/tracing", -1, 0), False),
    (("/sys/kernel/tracing", 0o700, -5), False),
    (("/sys/kernel/tracing", 0o755, 100), False),  # a group of the forger's would read it
    (("/sys/kernel/tracing", 0o705, 100), True),  # (the group has no bits: gid irrelevant)
])
def test_tracefs_before(entry: tuple[str, int, int], trusted: bool) -> None:
    assert trust.tracefs_before_trusted(entry) is trusted


@pytest.mark.parametrize(("edit", "gid", "trusted"), [
    ((LINE, fstab.edit_line(LINE, 995)), 995, True),
    ((LINE, fstab.edit_line(LINE, 996)), 995, False),  # another gid than the group's
    ((LINE, "/dev/evil / ext4 defaults 0 0"), 995, False),  # not setup's edit of the line
    (("proc /proc proc defaults 0 0", "proc /proc proc defaults 0 0"), 995, False),  # not a tracefs entry
    ((LINE, fstab.edit_line(LINE, 0)), 0, False),  # gid 0 is no group of ours
    # a "before" that would open tracefs to another group or everyone when remove puts it back
    (("tracefs /sys/kernel/tracing tracefs defaults,gid=100,mode=0750 0 0",
      fstab.edit_line("tracefs /sys/kernel/tracing tracefs defaults,gid=100,mode=0750 0 0", 995)), 995, False),
    (("tracefs /sys/kernel/tracing tracefs mode=0777 0 0",
      fstab.edit_line("tracefs /sys/kernel/tracing tracefs mode=0777 0 0", 995)), 995, False),
    (("tracefs /sys/kernel/tracing tracefs uid=1000 0 0",
      fstab.edit_line("tracefs /sys/kernel/tracing tracefs uid=1000 0 0", 995)), 995, False),
    (("tracefs /sys/kernel/tracing tracefs mode=0755 0 0",
      fstab.edit_line("tracefs /sys/kernel/tracing tracefs mode=0755 0 0", 995)), 995, True),
])
def test_fstab_edit(edit: tuple[str, str], gid: int, trusted: bool) -> None:
    assert trust.fstab_edit_trusted(edit, gid) is trusted


def test_sanitize_names_what_it_drops() -> None:
    from factsdata import state

    record = state()._replace(tracefs_before=(("/sys/kernel/tracing", 0o777, 0),), created_dirs=("/home/alice",),
                              fstab_edits=((LINE, "/dev/evil / ext4 defaults 0 0"),))
    clean, dropped = trust.sanitize(record)
    assert (clean.tracefs_before, clean.created_dirs, clean.fstab_edits) == ((), (), ())
    assert len(dropped) == 3 and all("not trusted" in line for line in dropped)


def test_sanitize_drops_dotdot_dirs_and_a_group_the_site_made_again() -> None:
    import grp

    from factsdata import state

    gid = grp.getgrnam("root").gr_gid
    record = state()._replace(created_dirs=("/usr/local/libexec/perfgroup/../../../../srv",), group="root",
                              gid=gid + 4242, group_created=True)
    clean, dropped = trust.sanitize(record)
    assert clean.created_dirs == () and not clean.group_created
    assert any("/srv" in line for line in dropped) and any("group root" in line for line in dropped)
    kept, _ = trust.sanitize(record._replace(gid=gid, created_dirs=()))
    assert kept.group_created
