"""access.py over plain facts: ACL decoding and judging, gshadow, /proc status, holders, the
findings and the plan for what the mode bits do not show."""

from __future__ import annotations

import struct

import pytest
from factsdata import DEST, converged, state

from perfgroup.engine import access_facts, access_rules, plan, trust
from perfgroup.engine import remove as remove_mod
from perfgroup.engine.access_facts import GROUP, GROUP_OBJ, MASK, OTHER, USER, USER_OBJ, AccessFacts, Acl, AclEntry
from perfgroup.engine.desired import Desired
from perfgroup.engine.errors import RefusedError
from perfgroup.engine.findings import audit
from perfgroup.engine.paths import default_dest


def want() -> Desired:
    return Desired(group="perf_users", dest=default_dest("perf_users"))


def acl(path: str, kind: str, *named: AclEntry, mask: int = 7) -> Acl:
    return Acl(path, kind, (AclEntry(USER_OBJ, 7), *named, AclEntry(GROUP_OBJ, 5), AclEntry(MASK, mask),
                            AclEntry(OTHER, 0)))


def ids(facts: object) -> dict[str, str]:
    return {f.id: f.severity for f in audit(facts, want())}  # type: ignore[arg-type]


def with_access(**changes: object) -> object:
    return converged(access=AccessFacts(**changes))  # type: ignore[arg-type]


def test_decode_matches_the_kernel_format() -> None:
    # setfacl -m u:1001:rx on a 0750 file, as getfattr -e hex shows it
    raw = struct.pack("<I", 2) + b"".join(struct.pack("<HHI", *e) for e in (
        (USER_OBJ, 7, 0xFFFFFFFF), (USER, 5, 1001), (GROUP_OBJ, 5, 0xFFFFFFFF), (MASK, 5, 0xFFFFFFFF),
        (OTHER, 0, 0xFFFFFFFF)))
    entries = access_facts.decode_acl(raw)
    assert entries[1] == AclEntry(USER, 5, 1001) and entries[0].id is None
    assert encode_acl(entries) == raw
    for bad in (b"", struct.pack("<I", 1), raw[:-1]):
        with pytest.raises(ValueError):
            access_facts.decode_acl(bad)


def test_named_entries_are_limited_by_the_mask() -> None:
    entry = AclEntry(USER, 7, 1001)
    assert acl("/x", "access", entry).grants(access_facts.W) == (entry,)
    assert acl("/x", "access", entry, mask=5).grants(access_facts.W) == ()
    assert acl("/x", "access", entry, mask=5).grants(access_facts.X) == (entry,)
    assert acl("/x", "access", AclEntry(USER, 7, 0)).grants(access_facts.W) == ()  # root may anyway
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


def test_a_password_in_etc_group_is_critical_and_named() -> None:
    facts = with_access(gshadow=("$6$salt$hash", (), ()), password_file="/etc/group")
    finding = next(f for f in audit(facts, want()) if f.id == "group.password")  # type: ignore[arg-type]
    assert finding.severity == "critical" and "password in /etc/group" in finding.message
    assert finding.fix.startswith("gpasswd -R perf_users")
    assert "group.password" not in ids(with_access(gshadow=("x", (), ()), password_file="/etc/group"))


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


def test_acl_findings_and_severities() -> None:
    bob = AclEntry(USER, 5, 1001)
    copy_open = with_access(copy_acl=acl(DEST, "access", bob, mask=5))
    assert ids(copy_open)["copy.acl"] == "critical"
    copy_masked = with_access(copy_acl=acl(DEST, "access", bob, mask=0))
    assert ids(copy_masked)["copy.acl"] == "warning"
    writable = with_access(dir_acls=(acl("/usr/local", "access", AclEntry(GROUP, 7, 50)),))
    assert ids(writable)["path.acl"] == "critical"
    assert "path.acl_other" not in ids(writable)  # reported once, at the higher severity
    readable = with_access(dir_acls=(acl("/usr/local", "access", AclEntry(GROUP, 5, 50)),))
    assert "path.acl" not in ids(readable) and ids(readable)["path.acl_other"] == "warning"
    root_writes = with_access(dir_acls=(acl("/usr/local", "access", AclEntry(USER, 7, 0)),))
    assert "path.acl" not in ids(root_writes) and ids(root_writes)["path.acl_other"] == "warning"
    managed_default = with_access(dir_acls=(acl("/usr/local/libexec/perfgroup", "default", AclEntry(GROUP, 7, 50)),))
    assert ids(managed_default)["path.acl_default"] == "warning"
    assert "path.acl_other" not in ids(managed_default)
    # The issue's `setfacl -d -m g:swadm:rwx /usr/local`: setup strips what it creates below, so not
    # a way in today, but reported (warning) naming the directory and the entries.
    foreign_default = with_access(dir_acls=(acl("/usr/local", "default", AclEntry(GROUP, 7, 50)),))
    assert "path.acl_default" not in ids(foreign_default) and ids(foreign_default)["path.acl_other"] == "warning"
    finding = next(f for f in audit(foreign_default, want()) if f.id == "path.acl_other")  # type: ignore[arg-type]
    assert "/usr/local " in finding.message and "default ACL" in finding.message and "group:" in finding.message
    assert finding.fix.startswith("setfacl -k /usr/local")
    mask_only = with_access(dir_acls=(acl("/usr", "access", mask=5),))
    assert ids(mask_only)["path.acl_other"] == "warning"


