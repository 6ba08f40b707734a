"""The collection as a user gets it: the tarball `ansible-galaxy collection build` makes (bare, in a
clean checkout, and from perfgroup.collection's staging copy), installed into an empty collections path, read with
ansible-doc, and its FQCN role converging simulated nodes over SSH (second run changed=0)."""

from __future__ import annotations

import json
import subprocess
import sys
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cluster import REPO, Cluster
from conftest import integration_possible
from node import NodeOptions

from perfgroup import collection, release

pytestmark = pytest.mark.integration
BIN = Path(sys.executable).parent


@pytest.fixture(scope="module")
def tarball(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return collection.build(tmp_path_factory.mktemp("dist"))


@pytest.fixture(scope="module")
def installed(tarball: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("collections")
    result = subprocess.run([str(BIN / "ansible-galaxy"), "collection", "install", "-p", str(path), str(tarball)],
                            capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    return path


def test_tarball_holds_real_engine_files_identical_to_the_package(tarball: Path) -> None:
    with tarfile.open(tarball) as tar:
        members = {m.name: m for m in tar.getmembers()}
        assert not [m.name for m in members.values() if m.issym() or m.islnk()]
        engine = sorted((REPO / "perfgroup" / "engine").glob("*.py"))
        for source in engine:
            member = members[f"plugins/module_utils/perfgroup_engine/{source.name}"]
            extracted = tar.extractfile(member)
            assert extracted is not None and extracted.read() == source.read_bytes(), source.name
    names = set(members)
    assert {"MANIFEST.json", "meta/runtime.yml", "plugins/modules/perf_users.py",
            "plugins/modules/perf_users_audit.py", "plugins/callback/perfgroup_json.py",
            "playbooks/perf_users.yml", "roles/perf_users/tasks/main.yml",
            "roles/perf_users/meta/argument_specs.yml", "roles/perf_users/README.md",
            "roles/perf_users/tests/tests_default.yml", "docs/findings.md", "docs/reference.md"} <= names
    assert not [n for n in names if n.startswith(("tests/", "bench/", "perfgroup/", ".ci", ".venv")) or "__pycache__" in n]


def test_a_bare_galaxy_build_of_a_clean_checkout_makes_the_same_tarball(tarball: Path, tmp_path: Path) -> None:
    """What an administrator who knows Ansible types: `ansible-galaxy collection build` in a checkout."""
    checkout = release.tracked_copy(REPO, tmp_path / "checkout")  # as a clean clone has them
    result = subprocess.run([str(BIN / "ansible-galaxy"), "collection", "build", "--output-path", str(tmp_path)],
                            cwd=checkout, capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    with tarfile.open(tmp_path / tarball.name) as bare, tarfile.open(tarball) as staged:
        assert not [m.name for m in bare.getmembers() if m.issym() or m.islnk()]
        assert {m.name for m in bare.getmembers() if m.isfile()} == {m.name for m in staged.getmembers() if m.isfile()}


def test_the_wheel_carries_the_same_tree_as_the_tarball(tarball: Path) -> None:
    """pyproject.toml lists the collection's files as data-files; nothing may be missing or extra."""
    # Python 3.11+ (the main lane); the ansible-core 2.16 lane runs on 3.10, and the data-files do
    # not depend on the ansible-core release.
    tomllib = pytest.importorskip("tomllib")

    with tarfile.open(tarball) as tar:
        in_tarball = {m.name for m in tar.getmembers() if m.isfile()} - {"MANIFEST.json", "FILES.json"}
    prefix = "share/perfgroup/collections/ansible_collections/perfgroup/hpc"
    data_files = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["data-files"]
    in_wheel = set()
    for target, patterns in data_files.items():
        if not target.startswith(prefix):
            continue
        for pattern in patterns:
            for source in REPO.glob(pattern):
                in_wheel.add(f"{target[len(prefix):].lstrip('/')}/{source.name}".lstrip("/"))
    assert in_wheel == in_tarball | {"galaxy.yml"}  # the tarball has MANIFEST.json instead


@pytest.mark.parametrize("name", ["perf_users", "perf_users_audit"])
def test_ansible_doc_renders_both_modules(installed: Path, name: str) -> None:
    env = {"ANSIBLE_COLLECTIONS_PATH": str(installed), "PATH": f"{BIN}:/usr/bin:/bin", "ANSIBLE_NOCOLOR": "1",
           "HOME": str(installed)}
    text = subprocess.run([str(BIN / "ansible-doc"), f"perfgroup.hpc.{name}"], env=env,
                          capture_output=True, text=True, check=False)
    assert text.returncode == 0, text.stderr
    assert "EXAMPLES:" in text.stdout and "RETURN VALUES:" in text.stdout and "perfgroup_result_kind" in text.stdout
    assert str(installed) in text.stdout  # from the installed collection, not the checkout
    as_json = json.loads(subprocess.run([str(BIN / "ansible-doc"), "--json", f"perfgroup.hpc.{name}"], env=env,
                                        capture_output=True, text=True, check=True).stdout)
    assert as_json[f"perfgroup.hpc.{name}"]["doc"]["module"] == name


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    reason = integration_possible()
    if reason:
        pytest.fail(reason)
    made = Cluster({"a": NodeOptions(), "b": NodeOptions()})
    try:
        yield made
    finally:
        made.close()
    assert not any(ssh.node.processes() for ssh in made.nodes.values())


def test_installed_fqcn_role_converges_then_changes_nothing(installed: Path, cluster: Cluster, tmp_path: Path) -> None:
    playbook = tmp_path / "site.yml"
    playbook.write_text("""\
- name: Privileged perf users group from the installed collection
  hosts: perf_nodes
  gather_facts: false
  become: true
  roles:
    - role: perfgroup.hpc.perf_users
""")
    only_installed = {"ANSIBLE_COLLECTIONS_PATH": str(installed)}  # not the checkout's link
    reports: list[dict[str, Any]] = []
    for _ in range(2):
        result = cluster.run([str(BIN / "ansible-playbook"), "-i", str(cluster.inventory), str(playbook)],
                             env=only_installed)
        assert result.returncode == 0, result.stderr[-3000:]
        reports.append(json.loads(result.stdout.strip().splitlines()[-1]))
    first, second = (report["stats"] for report in reports)
    assert all(first[n]["changed"] >= 1 and first[n]["failures"] == 0 for n in ("a", "b")), first
    assert all(second[n]["changed"] == 0 and second[n]["failures"] == 0 for n in ("a", "b")), second
    # and the collection's own playbook by FQCN, through perfgroup deploy pointed at the installed copy
    deploy = cluster.run([str(BIN / "perfgroup"), "deploy", "-i", str(cluster.inventory), "--json"],
                         env={"PERFGROUP_COLLECTIONS": str(installed)})
    assert deploy.returncode == 0, deploy.stdout + deploy.stderr
    assert {row["host"] for row in json.loads(deploy.stdout)["hosts"]} == {"a", "b"}
