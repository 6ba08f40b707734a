"""Typed actions and their one dispatch in apply.py, with a fake writer; remove and members plans
from plain facts."""

from __future__ import annotations

import grp
import hashlib
import os
from typing import Any

import pytest
from factsdata import DEST, converged, desired, replace, state

from perfgroup.engine import actions as act
from perfgroup.engine import apply, converge, host, plan_diff
from perfgroup.engine import members as members_mod
from perfgroup.engine import remove as remove_mod
from perfgroup.engine.errors import ConvergeError, RefusedError
from perfgroup.engine.facts import GroupFacts
from perfgroup.engine.paths import ENGINE_DIR, LAUNCHER, WRAPPER_PATH
from perfgroup.engine.plan import make


class FakeWriter:
    """A performer table that records what would be done; answers 'nothing to do' for targets
    named in `absent`."""

    def __init__(self, absent: tuple[str, ...] = ()) -> None:
        self.calls: list[tuple[str, str]] = []
        self.absent = absent
        self.table = {cls: self.handle for cls in act.ALL_ACTIONS}

    def handle(self, action: act.Action) -> bool:
        self.calls.append((action.kind, action.target))
        return action.target not in self.absent


def test_the_performer_table_handles_every_action_type() -> None:
    assert set(apply.PERFORMERS) == set(act.ALL_ACTIONS)
    assert all(callable(perform) for perform in apply.PERFORMERS.values())


def test_dispatch_is_by_type_in_order_and_reports_only_real_changes() -> None:
    actions = (act.CreateGroup("g", "w", gid=5), act.CreateDir("/d", "w"), act.DeleteFile("/gone", "w"))
    writer, done = FakeWriter(absent=("/gone",)), []
    apply.perform(actions, writer.table, on_done=done.append)
    assert writer.calls == [("create_group", "g"), ("create_dir", "/d"), ("delete_file", "/gone")]
    assert done == list(actions[:2])


@pytest.mark.parametrize(("action", "summary", "after"), [
    (act.CreateGroup("g", "w", gid=5), "create group g (gid 5)", "group g"),
    (act.CreateGroup("g", "w"), "create group g (a system gid)", "group g"),
    (act.InstallCopy("/c/perf", "w", source="/usr/bin/perf", caps=("cap_perfmon",), group="g"),
     "install /usr/bin/perf as /c/perf (root:g 0750 cap_perfmon=ep)", "root:g 0750 cap_perfmon=ep"),
    (act.SetParanoid("/proc/sys/kernel/perf_event_paranoid", "w", value=2, was=3),
     "lower kernel.perf_event_paranoid 3 -> 2", "2"),
    (act.WriteFile("/etc/x", "w", content="new", old=None), "create /etc/x", "new"),
    (act.WriteFile("/etc/x", "w", content="new", old="old"), "rewrite /etc/x", "new"),
])
def test_actions_describe_themselves(action: act.Action, summary: str, after: str) -> None:
    assert action.summary == summary and action.after == after
    assert action.as_dict()["kind"] == action.kind


def test_build_state_records_what_was_done() -> None:
    before = replace(converged(), state=None, state_error="missing", paranoid=3)
    plan = make(before, desired(members=("bob",)))
    applied = [act.CreateDir("/usr/local/libexec/perfgroup/x", "w"), act.AddMember("bob", "w", group="perf_users"),
               act.InstallCopy(DEST, "w", source="/usr/bin/perf", caps=("cap_perfmon",), group="perf_users")]
    record = converge.build_state(desired(members=("bob",)), before, converged(), plan, applied)
    assert record.members_added == ("bob",) and "/usr/local/libexec/perfgroup/x" in record.created_dirs
    assert record.copies == (DEST,) and record.paranoid_before == 3 and record.caps == tuple(sorted(plan.caps.caps))
    assert {path for path, _ in record.files} == {desired().profile_path, desired().sysctl_path}


def test_build_state_keeps_every_copy_ever_installed() -> None:
    before = replace(converged(), state=state(copies=("/old/perf",)))
    plan = make(before, desired())
    record = converge.build_state(desired(), before, converged(), plan, [])
    assert record.copies == ("/old/perf", DEST)


def test_a_no_op_run_records_the_same_state() -> None:
    facts = converged()
    plan = make(facts, desired())
    record = converge.build_state(desired(), facts, facts, plan, [])
    assert record.same_as(facts.state)


