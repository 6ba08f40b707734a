"""tracefs for the group, the mlock budget, caller-rendered artifacts and the verify matrix:
pure functions fed with plain data."""

from __future__ import annotations

import pytest
from factsdata import converged, desired, replace, state

from perfgroup import artifacts
from perfgroup.engine import (
    node_files_plan,
    node_files_rules,
    reach_facts,
    reach_plan,
    reach_rules,
    verify,
)
from perfgroup.engine.desired import NodeArtifact
from perfgroup.engine.errors import RefusedError
from perfgroup.engine.findings import audit
from perfgroup.engine.node_files_facts import NodeFileFacts
from perfgroup.engine.paths import DROPIN_PATH, MODULE_NAME, WRAPPER_PATH, artifact_paths
from perfgroup.engine.plan import make
from perfgroup.engine.reach_facts import ReachFacts
from perfgroup.engine.remove import RemoveFacts
from perfgroup.engine.remove import plan as remove_plan

GID = 995  # factsdata's group gid
TRACING = "/sys/kernel/tracing"
CLOSED = ReachFacts(tracefs=((TRACING, 0o700, 0),), systemd=True, mlock_kb=516, cpus=2)
OPENED = CLOSED._replace(tracefs=((TRACING, 0o750, GID),), dropin=reach_plan.render_dropin("perf_users", GID))

MOUNTINFO = """\
22 1 0:21 / /sys rw,nosuid - sysfs sysfs rw
30 22 0:12 / /sys/kernel/tracing rw,nosuid,nodev,noexec - tracefs tracefs rw,mode=700
31 22 0:7 / /sys/kernel/debug rw - debugfs debugfs rw
40 31 0:12 / /sys/kernel/debug/tracing rw - tracefs tracefs rw,mode=700
"""


def test_the_engine_dropin_is_the_template_rendered() -> None:
    rendered = artifacts.render({"group": "perf_users", "tracefs_gid": GID, "tracefs_mode": "0750"}, {"tracefs"})[0]
    assert rendered.path == DROPIN_PATH
    assert rendered.content == reach_plan.render_dropin("perf_users", GID)


def test_artifact_paths_are_where_the_templates_go() -> None:
    context: dict[str, object] = {"group": "perf_users", "dest": "/x/perf", "dest_dir": "/x", "stock_perf": "/usr/bin/perf",
                                  "module_name": MODULE_NAME}
    rendered = artifacts.render(context, {"wrapper", "csh", "lmod", "tcl-module"})
    assert sorted(r.path for r in rendered) == sorted(artifact_paths("perf_users"))
    assert all(node_files_rules.is_ours(r.content, "perf_users") for r in rendered)


@pytest.mark.parametrize(("text", "points"), [
    (MOUNTINFO, (TRACING, "/sys/kernel/debug/tracing")),
    # a node's private tmpfs over the host's tracefs: nothing to remount
    (MOUNTINFO + "50 30 0:45 / /sys/kernel/tracing rw - tmpfs none rw\n", ("/sys/kernel/debug/tracing",)),
    ("22 1 0:21 / /sys rw - sysfs sysfs rw\n", ()),
    ("garbage\n\n", ()),
])
def test_tracefs_mount_points_from_mountinfo(text: str, points: tuple[str, ...]) -> None:
    assert reach_facts.tracefs_points(text) == points


def test_fstab_tracefs_entry() -> None:
    assert reach_facts.fstab_mounts_tracefs("tracefs /sys/kernel/tracing tracefs defaults 0 0\n")
    assert not reach_facts.fstab_mounts_tracefs("# tracefs /sys/kernel/tracing tracefs defaults\n/dev/sda1 / ext4 rw 0 1\n")


def kinds(facts_access: ReachFacts, gid: int | None = GID, want: bool = True) -> list[str]:
    actions, _ = reach_plan.plan_tracefs(facts_access, "perf_users", gid, want)
    return [a.kind for a in actions]


@pytest.mark.parametrize(("facts_access", "gid", "want", "expected"), [
    (CLOSED, GID, True, ["remount_tracefs", "persist_tracefs"]),
    (CLOSED, None, True, ["remount_tracefs", "persist_tracefs"]),  # group created by the same plan
    (OPENED, GID, True, []),
    (OPENED._replace(dropin="edited"), GID, True, ["persist_tracefs"]),
    (CLOSED, GID, False, []),  # --no-tracefs
    (CLOSED._replace(systemd=False), GID, True, ["remount_tracefs"]),
    (CLOSED._replace(fstab_tracefs=True), GID, True, ["remount_tracefs"]),
    (ReachFacts(), GID, True, []),
    (CLOSED._replace(tracefs=((TRACING, 0o755, GID),)), GID, True, ["remount_tracefs", "persist_tracefs"]),
])
def test_plan_tracefs(facts_access: ReachFacts, gid: int | None, want: bool, expected: list[str]) -> None:
    assert kinds(facts_access, gid, want) == expected