def test_group_holder_findings_and_the_holders_list() -> None:
    facts = with_access(gshadow=("secret", ("dave",), ("alice", "carol")), primary_members=("erin",),
                        same_gid_names=("perf_twin",), same_gid_members=("bob",))
    found = ids(facts)
    assert found["group.password"] == "critical" and found["group.duplicate_gid"] == "critical"
    assert found["group.gshadow_members"] == found["group.gshadow_admins"] == found["group.primary_members"] == "warning"
    assert access_rules.holders(facts) == [  # type: ignore[arg-type]
        {"user": "alice", "via": "member"}, {"user": "carol", "via": "gshadow_member"},
        {"user": "dave", "via": "gshadow_admin"}, {"user": "erin", "via": "primary_gid"},
        {"user": "bob", "via": "same_gid_group"},
    ]
    quiet = ids(with_access(gshadow=("!", (), ("alice",))))
    assert not {"group.password", "group.gshadow_members", "group.gshadow_admins"} & set(quiet)
    assert not {"group.password"} & set(ids(with_access(gshadow=None)))  # not root: unreadable, not judged


def test_lingering_processes_of_non_members_only() -> None:
    kept = (access_facts.Lingering(10, "alice", ("cap_perfmon",)), access_facts.Lingering(11, "bob", ("cap_perfmon",)))
    finding = next(f for f in audit(with_access(lingering=kept), want()) if f.id == "process.lingering")  # type: ignore[arg-type]
    assert finding.severity == "warning" and "pid 11 (bob" in finding.message and "alice" not in finding.message
    assert "process.lingering" not in ids(with_access(lingering=kept[:1]))


def test_orphans_and_unsafe_state_are_critical() -> None:
    assert ids(with_access(orphans=("/usr/local/libexec/perfgroup/old/perf",)))["copy.orphan"] == "critical"
    assert ids(with_access(state_dir=(0, 0o757, "dir")))["state.unsafe"] == "critical"
    assert ids(with_access(state_file=(1000, 0o644, "file")))["state.unsafe"] == "critical"
    assert "state.unsafe" not in ids(with_access(state_dir=(0, 0o755, "dir"), state_file=(0, 0o644, "file")))


def kinds(facts: object) -> list[tuple[str, str]]:
    return [(a.kind, a.target) for a in plan.make(facts, want()).actions]  # type: ignore[arg-type]


def test_plan_repairs_acls_password_state_and_deletes_orphans() -> None:
    bob = AclEntry(USER, 5, 1001)
    facts = with_access(
        copy_acl=acl(DEST, "access", bob, mask=5), gshadow=("secret", (), ()), state_dir=(0, 0o777, "dir"),
        dir_acls=(acl("/usr/local/libexec/perfgroup", "access", bob), acl("/usr/local/libexec/perfgroup", "default", bob)),
        orphans=("/usr/local/libexec/perfgroup/old/perf",),
    )
    assert kinds(facts) == [
        ("secure_path", "/var/lib/perfgroup"), ("lock_group_password", "perf_users"),
        ("repair_dir", "/usr/local/libexec/perfgroup"), ("fix_copy", DEST),
        ("delete_copy", "/usr/local/libexec/perfgroup/old/perf"),
    ]
    secure = plan.make(facts, want()).actions[0]  # type: ignore[arg-type]
    assert secure.mode == 0o755  # type: ignore[attr-defined]
    assert kinds(converged()) == []
    in_group = with_access(gshadow=("$6$salt$hash", (), ()), password_file="/etc/group")
    assert kinds(in_group) == [("lock_group_password", "perf_users")]  # gpasswd -R: "!" in gshadow, "x" in group
    assert kinds(with_access(gshadow=("x", (), ()), password_file="/etc/group")) == []


@pytest.mark.parametrize(("changes", "words"), [
    ({"same_gid_names": ("perf_twin",)}, "shares gid"),
    ({"state_file": (1000, 0o644, "file")}, "cannot be trusted"),
    ({"state_dir": (0, 0o755, "file")}, "cannot be trusted"),
    ({"dir_acls": (acl("/usr/local", "access", AclEntry(GROUP, 7, 50)),)}, "whose ACL lets"),
])
def test_plan_refusals(changes: dict[str, object], words: str) -> None:
    with pytest.raises(RefusedError, match=words):
        plan.make(with_access(**changes), want())  # type: ignore[arg-type]


def test_remove_never_deletes_the_packaged_perf_a_record_names() -> None:
    facts = remove_mod.RemoveFacts("perf_users", state(copies=("/usr/bin/perf", DEST)),
                                   None, copies=(("/usr/bin/perf", trust.setup_made("/usr/bin/perf", state())),
                                                 (DEST, True)))
    targets = [a.target for a in remove_mod.plan(facts) if a.kind == "delete_copy"]
    assert targets == [DEST]
    unsafe = facts._replace(state_unsafe="/var/lib/perfgroup/perf_users.json is owned by uid 1000")
    with pytest.raises(RefusedError, match="cannot be trusted"):
        remove_mod.plan(unsafe)



def test_acl_holes_after_apply() -> None:
    bob = AclEntry(USER, 5, 1001)
    facts = with_access(copy_acl=acl(DEST, "access", bob, mask=5),
                        dir_acls=(acl("/usr/local", "access", AclEntry(GROUP, 7, 50)),
                                  acl("/usr", "default", AclEntry(GROUP, 7, 50))))
    assert access_rules.acl_holes(facts) == ["/usr/local", DEST]  # type: ignore[arg-type]
    assert access_rules.acl_holes(converged()) == []


def encode_acl(entries: tuple[AclEntry, ...]) -> bytes:
    """The inverse of access_facts.decode_acl (the kernel's posix_acl xattr layout)."""
    data = struct.pack("<I", access_facts.ACL_VERSION)
    for entry in entries:
        data += struct.pack("<HHI", entry.tag, entry.perm, 0xFFFFFFFF if entry.id is None else entry.id)
    return data