def remove_facts(**changes: Any) -> remove_mod.RemoveFacts:
    base = remove_mod.RemoveFacts(
        group="perf_users", state=state(members_added=("alice",)), state_error=None,
        copies=((DEST, True),), files=((desired().profile_path, True), (desired().sysctl_path, True)),
        dirs=(("/usr/local/libexec/perfgroup", ("perf_users",)), ("/usr/local/libexec/perfgroup/perf_users", ("perf",))),
        group_exists=True, group_members=("alice",),
    )
    return base._replace(**changes)


def test_remove_plans_everything_the_record_names_outermost_directory_last() -> None:
    kinds = [(a.kind, a.target) for a in remove_mod.plan(remove_facts())]
    assert kinds == [
        ("delete_copy", DEST), ("delete_file", desired().profile_path), ("delete_file", desired().sysctl_path),
        ("delete_dir", "/usr/local/libexec/perfgroup/perf_users"), ("delete_dir", "/usr/local/libexec/perfgroup"),
        ("delete_group", "perf_users"), ("delete_file", desired().state_path),
    ]


def test_remove_plans_only_what_is_left() -> None:
    facts = remove_facts(copies=((DEST, False),), files=((desired().profile_path, False),),
                         dirs=(("/usr/local/libexec/perfgroup", ("other",)),), group_exists=False)
    assert [a.kind for a in remove_mod.plan(facts)] == ["delete_file"]  # the record itself


def test_remove_of_an_adopted_group_takes_back_only_the_members_it_added() -> None:
    facts = remove_facts(state=state(group_created=False, members_added=("alice", "carol")),
                         group_members=("alice", "bob"))
    assert [(a.kind, a.target) for a in remove_mod.plan(facts) if "member" in a.kind] == [("remove_member", "alice")]


def test_nothing_to_remove_is_not_a_refusal_but_unrecorded_files_are() -> None:
    assert remove_mod.plan(remove_mod.RemoveFacts("perf_users", None, "missing")) == ()
    with pytest.raises(RefusedError, match="no usable setup record"):
        remove_mod.plan(remove_mod.RemoveFacts("perf_users", None, "missing", leftovers_of_unrecorded=(DEST,)))


GROUP = GroupFacts("perf_users", 995, ("alice",), local=True)


@pytest.mark.parametrize(("users", "mode", "expected"), [
    (["bob"], "add", [("add_member", "bob")]),
    (["alice"], "add", []),
    (["alice", "bob", "bob"], "remove", [("remove_member", "alice")]),
    (["bob"], "sync", [("add_member", "bob"), ("remove_member", "alice")]),
    (["alice"], "sync", []),
    (["alice", "bob"], "sync", [("add_member", "bob")]),
])
def test_members_plan(users: list[str], mode: str, expected: list[tuple[str, str]]) -> None:
    known = {"alice": True, "bob": True}
    assert [(a.kind, a.target) for a in members_mod.plan(GROUP, users, known, mode)] == expected


@pytest.mark.parametrize(("group", "users", "message"), [
    (GroupFacts("perf_users", None), ["bob"], "does not exist"),
    (GroupFacts("perf_users", 5000, (), local=False), ["bob"], "directory"),
    (GROUP, ["ghost"], "no such user"),
    (GROUP, ["root"], "pointless"),
    (GroupFacts("perf_users", 5000, ("alice",), local=False), ["alice"], "directory"),
])
def test_members_refusals(group: GroupFacts, users: list[str], message: str) -> None:
    for mode in ("add", "sync"):
        with pytest.raises(RefusedError, match=message):
            members_mod.plan(group, users, {"bob": True, "root": True, "alice": True}, mode)


def test_members_sync_never_empties_the_group() -> None:
    with pytest.raises(RefusedError, match="would empty the group"):
        members_mod.plan(GROUP, [], {}, "sync")