def test_plan_tracefs_says_how_it_persists() -> None:
    fstab = CLOSED._replace(fstab_tracefs=True, fstab_lines=("tracefs /sys/kernel/tracing tracefs defaults 0 0",))
    _, notes = reach_plan.plan_tracefs(fstab, "perf_users", GID, True)
    assert any("fstab" in note and "gid=<gid of perf_users>,mode=0750" in note for note in notes)
    _, notes = reach_plan.plan_tracefs(ReachFacts(), "perf_users", GID, True)
    assert any("not mounted" in note for note in notes)


def test_setup_plan_includes_tracefs() -> None:
    facts = replace(converged(), reach=CLOSED)
    assert [a.kind for a in make(facts, desired()).actions] == ["remount_tracefs", "persist_tracefs"]
    assert [a.kind for a in make(facts, desired(tracefs=False)).actions] == []
    assert [a.kind for a in make(replace(converged(), reach=OPENED), desired()).actions] == []


def ids(facts_access: ReachFacts, kept: bool = False, caps: tuple[str, ...] = ("cap_ipc_lock",)) -> dict[str, str]:
    return {f[0]: f[1] for f in reach_rules.findings(facts_access, "perf_users", GID, kept, caps, True)}


@pytest.mark.parametrize(("facts_access", "kept", "expected"), [
    (CLOSED, False, {"tracefs.closed": "warning"}),
    (CLOSED, True, {"tracefs.closed": "ok"}),
    (OPENED, False, {"tracefs.ok": "ok"}),
    (CLOSED._replace(tracefs=((TRACING, 0o755, 0),)), False, {"tracefs.open": "warning"}),
    (CLOSED._replace(tracefs=((TRACING, 0o755, GID),)), True, {"tracefs.open": "warning"}),
    (ReachFacts(mlock_kb=516), False, {"tracefs.missing": "ok"}),
])
def test_tracefs_findings(facts_access: ReachFacts, kept: bool, expected: dict[str, str]) -> None:
    found = ids(facts_access, kept)
    assert {k: v for k, v in found.items() if k.startswith("tracefs.")} == expected


def test_mlock_budget_warns_only_without_cap_ipc_lock() -> None:
    assert ids(CLOSED)["mlock.budget"] == "ok"
    assert ids(CLOSED, caps=("cap_perfmon", "cap_syslog"))["mlock.budget"] == "warning"
    assert ids(CLOSED._replace(mlock_kb=16384), caps=("cap_perfmon",))["mlock.budget"] == "ok"
    assert "1032 KiB" in next(f[2] for f in reach_rules.findings(CLOSED, "g", GID, False, (), True) if f[0] == "mlock.budget")


def test_audit_reports_tracefs() -> None:
    found = {f.id: f.severity for f in audit(replace(converged(), reach=CLOSED), desired())}
    assert found["tracefs.closed"] == "warning"
    kept = replace(converged(), reach=CLOSED, state=state(tracefs_kept=True))
    assert {f.id: f.severity for f in audit(kept, desired())}["tracefs.closed"] == "ok"


SITE_WRAPPER = "#!/bin/sh\nexec /opt/site/perf \"$@\"\n"
OURS = "#!/bin/sh\n# Managed by perfgroup for group perf_users: do not edit\n"


WRAPPER = NodeArtifact(WRAPPER_PATH, "new", 0o755, "wrapper")


def wrapper_facts(current: str | None) -> NodeFileFacts:
    return NodeFileFacts(present=((WRAPPER_PATH, current, None),))


@pytest.mark.parametrize(("current", "recorded", "expected"), [
    (None, (), ["write_file"]),
    (OURS, (), ["write_file"]),
    ("new", (), []),
    (SITE_WRAPPER, (WRAPPER_PATH,), ["write_file"]),  # setup wrote it, someone edited it: repair
])
def test_artifacts_written_when_absent_or_ours(current: str | None, recorded: tuple[str, ...], expected: list[str]) -> None:
    node_files_plan.refuse_foreign(wrapper_facts(current), (WRAPPER,), "perf_users", recorded)
    assert [a.kind for a in node_files_plan.plan(wrapper_facts(current), (WRAPPER,), False)] == expected


