from __future__ import annotations

import pytest
from factsdata import caps, converged, desired, dirs, replace, with_copy

from perfgroup.engine.errors import RefusedError
from perfgroup.engine.facts import GroupFacts, NodeFacts, PathFacts, SourceFacts, TextFacts
from perfgroup.engine.plan import make


def kinds(facts: NodeFacts, **want: object) -> list[str]:
    return [a.kind for a in make(facts, desired(**want)).actions]


def fresh() -> NodeFacts:
    return replace(
        with_copy(converged(), kind="missing"), group=GroupFacts("perf_users", None), state=None, state_error="missing",
        dirs=tuple(d if d.path in ("/usr/local", "/usr", "/") else PathFacts(d.path, "missing") for d in dirs()),
        profile=TextFacts("p", None), sysctl_dropin=TextFacts("s", None), persisted_paranoid=None,
    )


def test_converged_node_needs_nothing() -> None:
    assert kinds(converged()) == []


def test_fresh_node_plan_in_safe_order() -> None:
    assert kinds(fresh(), members=("alice",)) == [
        "create_group", "create_dir", "create_dir", "create_dir", "install_copy", "write_file", "write_file",
        "add_member", "write_state",
    ]


@pytest.mark.parametrize(("facts", "expected"), [
    (with_copy(converged(), mode=0o751), ["fix_copy"]),
    (with_copy(converged(), caps=caps("cap_perfmon", "cap_sys_admin")), ["fix_copy"]),
    (with_copy(converged(), gid=0), ["fix_copy"]),
    (with_copy(converged(), nlink=2), ["install_copy"]),
    (with_copy(converged(), uid=1000), ["install_copy"]),
    (with_copy(converged(), sha256="6" * 64), ["install_copy"]),
    (replace(converged(), paranoid=1), ["set_paranoid"]),
    (replace(converged(), sysctl_dropin=TextFacts("s", "kernel.perf_event_paranoid = 0\n")), ["write_file"]),
    (replace(converged(), dirs=dirs(**{
        "/usr/local/libexec/perfgroup": PathFacts("/usr/local/libexec/perfgroup", "dir", 0, 0, 0o777, 2)})), ["repair_dir"]),
])
def test_repairs(facts: NodeFacts, expected: list[str]) -> None:
    assert kinds(facts) == expected


def test_paranoid_above_two_is_kept_not_lowered() -> None:
    facts = replace(fresh(), paranoid=3)
    plan = make(facts, desired())
    dropin = next(a for a in plan.actions if a.target.startswith("/etc/sysctl.d"))
    assert "= 3" in str(dropin.params["content"])
    assert "set_paranoid" not in [a.kind for a in plan.actions]


REFUSALS = [
    ("nosuid", replace(fresh(), nosuid=True), {}, "nosuid"),
    ("world-writable parent", replace(fresh(), dirs=(PathFacts("/tmp", "dir", 0, 0, 0o1777, 2), PathFacts("/", "dir", 0, 0, 0o755, 2))),
     {"dest": "/tmp/perf"}, "non-root user can write"),
    ("home", replace(fresh(), dirs=(PathFacts("/home/alice", "dir", 1000, 1000, 0o755, 2),
                                                PathFacts("/home", "dir", 0, 0, 0o755, 2), PathFacts("/", "dir", 0, 0, 0o755, 2))),
     {"dest": "/home/alice/perf"}, "non-root user can write"),
    ("symlink in path", replace(fresh(), dirs=(PathFacts("/opt/link", "symlink", 0, 0, 0o777, 1), PathFacts("/opt", "dir", 0, 0, 0o755, 2), PathFacts("/", "dir", 0, 0, 0o755, 2))),
     {"dest": "/opt/link/perf"}, "symlink"),
    ("packaged perf", fresh(), {"dest": "/usr/bin/perf"}, "packaged perf"),
    ("packaged perf by another name", replace(fresh(), dest_realpath="/usr/lib/linux-tools/6.8/perf",
                                              packaged_realpaths=("/usr/lib/linux-tools/6.8/perf",)),
     {}, "packaged perf"),
    ("foreign existing file", replace(with_copy(fresh(), kind="file"), dirs=(PathFacts("/opt/tools", "dir", 0, 0, 0o755, 2), PathFacts("/opt", "dir", 0, 0, 0o755, 2), PathFacts("/", "dir", 0, 0, 0o755, 2))),
     {"dest": "/opt/tools/perf"}, "did not create"),
    ("gid taken", replace(fresh(), gid_owner="video"), {"gid": 44}, "already belongs to group video"),
    ("gid differs", converged(), {"gid": 4000}, "will not renumber"),
    ("unknown member", converged(), {"members": ("ghost",)}, "no such user"),
    ("directory group member", replace(converged(), group=GroupFacts("perf_users", 5000, (), local=False), state=None, state_error="missing"),
     {"members": ("bob",)}, "managed by the directory"),
    ("no perf", replace(fresh(), source=SourceFacts(error="no perf executable found (install it: apt-get install -y linux-perf)")), {}, "linux-perf"),
    ("privileged group", fresh(), {"group": "wheel"}, "system powers"),
]


@pytest.mark.parametrize(("facts", "want", "message"), [r[1:] for r in REFUSALS], ids=[r[0] for r in REFUSALS])
def test_refusals(facts: NodeFacts, want: dict[str, object], message: str) -> None:
    with pytest.raises(RefusedError, match=message):
        make(facts, desired(**want))


def test_directory_group_is_adopted_without_local_copy() -> None:
    facts = replace(converged(), group=GroupFacts("perf_users", 5000, ("alice",), local=False),
                                state=None, state_error="missing")
    facts = with_copy(facts, gid=5000)
    plan = make(facts, desired(members=("alice",)))
    assert plan.group_origin == "directory"
    assert "create_group" not in [a.kind for a in plan.actions]
    assert any("directory" in note for note in plan.notes)
