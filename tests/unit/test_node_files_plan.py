"""node_files_plan.py: the node entry point and rendered artifacts planned (writes, links, retirements), recorded, and never written over a site's file. Pure."""

from __future__ import annotations

import pytest
from factsdata import converged, desired, replace, state

from perfgroup import artifacts
from perfgroup.engine import node_files_facts, node_files_plan, node_files_rules
from perfgroup.engine.actions import CreateSymlink, WriteFile
from perfgroup.engine.desired import NodeArtifact
from perfgroup.engine.errors import RefusedError
from perfgroup.engine.host import sha256_text
from perfgroup.engine.node_files_facts import NodeFileFacts
from perfgroup.engine.paths import ENGINE_DIR, LAUNCHER, WRAPPER_PATH, optional_paths
from perfgroup.engine.plan import make

UNIT = NodeArtifact("/etc/systemd/system/perfgroup-heal-g.service", "[Unit]\n", 0o644, "boot")
LINK = NodeArtifact("/etc/systemd/system/multi-user.target.wants/perfgroup-heal-g.service", "[Unit]\n", 0o644, "boot",
                    link=UNIT.path)
SOURCES = (("__init__.py", ""), ("node_main.py", "x = 1\n"))


def facts(present: dict[str, tuple[str | None, str | None]], sources: node_files_facts.Sources = SOURCES) -> node_files_facts.NodeFileFacts:
    return node_files_facts.NodeFileFacts(sources, tuple((p, t, lk) for p, (t, lk) in present.items()))


def test_fresh_node_gets_engine_launcher_unit_and_link() -> None:
    actions = node_files_plan.plan(facts({}), (UNIT, LINK), node_entry=True)
    targets = [a.target for a in actions]
    assert targets == [f"{ENGINE_DIR}/__init__.py", f"{ENGINE_DIR}/node_main.py",
                       LAUNCHER, UNIT.path, LINK.path]
    launcher = next(a for a in actions if a.target == LAUNCHER)
    assert isinstance(launcher, WriteFile) and launcher.mode == 0o755
    assert isinstance(actions[-1], CreateSymlink) and actions[-1].link_to == UNIT.path


def test_converged_node_plans_nothing_and_a_retargeted_link_is_fixed() -> None:
    present: dict[str, tuple[str | None, str | None]] = {f"{ENGINE_DIR}/{n}": (t, None) for n, t in SOURCES}
    present[LAUNCHER] = (node_files_facts.LAUNCHER_TEXT, None)
    present[UNIT.path] = (UNIT.content, None)
    present[LINK.path] = (UNIT.content, UNIT.path)
    assert node_files_plan.plan(facts(present), (UNIT, LINK), node_entry=True) == []
    present[LINK.path] = ("other", "/dev/null")
    assert [a.target for a in node_files_plan.plan(facts(present), (UNIT, LINK), True)] == [LINK.path]


def test_engine_unreadable_installs_no_entry_point_and_kept_entries_write_nothing() -> None:
    kept = NodeArtifact("/etc/apt/apt.conf.d/80perfgroup-g", "", keep_sha256="ab" * 32)
    assert node_files_plan.plan(facts({}, sources=None), (kept,), node_entry=True) == []
    assert node_files_plan.recorded(facts({}, sources=None), (UNIT, kept), True) == (
        (UNIT.path, sha256_text(UNIT.content)), (kept.path, "ab" * 32))


def test_setup_renders_every_candidate_and_the_optional_kinds_only_when_asked() -> None:
    from perfgroup.engine.paths import MODULE_NAME

    dest = "/usr/local/libexec/perfgroup/perf_users/perf"
    plain = artifacts.setup_artifacts("perf_users", dest)
    assert {a.kind for a in plain} == set(artifacts.SETUP_KINDS)
    requires = {a.kind: a.requires for a in plain}
    assert requires == {"boot": "", "apt": "/etc/apt", "dnf": "/etc/dnf", "wrapper": "", "csh": "",
                        "lmod": "/etc/lmod/modules", "tcl-module": "/etc/environment-modules/modules"}
    asked = artifacts.setup_artifacts("perf_users", dest, textfile_dir="/var/lib/node_exporter", nhc=True, perf_shell=True,
                                     job_feature="perf")
    extra = {a.path for a in asked} - {a.path for a in plain}
    assert extra == set(optional_paths("perf_users"))
    assert all(node_files_rules.owned("perf_users", path) for path in extra)
    assert "--textfile-dir /var/lib/node_exporter" in next(a.content for a in asked if a.path.endswith("textfile-perf_users.service"))
    assert artifacts.MODULE_NAME == MODULE_NAME and artifacts.NODE_COMMAND == LAUNCHER
    # A --perf source: the node picks the wrapper running /usr/bin/perf if it has one, else the source.
    wrappers = [a for a in artifacts.setup_artifacts("perf_users", dest, source="/opt/perf/bin/perf") if a.kind == "wrapper"]
    assert [(a.requires, "exec /opt/perf/bin/perf" in a.content) for a in wrappers] == [
        ("/usr/bin/perf", False), ("!/usr/bin/perf", True)]