def test_module_diff_and_summary_are_plain_data() -> None:
    facts = replace(converged(), paranoid=1)
    plan = make(facts, desired())
    result = converge.SetupResult(plan=plan, applied=list(plan.actions), failed_step="write_state")
    assert converge.diff(plan) == [{
        "before_header": "/proc/sys/kernel/perf_event_paranoid (set_paranoid)",
        "after_header": "/proc/sys/kernel/perf_event_paranoid (set_paranoid)", "before": "1\n", "after": "2\n",
    }]
    out = converge.summary(plan, result)
    assert out["applied"] == ["raise kernel.perf_event_paranoid 1 -> 2"] and out["failed_step"] == "write_state"
    assert out["caps"] == sorted(plan.caps.caps) and out["verified"] is False
    assert converge.diff(None) == [] and converge.summary(None, converge.SetupResult())["plan"] == []
    assert result.changed  # a failed step after an applied one is still a change


ENGINE_FILE = "x = 1\n" * 400  # an engine module's size


def test_module_diff_shows_small_files_whole_and_summarises_the_rest() -> None:
    """Issue 22 item 2: a first --check --diff printed the engine's whole source (7,082 lines)."""
    engine = [act.WriteFile(f"{ENGINE_DIR}/m{n}.py", "w", content=ENGINE_FILE) for n in range(30)]
    engine[1] = act.WriteFile(f"{ENGINE_DIR}/m1.py", "w", content=ENGINE_FILE + "y = 2\n", old=ENGINE_FILE)
    plan = [act.WriteFile("/etc/sysctl.d/x.conf", "w", content="kernel.perf_event_paranoid = 2\n"),
            act.WriteFile(LAUNCHER, "w", content="#!/usr/bin/python3 -I\n"),
            *engine,
            act.WriteFile("/etc/big", "w", content=ENGINE_FILE, old="old\n"),
            act.CreateGroup("perf_users", "w", gid=5)]
    entries = plan_diff.entries(plan)
    assert [e["before_header"] for e in entries] == [
        "/etc/sysctl.d/x.conf (write_file)",
        f"node entry point: 31 files ({LAUNCHER}, {ENGINE_DIR}/)",
        "/etc/big (write_file)", "perf_users (create_group)"]
    assert entries[0]["before"] == "" and entries[0]["after"] == "kernel.perf_event_paranoid = 2\n"
    digest = f"sha256 {hashlib.sha256(ENGINE_FILE.encode()).hexdigest()} (400 lines, 2400 bytes)"
    # one side large: both sides as hashes
    assert entries[2]["before"] == f"sha256 {hashlib.sha256(b'old' + bytes([10])).hexdigest()} (1 line, 4 bytes)\n"
    assert entries[2]["after"] == digest + "\n"
    point = entries[1]
    assert point["after"].splitlines()[1] == f"{ENGINE_DIR}/m0.py {digest}"
    assert len(point["after"].splitlines()) == 31 and point["before"] == f"{ENGINE_DIR}/m1.py {digest}\n"
    assert entries[3]["before"] == "" and entries[3]["after"] == "group perf_users\n"
    assert sum(len(e["before"].splitlines()) + len(e["after"].splitlines()) for e in entries) < 40


def _raise(error: Exception) -> Any:
    def fail(*args: Any, **kwargs: Any) -> Any:
        raise error
    return fail


@pytest.mark.parametrize(("target", "error", "step", "text"), [
    # A bug while building the record, after every action was applied.
    ("build_state", AttributeError("'NoneType' object has no attribute 'gid'"), "record",
     "record: unexpected AttributeError: 'NoneType' object has no attribute 'gid'"),
    # An engine error that is not a ConvergeError (a refusal means "nothing changed": not true now).
    ("run_verify", RefusedError("group\nvanished"), "verify", "verify: group vanished"),
])
def test_any_error_after_applied_steps_is_a_named_converge_error(monkeypatch: pytest.MonkeyPatch, target: str,
                                                                 error: Exception, step: str, text: str) -> None:
    facts = replace(converged(), paranoid=1)
    plan = make(facts, desired())
    assert plan.actions

    def perform(actions: Any, performers: object = None, on_done: Any = None) -> None:
        for action in actions:
            on_done(action)

    monkeypatch.setattr(apply, "perform", perform)
    monkeypatch.setattr(apply, "write_pending", _raise(AssertionError("a unit test must not write on the host")))
    monkeypatch.setattr(converge.facts_mod, "read", lambda *args, **kwargs: converged())
    if target != "build_state":
        monkeypatch.setattr(converge, "record", lambda *args: False)
    monkeypatch.setattr(converge, target, _raise(error))
    result = converge.SetupResult(plan=plan)
    with pytest.raises(ConvergeError) as raised:
        converge.finish(desired(), facts, plan, result, run_checks=True)
    assert str(raised.value) == text and raised.value.step == step
    assert result.failed_step == step and result.changed
    assert result.applied == list(plan.actions)


