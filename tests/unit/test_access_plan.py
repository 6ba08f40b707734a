"""access_plan.py over plain facts: the repairs and refusals for what the mode bits do not show."""

from __future__ import annotations

import pytest
from factsdata import DEST, acl, converged, state, want, with_access

from perfgroup.engine import plan, trust
from perfgroup.engine import remove as remove_mod
from perfgroup.engine.acl import GROUP, USER, AclEntry
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
