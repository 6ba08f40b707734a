"""access.py over plain facts: ACL decoding and judging, gshadow, /proc status, holders, the
findings and the plan for what the mode bits do not show."""

from __future__ import annotations

import struct

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
