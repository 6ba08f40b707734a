"""access_plan.py over plain facts: the repairs and refusals for what the mode bits do not show."""

from __future__ import annotations

import pytest
from factsdata import DEST, acl, converged, desired, fresh, replace, state, want, with_access

from perfgroup.engine import plan, trust
from perfgroup.engine import remove as remove_mod
from perfgroup.engine.access_facts import AccessFacts, Holding
from perfgroup.engine.acl import GROUP, USER, AclEntry
from perfgroup.engine.actions import CreateGroup
from perfgroup.engine.errors import RefusedError


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


def fresh_with(**access: object) -> object:
    return replace(fresh(), access=AccessFacts(**access))  # type: ignore[arg-type]


def created_gid(facts: object, **want_changes: object) -> int | None:
    actions = plan.make(facts, desired(**want_changes)).actions  # type: ignore[arg-type]
    (group,) = [a for a in actions if isinstance(a, CreateGroup)]
    return group.gid


@pytest.mark.parametrize(("access", "gid"), [
    ({}, 999),  # as groupadd --system: the highest free system gid
    ({"used_gids": (999, 998, 5)}, 997),  # in the group database or a user's primary gid
    ({"used_gids": (999,), "held_gids": (998, 997)}, 996),  # a process still holds 998 and 997 (an old group's)
    ({"sys_gids": (200, 300), "held_gids": (300,)}, 299),  # SYS_GID_MIN/SYS_GID_MAX of /etc/login.defs
])
def test_setup_picks_a_system_gid_nothing_uses_or_holds(access: dict[str, object], gid: int) -> None:
    assert created_gid(fresh_with(**access)) == gid


def test_an_explicit_gid_is_kept() -> None:
    assert created_gid(fresh_with(held_gids=(5,)), gid=5000) == 5000


def test_no_free_system_gid_is_refused() -> None:
    with pytest.raises(RefusedError, match="no free system gid between 200 and 201"):
        plan.make(fresh_with(sys_gids=(200, 201), used_gids=(201,), held_gids=(200,)), desired())  # type: ignore[arg-type]


def test_an_explicit_gid_that_processes_still_hold_is_refused() -> None:
    facts = fresh_with(held_gids=(0, 5000), holding=(Holding(4242, "alice", 1000), Holding(4243, "root", 0)))
    with pytest.raises(RefusedError, match=r"--gid 5000 is still held by running processes: pid 4242 \(alice\); "
                                           r"pid 4243 \(root\)") as refused:
        plan.make(facts, desired(gid=5000))  # type: ignore[arg-type]
    assert "\n" not in str(refused.value)
