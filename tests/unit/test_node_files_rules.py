"""node_files_rules.py: which rendered artifacts a node takes, and which recorded files remove may delete."""

from __future__ import annotations

import pytest

from perfgroup import artifacts
from perfgroup.engine import node_files_facts, node_files_rules
from perfgroup.engine.desired import NodeArtifact
from perfgroup.engine.paths import ENGINE_DIR, LAUNCHER


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


@pytest.mark.parametrize(("requires", "existing", "kept"), [
    ("", frozenset(), True), ("/etc/apt", frozenset({"/etc/apt"}), True), ("/etc/apt", frozenset(), False),
    ("!/usr/bin/perf", frozenset({"/usr/bin/perf"}), False), ("!/usr/bin/perf", frozenset(), True),
])
def test_select_is_a_pure_decision(requires: str, existing: frozenset[str], kept: bool) -> None:
    item = NodeArtifact("/x", "x", kind="k", requires=requires)
    assert node_files_rules.select((item,), existing) == ((item._replace(requires=""),) if kept else ())