def test_a_refusal_after_installing_perf_is_a_failure_after_a_change(monkeypatch: pytest.MonkeyPatch) -> None:
    """--install-perf installs before the full plan: a refusal then must not say "nothing changed"."""
    command = ("apt-get", "install", "-y", "linux-perf")
    facts = converged()
    facts = facts._replace(source=facts.source._replace(install_command=command))
    installed: list[tuple[str, ...]] = []
    monkeypatch.setattr(apply, "install_package", installed.append)
    monkeypatch.setattr(converge.facts_mod, "read", lambda *args, **kwargs: facts)
    monkeypatch.setattr(converge.plan_mod, "preflight", lambda *args: None)
    monkeypatch.setattr(converge.plan_mod, "make", _raise(RefusedError("--member carol: no such user")))
    result = converge.SetupResult()
    with pytest.raises(ConvergeError) as raised:
        converge.plan_for(desired()._replace(install_perf=True), facts, dry_run=False, result=result)
    assert installed == [command] and result.installed_perf == command and result.changed
    assert raised.value.step == "plan" == result.failed_step
    assert str(raised.value) == "plan: --member carol: no such user (after installing perf: apt-get install -y linux-perf)"


# -- the copy is made from the source that was checked (security review finding 4) -------------

def source_file(path: Any, data: bytes) -> tuple[str, Any]:
    path.write_bytes(data)
    path.chmod(0o755)
    return str(path), host.key_of(os.stat(path))


def install(tmp_path: Any, source: str, key: Any, sha: str) -> act.InstallCopy:
    (tmp_path / "dest").mkdir()
    return act.InstallCopy(str(tmp_path / "dest" / "perf"), "w", source=source, caps=("cap_perfmon",),
                           group=grp.getgrgid(os.getgid()).gr_name, source_sha256=sha, source_key=key)


@pytest.mark.parametrize("swap", ["renamed over", "written in place"])
def test_install_copy_refuses_a_source_that_is_not_the_checked_one(tmp_path: Any, swap: str) -> None:
    checked = b"\x7fELF checked perf"
    source, key = source_file(tmp_path / "perf", checked)
    if swap == "renamed over":
        source_file(tmp_path / "other", b"\x7fELF another ELF")
        os.replace(tmp_path / "other", source)
    else:
        with open(source, "ab") as handle:
            handle.write(b" and more")
    action = install(tmp_path, source, key, hashlib.sha256(checked).hexdigest())
    with pytest.raises(ConvergeError, match="changed since it was checked"):
        apply.install_copy(action)
    assert os.listdir(tmp_path / "dest") == []


def test_install_copy_refuses_bytes_other_than_the_hashed_ones(tmp_path: Any) -> None:
    """Same inode and stat (the check's key) but not the sha256 the plan recorded: never installed."""
    source, key = source_file(tmp_path / "perf", b"\x7fELF checked perf")
    action = install(tmp_path, source, key, "0" * 64)
    with pytest.raises(ConvergeError, match="sha256"):
        apply.install_copy(action)
    assert os.listdir(tmp_path / "dest") == []


def test_the_plan_hands_install_copy_the_checked_source() -> None:
    facts = replace(converged(), copy=converged().copy._replace(sha256="6" * 64))
    install = next(a for a in make(facts, desired()).actions if isinstance(a, act.InstallCopy))
    assert (install.source, install.source_sha256, install.source_key) == (
        facts.source.path, facts.source.sha256, facts.source.key)


# -- remove leaves a recorded file that is not what perfgroup wrote (security review finding 6) --

def test_remove_leaves_a_recorded_file_perfgroup_did_not_write_and_says_so() -> None:
    facts = remove_facts(files=((desired().profile_path, True), (WRAPPER_PATH, True)), not_ours=(WRAPPER_PATH,))
    targets = [a.target for a in remove_mod.plan(facts)]
    assert desired().profile_path in targets and WRAPPER_PATH not in targets
    assert any(WRAPPER_PATH in note and "not what perfgroup wrote" in note and "left in place" in note
               for note in remove_mod.notes(facts)), remove_mod.notes(facts)