@pytest.mark.parametrize("current", [SITE_WRAPPER, OURS.replace("perf_users", "other_group")])
def test_a_sites_perf_is_never_overwritten(current: str) -> None:
    with pytest.raises(RefusedError, match="perfgroup did not write it"):
        node_files_plan.refuse_foreign(wrapper_facts(current), (WRAPPER,), "perf_users", ())
    facts = replace(converged(), node_files=wrapper_facts(current))
    with pytest.raises(RefusedError):
        make(facts, desired(artifacts=(WRAPPER,)))


def test_record_keeps_artifacts_a_run_without_them_did_not_render() -> None:
    previous = (("/etc/profile.d/perfgroup-perf_users.sh", "a"), (WRAPPER_PATH, "w"), ("/etc/other", "x"))
    planned = (("/etc/profile.d/perfgroup-perf_users.sh", "b"),)
    assert reach_plan.record_files(previous, planned, None, "perf_users", (WRAPPER_PATH,)) == (
        ("/etc/profile.d/perfgroup-perf_users.sh", "b"), (WRAPPER_PATH, "w"))
    assert reach_plan.record_files(previous, planned, None, "perf_users", ()) == planned
    assert dict(reach_plan.record_files((), (), (DROPIN_PATH, "d"), "perf_users", ()))[DROPIN_PATH] == "d"


def test_remove_puts_tracefs_back() -> None:
    recorded = state(tracefs_before=((TRACING, 0o700, 0),))
    facts = RemoveFacts("perf_users", recorded, None, tracefs=((TRACING, 0o750, GID),))
    restore = [a for a in remove_plan(facts) if a.kind == "remount_tracefs"]
    assert [(a.target, a.gid, a.mode) for a in restore] == [(TRACING, 0, 0o700)]  # type: ignore[attr-defined]
    already = RemoveFacts("perf_users", recorded, None, tracefs=((TRACING, 0o700, 0),))
    assert not [a for a in remove_plan(already) if a.kind == "remount_tracefs"]


# -- the verify matrix ----------------------------------------------------------------------------

ALLOWED = verify.Probe(True, 0, "ok")
REFUSED = verify.Probe(True, 255, "Error: Access ... is limited")
W = verify.WORKLOADS[0]


@pytest.mark.parametrize(("row", "ok"), [
    (verify.Row(W, ALLOWED, REFUSED), True),
    (verify.Row(W, REFUSED, REFUSED), False),
    (verify.Row(W, ALLOWED, ALLOWED), False),  # the stock perf lets a non-member in
    (verify.Row(W, ALLOWED, ALLOWED, non_member_expected="either (perf_event_paranoid < 2)"), True),
    (verify.Row(W, ALLOWED, None), True),
    (verify.Row(W, None, None, unavailable="tracefs is not mounted"), True),
])
def test_row_verdict(row: verify.Row, ok: bool) -> None:
    assert row.ok is ok


def test_verify_fails_only_on_a_supported_workload() -> None:
    good = verify.VerifyResult(ALLOWED, verify.Probe(False, None, "permission denied"), None,
                               rows=(verify.Row(W, ALLOWED, REFUSED), verify.Row(W, None, None, unavailable="x")))
    assert good.ok and good.as_dict()["workloads_ok"]
    bad = good.__class__(good.member, good.non_member, None, rows=(verify.Row(W, REFUSED, REFUSED),))
    assert not bad.ok and "NOT AS EXPECTED" in bad.matrix()[1] and "count_system" in bad.lines()[-1]


@pytest.mark.parametrize(("node", "needs", "reason"), [
    (verify.Node(2, 2, None, "", True), "kallsyms", "kptr_restrict=2"),
    (verify.Node(2, 1, None, "tracefs is not mounted", True), "tracefs", "not mounted"),
    (verify.Node(2, 1, "confidentiality", "", True), "tracefs", "lockdown"),
    (verify.Node(2, 1, None, "", False), "mlock", "cap_ipc_lock"),
    (verify.Node(2, 1, None, "", True), "", ""),
])
def test_unavailable_reasons(node: verify.Node, needs: str, reason: str) -> None:
    assert reason in node.unavailable(needs) and bool(node.unavailable(needs)) == bool(reason)


@pytest.mark.parametrize(("report", "found"), [
    ("    12.00%  [k] native_safe_halt\n", True),
    ("    12.00%  [k] 0xffffffff81a2b3c4\n", False),
    ("    12.00%  [.] main\n", False),
])
def test_kernel_symbol_in_report(report: str, found: bool) -> None:
    assert verify.has_kernel_symbol(report) is found
