"""access_rules.py over plain facts: ACL, group-holder, lingering-process, orphan and record findings, and the holders list."""

from __future__ import annotations

import pytest
from factsdata import DEST, acl, converged, replace, want, with_access

from perfgroup.engine import access_facts, access_rules
from perfgroup.engine.acl import GROUP, USER, AclEntry
from perfgroup.engine.facts import GroupFacts
from perfgroup.engine.findings import audit


def ids(facts: object) -> dict[str, str]:
    return {f.id: f.severity for f in audit(facts, want())}  # type: ignore[arg-type]


def test_a_password_in_etc_group_is_critical_and_named() -> None:
    facts = with_access(gshadow=("$6$salt$hash", (), ()), password_file="/etc/group")
    finding = next(f for f in audit(facts, want()) if f.id == "group.password")  # type: ignore[arg-type]
    assert finding.severity == "critical" and "password in /etc/group" in finding.message
    assert finding.fix.startswith("gpasswd -R perf_users")
    assert "group.password" not in ids(with_access(gshadow=("x", (), ()), password_file="/etc/group"))


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
    # carol is a member through gshadow alone (newgrp asks her no password) and `members list` does not show her
    assert found["group.gshadow_members"] == "critical"
    assert found["group.gshadow_admins"] == "critical" and found["group.primary_members"] == "warning"
    hidden = next(f for f in audit(facts, want()) if f.id == "group.gshadow_members")  # type: ignore[arg-type]
    assert hidden.message.startswith("carol ") and "newgrp" in hidden.message and "members list" in hidden.message
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


def test_acl_holes_after_apply() -> None:
    bob = AclEntry(USER, 5, 1001)
    facts = with_access(copy_acl=acl(DEST, "access", bob, mask=5),
                        dir_acls=(acl("/usr/local", "access", AclEntry(GROUP, 7, 50)),
                                  acl("/usr", "default", AclEntry(GROUP, 7, 50))))
    assert access_rules.acl_holes(facts) == ["/usr/local", DEST]  # type: ignore[arg-type]
    assert access_rules.acl_holes(converged()) == []


def holding(*rows: tuple[int, str, int]) -> tuple[access_facts.Holding, ...]:
    return tuple(access_facts.Holding(pid, user, uid) for pid, user, uid in rows)


# alice is in /etc/group, carol in gshadow only, erin has the group as primary gid: all members.
MEMBERS = {"gshadow": ("!", (), ("carol",)), "primary_members": ("erin",)}


@pytest.mark.parametrize(("rows", "reported"), [
    (((20, "bob", 1001),), [(20, "bob")]),  # `members remove bob` left his session holding the gid
    (((20, "bob", 1001), (21, "bob", 1001), (22, "alice", 1000)), [(20, "bob"), (21, "bob")]),
    (((22, "alice", 1000), (23, "carol", 1002), (24, "erin", 1003)), []),  # members
    (((25, "1234", 1234),), [(25, "1234")]),  # a uid without a passwd entry (a deleted user)
    # All four uids root's: root runs the copy (and anything else) without the group; once such a
    # process switches to a user, that uid is what the scan names.
    (((1, "root", 0),), []),
])
def test_processes_of_non_members_holding_the_gid_are_critical(rows: tuple[tuple[int, str, int], ...],
                                                              reported: list[tuple[int, str]]) -> None:
    facts = with_access(holding=holding(*rows), **MEMBERS)
    findings = [f for f in audit(facts, want()) if f.id == "process.holds_group"]  # type: ignore[arg-type]
    if not reported:
        assert findings == []
        return
    (finding,) = findings
    assert finding.severity == "critical"
    for pid, user in reported:
        assert f"pid {pid} ({user})" in finding.message
    assert "alice" not in finding.message and "gid 995" in finding.message
    assert finding.fix.startswith("kill " + " ".join(str(pid) for pid, _ in reported) + "  #")


def test_a_missing_group_has_no_holders_to_judge() -> None:
    facts = replace(with_access(holding=holding((20, "bob", 1001))), group=GroupFacts("perf_users", None))  # type: ignore[arg-type]
    assert "process.holds_group" not in ids(facts)


def test_remaining_notes_name_the_sessions_that_still_hold_the_gid() -> None:
    scan = access_facts.ProcessScan(
        lingering=(access_facts.Lingering(30, "bob", ("cap_perfmon",)),),
        holding=holding((20, "alice", 1000), (21, "bob", 1001), (1, "root", 0)))
    # `members remove alice`: alice's sessions only
    assert access_rules.remaining_notes(scan, {"alice"}, 995, {"alice"}) == [
        "still holding gid 995 (end them or the user's session to take the access away): pid 20 (alice)"]
    # `remove` deleting the group: anyone's but root's, and every capability holder
    notes = access_rules.remaining_notes(scan, None, 995, None)
    assert notes[0].endswith("pid 30 (bob: cap_perfmon)") and notes[1].endswith("pid 20 (alice); pid 21 (bob)")
    # `remove` keeping an adopted group and its members: no gid to name
    assert access_rules.remaining_notes(scan, None, None, set()) == [notes[0]]
