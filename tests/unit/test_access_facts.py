"""access.py over plain facts: ACL decoding and judging, gshadow, /proc status, holders, the
findings and the plan for what the mode bits do not show."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest
from factsdata import acl

from perfgroup.engine import access_facts
from perfgroup.engine import acl as acl_mod
from perfgroup.engine.acl import GROUP_OBJ, MASK, OTHER, USER, USER_OBJ, AclEntry


def test_decode_matches_the_kernel_format() -> None:
    # setfacl -m u:1001:rx on a 0750 file, as getfattr -e hex shows it
    raw = struct.pack("<I", 2) + b"".join(struct.pack("<HHI", *e) for e in (
        (USER_OBJ, 7, 0xFFFFFFFF), (USER, 5, 1001), (GROUP_OBJ, 5, 0xFFFFFFFF), (MASK, 5, 0xFFFFFFFF),
        (OTHER, 0, 0xFFFFFFFF)))
    entries = acl_mod.decode_acl(raw)
    assert entries[1] == AclEntry(USER, 5, 1001) and entries[0].id is None
    assert encode_acl(entries) == raw
    for bad in (b"", struct.pack("<I", 1), raw[:-1]):
        with pytest.raises(ValueError):
            acl_mod.decode_acl(bad)


def test_named_entries_are_limited_by_the_mask() -> None:
    entry = AclEntry(USER, 7, 1001)
    assert acl("/x", "access", entry).grants(acl_mod.W) == (entry,)
    assert acl("/x", "access", entry, mask=5).grants(acl_mod.W) == ()
    assert acl("/x", "access", entry, mask=5).grants(acl_mod.X) == (entry,)
    assert acl("/x", "access", AclEntry(USER, 7, 0)).grants(acl_mod.W) == ()  # root may anyway
    assert acl("/x", "access").named() == ()


@pytest.mark.parametrize(("password", "usable"), [
    ("", False), ("!", False), ("*", False), ("!$6$abc", False), ("$6$salt$hash", True), ("plain", True),
    ("x", False),  # /etc/group's placeholder: no crypt result is "x"
    ("ab01FAX.bQRSU", True),  # a DES hash (13 characters)
])
def test_group_password(password: str, usable: bool) -> None:
    assert access_facts.password_set(password) is usable


class FakeGroup:
    gr_passwd = "$6$salt$hash"


@pytest.mark.parametrize(("gshadow", "in_group", "found"), [
    # newgrp/sg: the gshadow line wins, even when /etc/group's field holds a hash
    ("perf_users:!::alice\n", "$6$salt$hash", (("!", (), ("alice",)), "/etc/gshadow")),
    # no gshadow line: field 2 of /etc/group is the password
    ("other:!::\n", "$6$salt$hash", (("$6$salt$hash", (), ()), "/etc/group")),
    ("other:!::\n", "x", (("x", (), ()), "/etc/group")),
    ("", "$6$salt$hash", (("$6$salt$hash", (), ()), "/etc/group")),  # no /etc/gshadow at all
    (None, "$6$salt$hash", (None, "/etc/gshadow")),  # gshadow not readable (not root): not judged
])
def test_where_the_group_password_comes_from(monkeypatch: pytest.MonkeyPatch, gshadow: str | None, in_group: str,
                                             found: object) -> None:
    monkeypatch.setattr(FakeGroup, "gr_passwd", in_group)
    monkeypatch.setattr(access_facts.grp, "getgrnam", lambda name: FakeGroup())
    assert access_facts.group_password(gshadow, "perf_users") == found


def test_parse_gshadow() -> None:
    text = "root:*::\nperf_users:!:dave:alice,carol\nother:x::\n"
    assert access_facts.parse_gshadow(text, "perf_users") == ("!", ("dave",), ("alice", "carol"))
    assert access_facts.parse_gshadow(text, "missing") is None
    # shadow-utils splits lines on newlines only: a CR is part of a name, not the start of a line.
    assert access_facts.parse_gshadow("perf_users:!::alice,\rcarol\n", "perf_users") == ("!", (), ("alice", "\rcarol"))
    assert access_facts.parse_gshadow("x:!::a\rperf_users:pw::\n", "perf_users") is None


def test_parse_status_and_cap_names() -> None:
    text = "Name:\tsleep\nUid:\t1002\t1002\t1002\t1002\nCapInh:\t0\nCapPrm:\t0000004000000000\n" \
           "CapEff:\t0000000000000000\nCapAmb:\t0000000400000000\n"
    uid, mask = access_facts.parse_status(text)
    assert uid == 1002
    assert access_facts.cap_names(mask) == {"cap_perfmon", "cap_syslog"}
    assert access_facts.parse_status(text.encode()) == (uid, mask)  # the scan reads bytes
    assert access_facts.parse_status(text.rstrip("\n")) == (uid, mask)  # last line unterminated
    assert access_facts.parse_status("Name:\tkthreadd\nUid:\t0\t0\t0\t0\nCapEff:\t000001ffffffffff\n")[0] == 0
    assert access_facts.parse_status("Name:\tx\n") == (None, 0)


def encode_acl(entries: tuple[AclEntry, ...]) -> bytes:
    """The inverse of acl_mod.decode_acl (the kernel's posix_acl xattr layout)."""
    data = struct.pack("<I", acl_mod.ACL_VERSION)
    for entry in entries:
        data += struct.pack("<HHI", entry.tag, entry.perm, 0xFFFFFFFF if entry.id is None else entry.id)
    return data


STATUS = ("Name:\tsleep\nState:\tS (sleeping)\nUid:\t1002\t1003\t1004\t1005\nGid:\t1002\t1002\t995\t1002\n"
          "FDSize:\t64\nGroups:\t100 995 2000 \nCapEff:\t0000000000000000\n")


@pytest.mark.parametrize(("text", "expected"), [
    # real, effective, saved, fs uid; the Gid: line's four gids and the Groups: line, sorted, once each
    (STATUS, ((1002, 1003, 1004, 1005), (100, 995, 1002, 2000), False)),
    (STATUS.encode(), ((1002, 1003, 1004, 1005), (100, 995, 1002, 2000), False)),  # the scan reads bytes
    (STATUS.replace("Groups:\t100 995 2000 \n", "Groups:\t\n"), ((1002, 1003, 1004, 1005), (995, 1002), False)),
    (STATUS.replace("Groups:\t100 995 2000 \n", ""), ((1002, 1003, 1004, 1005), (995, 1002), False)),
    ("Name:\tx\nGid:\t0\t0\t0\t0\nGroups:\t7 995", ((), (0, 7, 995), False)),  # last line unterminated
    (STATUS.replace("S (sleeping)", "Z (zombie)"), ((1002, 1003, 1004, 1005), (100, 995, 1002, 2000), True)),
    ("Name:\tx\n", ((), (), False)),
])
def test_parse_ids(text: str | bytes, expected: tuple[tuple[int, ...], tuple[int, ...], bool]) -> None:
    assert access_facts.parse_ids(text) == expected


def fake_proc(tmp_path: Path, processes: dict[int, str]) -> str:
    for pid, status in processes.items():
        (tmp_path / str(pid)).mkdir()
        (tmp_path / str(pid) / "status").write_text(status)
        (tmp_path / str(pid) / "root").symlink_to("/")  # a process of this system
    (tmp_path / "self").mkdir()
    return str(tmp_path)


def status(uids: str, gids: str, groups: str = "", state: str = "S (sleeping)") -> str:
    return f"Name:\tsleep\nState:\t{state}\nUid:\t{uids}\nGid:\t{gids}\nGroups:\t{groups}\nCapEff:\t0\n"


def test_scan_finds_every_process_holding_the_gid(tmp_path: Path) -> None:
    proc = fake_proc(tmp_path, {
        10: status("0 0 0 0", "0 0 0 0", "995 "),  # root's: listed (uid 0), the rules decide
        11: status("65534 65534 65534 65534", "65534 65534 65534 65534", "100 995 "),  # supplementary
        12: status("65534 65534 65534 65534", "995 995 995 995"),  # real/effective gid (`sg`, `newgrp`)
        13: status("65534 65534 65534 65534", "100 100 995 100"),  # saved gid only
        14: status("65534 65534 65534 65534", "100 100 100 100", "100 "),  # not holding
        15: status("65534 65534 65534 65534", "995 995 995 995", "", "Z (zombie)"),  # exited: runs nothing
        16: status("0 65534 0 0", "100 100 100 100", "995 "),  # root's real uid, nobody's effective one
    })
    scan = access_facts.scan_processes(proc, gid=995)
    assert [(h.pid, h.uid) for h in scan.holding] == [(10, 0), (11, 65534), (12, 65534), (13, 65534), (16, 65534)]
    assert scan.holding[1].user == "nobody"
    assert scan.held_gids == ()  # only asked for when choosing a gid
    every = access_facts.scan_processes(proc, all_gids=True)
    assert every.held_gids == (0, 100, 995, 65534) and every.holding == ()


@pytest.mark.parametrize(("text", "expected"), [
    (None, (100, 999)),  # no /etc/login.defs: shadow-utils' defaults
    ("", (100, 999)),
    ("#SYS_GID_MIN\t\t  100\n#SYS_GID_MAX\t\t  999\nGID_MIN\t\t\t 1000\n", (100, 999)),  # Debian's
    ("SYS_GID_MIN 201\nSYS_GID_MAX 499\n", (201, 499)),
    ("GID_MIN 5000\n", (100, 4999)),  # SYS_GID_MAX defaults to GID_MIN - 1
    ("SYS_GID_MIN abc\nSYS_GID_MAX many\n", (100, 999)),  # not numbers: the defaults
    ("  SYS_GID_MAX\t  800\n", (100, 800)),
])
def test_system_gid_range_from_login_defs(text: str | None, expected: tuple[int, int]) -> None:
    assert access_facts.parse_login_defs(text) == expected


def test_a_zombie_leader_with_live_threads_still_holds_its_gid() -> None:
    """pthread_exit in main leaves State Z while other threads run (and may execve the copy)."""
    base = "Name:\tx\nState:\tZ (zombie)\nUid:\t1000\t1000\t1000\t1000\nGid:\t1000\t1000\t1000\t1000\nGroups:\t995\n"
    assert access_facts.parse_ids(base + "Threads:\t2\n")[2] is False
    assert access_facts.parse_ids(base + "Threads:\t1\n")[2] is True
