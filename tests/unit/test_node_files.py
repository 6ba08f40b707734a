"""Node files (entry point + rendered artifacts): plan, record and what remove may delete. Pure."""

from __future__ import annotations

import pytest

from perfgroup import artifacts
from perfgroup.engine import node_files_facts, node_files_plan, node_files_rules
from perfgroup.engine.actions import CreateSymlink, WriteFile
from perfgroup.engine.desired import NodeArtifact
from perfgroup.engine.host import sha256_text
from perfgroup.engine.paths import ENGINE_DIR, LAUNCHER, optional_paths

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


@pytest.mark.parametrize(("path", "owned"), [
    (LAUNCHER, True), (f"{ENGINE_DIR}/facts.py", True),
    ("/etc/systemd/system/perfgroup-heal-g.service", True), ("/etc/apt/apt.conf.d/80perfgroup-g", True),
    ("/etc/nhc/scripts/perfgroup.nhc", True),
    ("/etc/apt/apt.conf.d/80perfgroup-other", False), ("/etc/passwd", False), ("/etc/systemd/system/g.service", False),
    ("/usr/local/lib/perfgroup/perfgroup_engine/../x.py", False),
])
def test_remove_deletes_only_node_files_of_the_group(path: str, owned: bool) -> None:
    assert node_files_rules.owned("g", path) is owned


def test_rendered_setup_artifacts_are_ones_remove_may_delete() -> None:
    kinds = {"boot", "apt", "dnf", "prometheus", "nhc"}
    rendered = artifacts.node_artifacts("perf_users", "/usr/local/libexec/perfgroup/perf_users/perf", kinds,
                                        textfile_dir="/var/lib/node_exporter")
    assert {a.kind for a in rendered} == kinds
    assert all(node_files_rules.owned("perf_users", a.path) for a in rendered)
    links = {a.path: a.link for a in rendered if a.link}
    assert links == {
        "/etc/systemd/system/multi-user.target.wants/perfgroup-heal-perf_users.service":
            "/etc/systemd/system/perfgroup-heal-perf_users.service",
        "/etc/systemd/system/timers.target.wants/perfgroup-textfile-perf_users.timer":
            "/etc/systemd/system/perfgroup-textfile-perf_users.timer",
    }


def test_engine_reads_its_own_sources_including_the_entry_point() -> None:
    sources = dict(node_files_facts.read_engine_sources() or ())
    assert "node_main.py" in sources and "facts.py" in sources
    assert "import click" not in "".join(sources.values()) and "import jinja2" not in "".join(sources.values())


def test_select_keeps_each_artifact_whose_node_side_condition_holds(tmp_path: pytest.TempPathFactory) -> None:
    root = str(tmp_path)
    import os

    os.makedirs(f"{root}/etc/apt")
    os.makedirs(f"{root}/usr/bin")
    open(f"{root}/usr/bin/perf", "w").close()
    items = (NodeArtifact("/a", "x", kind="apt", requires="/etc/apt"), NodeArtifact("/d", "x", kind="dnf", requires="/etc/dnf"),
             NodeArtifact("/w1", "x", kind="wrapper", requires="/usr/bin/perf"),
             NodeArtifact("/w2", "x", kind="wrapper", requires="!/usr/bin/perf"), NodeArtifact("/b", "x", kind="boot"))
    assert [(a.path, a.requires) for a in node_files_rules.select(items, node_files_facts.existing_requirements(items, root))] == [("/a", ""), ("/w1", ""), ("/b", "")]


def test_setup_renders_every_candidate_and_the_optional_kinds_only_when_asked() -> None:
    from perfgroup.engine.paths import MODULE_NAME

    dest = "/usr/local/libexec/perfgroup/perf_users/perf"
    plain = artifacts.setup_artifacts("perf_users", dest)
    assert {a.kind for a in plain} == set(artifacts.SETUP_KINDS)
    requires = {a.kind: a.requires for a in plain}
    assert requires == {"boot": "", "apt": "/etc/apt", "dnf": "/etc/dnf", "wrapper": "", "csh": "",
                        "lmod": "/etc/lmod/modules", "tcl-module": "/etc/environment-modules/modules"}
    asked = artifacts.setup_artifacts("perf_users", dest, textfile_dir="/var/lib/node_exporter", nhc=True)
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
    actions = node_files_plan.plan(present, (UNIT,), False, "g", recorded_paths=(timer,))
    assert [(type(a).__name__, a.target) for a in actions] == [("WriteFile", UNIT.path), ("DeleteFile", timer)]
    assert node_files_plan.plan(present, (), False, "g", recorded_paths=(timer,)) == []  # no render (e.g. audit): keep


def test_sha256_text_is_hashlib_sha256() -> None:
    import hashlib

    for text in ("", "x", "é" * 5000):
        assert sha256_text(text) == hashlib.sha256(text.encode()).hexdigest()


@pytest.mark.parametrize(("requires", "existing", "kept"), [
    ("", frozenset(), True), ("/etc/apt", frozenset({"/etc/apt"}), True), ("/etc/apt", frozenset(), False),
    ("!/usr/bin/perf", frozenset({"/usr/bin/perf"}), False), ("!/usr/bin/perf", frozenset(), True),
])
def test_select_is_a_pure_decision(requires: str, existing: frozenset[str], kept: bool) -> None:
    item = NodeArtifact("/x", "x", kind="k", requires=requires)
    assert node_files_rules.select((item,), existing) == ((item._replace(requires=""),) if kept else ())