def test_a_full_render_without_the_optional_kinds_retires_only_what_this_group_recorded() -> None:
    timer, nhc = optional_paths("g")[1], optional_paths("g")[3]
    present = facts({timer: ("[Timer]\n", None), nhc: ("fn\n", None)}, sources=None)
    recorded = ((timer, sha256_text("[Timer]\n")),)
    actions = node_files_plan.plan(present, (UNIT,), False, "g", recorded=recorded)
    assert [(type(a).__name__, a.target) for a in actions] == [("WriteFile", UNIT.path), ("DeleteFile", timer)]
    assert node_files_plan.plan(present, (), False, "g", recorded=recorded) == []  # no render (e.g. audit): keep


def test_a_recorded_optional_file_someone_else_rewrote_is_not_retired() -> None:
    timer = optional_paths("g")[1]
    present = facts({timer: ("[Timer]\n# the site's own\n", None)}, sources=None)
    actions = node_files_plan.plan(present, (UNIT,), False, "g", recorded=((timer, sha256_text("[Timer]\n")),))
    assert [a.target for a in actions] == [UNIT.path]


SITE_WRAPPER = "#!/bin/sh\nexec /opt/site/perf \"$@\"\n"


OURS = "#!/bin/sh\n# Managed by perfgroup for group perf_users: do not edit\n"


WRAPPER = NodeArtifact(WRAPPER_PATH, "new", 0o755, "wrapper")


def wrapper_facts(current: str | None) -> NodeFileFacts:
    return NodeFileFacts(present=((WRAPPER_PATH, current, None),))


OLD_RENDER = "#!/bin/sh\nexec /usr/bin/perf \"$@\"\n"  # what an earlier setup wrote there
RECORDED = ((WRAPPER_PATH, sha256_text(OLD_RENDER)),)


@pytest.mark.parametrize(("current", "recorded", "expected"), [
    (None, (), ["write_file"]),
    (OURS, (), ["write_file"]),
    ("new", (), []),
    (OLD_RENDER, RECORDED, ["write_file"]),  # still what setup wrote: rewritten
    (OURS + "# edited by hand\n", RECORDED, ["write_file"]),  # edited, still marked perfgroup's: repaired
])
def test_artifacts_written_when_absent_or_ours(current: str | None, recorded: tuple[tuple[str, str], ...],
                                               expected: list[str]) -> None:
    node_files_plan.refuse_foreign(wrapper_facts(current), (WRAPPER,), "perf_users", recorded)
    assert [a.kind for a in node_files_plan.plan(wrapper_facts(current), (WRAPPER,), False)] == expected


@pytest.mark.parametrize(("current", "recorded"), [
    (SITE_WRAPPER, ()),
    (OURS.replace("perf_users", "other_group"), ()),
    # setup wrote it once, then the site put its own perf there (review finding 6): the record
    # does not make the site's file perfgroup's
    (SITE_WRAPPER, RECORDED),
], ids=["site's file", "another group's", "site's file at a recorded path"])
def test_a_sites_perf_is_never_overwritten(current: str, recorded: tuple[tuple[str, str], ...]) -> None:
    with pytest.raises(RefusedError, match="perfgroup did not write it"):
        node_files_plan.refuse_foreign(wrapper_facts(current), (WRAPPER,), "perf_users", recorded)
    facts = replace(converged(), node_files=wrapper_facts(current),
                    state=state(files=(*state().files, *recorded)))
    with pytest.raises(RefusedError):
        make(facts, desired(artifacts=(WRAPPER,)))
