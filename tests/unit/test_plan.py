from __future__ import annotations

import pytest
from factsdata import CAPS, caps, converged, desired, dirs, fresh, replace, want, with_copy

from perfgroup.engine import facts as facts_mod
from perfgroup.engine.errors import RefusedError
from perfgroup.engine.facts import GroupFacts, NodeFacts, PathFacts, SourceFacts, TextFacts
from perfgroup.engine.plan import machine_wide, make


def kinds(facts: NodeFacts, **want: object) -> list[str]:
    return [a.kind for a in make(facts, desired(**want)).actions]


def test_converged_node_needs_nothing() -> None:
    assert kinds(converged()) == []


def test_fresh_node_plan_in_safe_order() -> None:
    assert kinds(fresh(), members=("alice",)) == [
        "create_group", "create_dir", "create_dir", "create_dir", "install_copy", "write_file", "write_file",
        "add_member",
    ]
    plan = make(fresh(), desired())
    assert plan.record_missing and any("will be written" in note for note in plan.notes)
    created = [a.target for a in plan.actions if a.kind == "create_dir"]
    assert created == sorted(created, key=len)  # outermost first


@pytest.mark.parametrize(("facts", "expected"), [
    (with_copy(converged(), mode=0o751), ["fix_copy"]),
    (with_copy(converged(), caps=caps(*CAPS, "cap_sys_admin")), ["fix_copy"]),
    (with_copy(converged(), caps=caps("cap_perfmon")), ["fix_copy"]),
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


def test_paranoid_3_that_blocks_the_group_is_lowered_to_2_and_the_plan_says_why() -> None:
    plan = make(replace(fresh(), paranoid=3, perf_restrict_config=True), desired())
    paranoid = [a for a in plan.actions if a.kind == "set_paranoid"]
    assert [(a.was, a.value) for a in paranoid] == [(3, 2)]  # type: ignore[attr-defined]
    assert any("3 -> 2" in note and "their own processes" in note for note in plan.notes)


def test_paranoid_3_with_an_unreadable_kernel_config_is_lowered_to_2_too() -> None:
    plan = make(replace(fresh(), paranoid=3, perf_restrict_config=None), desired())
    assert [(a.was, a.value) for a in plan.actions if a.kind == "set_paranoid"] == [(3, 2)]  # type: ignore[attr-defined]


@pytest.mark.parametrize(("boot", "proc", "paranoid", "expected"), [
    ("CONFIG_SECURITY_PERF_EVENTS_RESTRICT=y\n", None, 3, True),
    ("# CONFIG_SECURITY_PERF_EVENTS_RESTRICT is not set\n", None, 3, False),
    (None, "CONFIG_SECURITY_PERF_EVENTS_RESTRICT=y\n", 3, True),  # /proc/config.gz when /boot has none
    (None, None, 3, None),  # unreadable: neither
    ("CONFIG_SECURITY_PERF_EVENTS_RESTRICT=y\n", None, 2, None),  # only asked at 3 and above
])
def test_kernel_config_decides_whether_paranoid_3_blocks(monkeypatch: pytest.MonkeyPatch, boot: str | None,
                                                        proc: str | None, paranoid: int, expected: bool | None) -> None:
    read: list[str] = []
    monkeypatch.setattr(facts_mod, "read_text", lambda path, limit=0: read.append(path) or boot)
    monkeypatch.setattr(facts_mod, "_proc_config", lambda: proc)
    assert facts_mod.perf_restrict_config("6.1.0-x-cloud-amd64", paranoid) is expected
    assert read == (["/boot/config-6.1.0-x-cloud-amd64"] if paranoid >= 3 else [])


def test_paranoid_3_on_a_mainline_kernel_is_left_alone() -> None:
    plan = make(replace(fresh(), paranoid=3, perf_restrict_config=False), desired())
    assert "set_paranoid" not in [a.kind for a in plan.actions]


@pytest.mark.parametrize(("config", "reason"), [
    (True, "this kernel blocks perf for everyone"),
    (None, "this kernel may block (kernel config unreadable) perf"),  # no /boot/config-*, no /proc/config.gz
])
def test_keep_paranoid_where_it_blocks_the_group_is_refused(config: bool | None, reason: str) -> None:
    with pytest.raises(RefusedError, match="drop --keep-paranoid") as refused:
        make(replace(fresh(), paranoid=3, perf_restrict_config=config), desired(keep_paranoid=True))
    assert reason in str(refused.value)
    with pytest.raises(RefusedError, match="drop --keep-paranoid"):
        make(replace(fresh(), paranoid=4), desired(keep_paranoid=True))


def test_old_kernel_refuses_without_the_opt_in_and_names_the_alternatives() -> None:
    with pytest.raises(RefusedError, match=r"per-job access.*--allow-root-equivalent"):
        make(replace(fresh(), cap_last_cap=37), desired())
    plan = make(replace(fresh(), cap_last_cap=37), desired(allow_root_equivalent=True))
    assert plan.caps.core == "cap_sys_admin"
    assert any("MEMBERS CAN BECOME ROOT" in note for note in plan.notes)


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


@pytest.mark.parametrize(("selinux", "restores", "warns"), [(None, False, False), ("permissive", True, False),
                                                           ("enforcing", True, True)])
def test_selinux_relabels_a_new_copy_and_warns_when_enforcing(selinux: str | None, restores: bool, warns: bool) -> None:
    plan = make(replace(fresh(), selinux=selinux), desired())
    assert ("restore_context" in [a.kind for a in plan.actions]) == restores
    assert any("SELinux is enforcing" in note for note in plan.notes) == warns
    assert "restore_context" not in [a.kind for a in make(replace(converged(), selinux=selinux), desired()).actions]


def test_the_plan_says_first_what_changes_for_everyone() -> None:
    facts = replace(fresh(), paranoid=3, perf_restrict_config=True)
    plan = make(facts, want())
    wide = machine_wide([a.as_dict() for a in plan.actions])
    assert wide[0].startswith("lower kernel.perf_event_paranoid 3 -> 2, live")
    assert any(line.startswith("kernel.perf_event_paranoid 2 at every boot") for line in wide)
    # Nothing for members only (the copy, the group, profile.d) is called machine-wide.
    assert not [line for line in wide if "libexec" in line or "profile.d" in line]
    assert machine_wide([a.as_dict() for a in make(converged(), desired()).actions]) == []
