"""reach_plan.py: tracefs for the group (remounts, the drop-in, fstab), live and at boot, and what remove puts back:
pure functions fed with plain data."""

from __future__ import annotations

import pytest
from factsdata import CLOSED, GID, OPENED, TRACING, converged, desired, replace, state

from perfgroup import artifacts
from perfgroup.engine import (
    node_files_rules,
    reach_plan,
)
from perfgroup.engine.paths import DROPIN_PATH, MODULE_NAME, WRAPPER_PATH, artifact_paths
from perfgroup.engine.plan import make
from perfgroup.engine.reach_facts import ReachFacts
from perfgroup.engine.remove import RemoveFacts
from perfgroup.engine.remove import plan as remove_plan


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


