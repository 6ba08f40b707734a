"""Issue 22 item 8: the release a site installs without a checkout. `python -m perfgroup.release`
runs in a clean copy of the repository (the tracked files, a fresh git index) and builds the
sdist, the wheel and the collection tarball; each is installed as a site would: the wheel and the
sdist into fresh venvs with `pip --no-index` (from a wheelhouse of the dependencies and the build
backend, fetched once, pinned by constraints/main.txt), the collection into an empty collections
path with ansible-galaxy, then the installed entry points and ansible-doc run, and each installed
CLI sets up a throwaway node (verified by running perf) and audits it clean."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest
from cluster import REPO
from node import Node

from perfgroup import release
from perfgroup.engine import VERSION

pytestmark = pytest.mark.integration
BIN = Path(sys.executable).parent
NAMES = (f"perfgroup-{VERSION}.tar.gz", f"perfgroup-{VERSION}-py3-none-any.whl", f"perfgroup-hpc-{VERSION}.tar.gz")


def clean_copy(destination: Path) -> Path:
    """What a clean clone holds: the tracked files and a git index listing them, nothing else."""
    release.tracked_copy(REPO, destination)
    subprocess.run(["git", "init", "-q", str(destination)], check=True)
    subprocess.run(["git", "-C", str(destination), "add", "-A"], check=True)
    return destination


def offline_env(home: Path) -> dict[str, str]:
    """No pip configuration (as on a site's air-gapped node: PIP_CONFIG_FILE=/dev/null reads none),
    no Python or Ansible settings of the test run."""
    keep = {k: v for k, v in os.environ.items() if not k.startswith(("PIP_", "PYTHON", "VIRTUAL_ENV", "ANSIBLE_"))}
    return {**keep, "PIP_CONFIG_FILE": os.devnull, "HOME": str(home), "NO_COLOR": "1"}


def run(argv: list[str | Path], cwd: Path | None = None, env: dict[str, str] | None = None,
        ) -> subprocess.CompletedProcess[str]:
    result = subprocess.run([str(a) for a in argv], cwd=cwd, env=env, capture_output=True, text=True, timeout=900,
                            check=False)
    assert result.returncode == 0, f"{argv}: {result.stdout[-2000:]}{result.stderr[-3000:]}"
    return result


@pytest.fixture(scope="module")
def dist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    source = clean_copy(tmp_path_factory.mktemp("release") / "src")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    # `python -m` imports perfgroup from the working directory: the copy builds itself.
    built = run([sys.executable, "-m", "perfgroup.release"], cwd=source, env=env)
    assert built.stdout.splitlines()[0] == f"built from {source}:", built.stdout
    return source / "dist"


@pytest.fixture(scope="module")
def wheelhouse(dist: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel's dependencies and the build backend (setuptools, for the sdist), fetched with the
    user's pip configuration (the registry or pip's cache); every install below is --no-index."""
    path = tmp_path_factory.mktemp("wheelhouse")
    run([sys.executable, "-m", "pip", "download", "-q", "--only-binary=:all:", "-c", REPO / "constraints/main.txt",
         "-d", path, dist / NAMES[1], "setuptools"])
    (path / NAMES[1]).unlink()  # perfgroup itself comes from dist/ only
    return path


def test_one_command_builds_the_three_artifacts_with_their_sums(dist: Path) -> None:
    assert sorted(p.name for p in dist.iterdir()) == sorted([*NAMES, "SHA256SUMS"])
    assert run(["sha256sum", "-c", "SHA256SUMS"], cwd=dist).stdout.count(": OK") == 3
    with zipfile.ZipFile(dist / NAMES[1]) as wheel:
        metadata = wheel.read(f"perfgroup-{VERSION}.dist-info/METADATA").decode()
        names = wheel.namelist()
    assert f"Version: {VERSION}\n" in metadata and "License-Expression: MIT\n" in metadata
    assert f"perfgroup-{VERSION}.dist-info/licenses/LICENSE" in names
    with tarfile.open(dist / NAMES[2]) as tar:
        info = json.loads(tar.extractfile("MANIFEST.json").read())["collection_info"]  # type: ignore[union-attr]
        assert "LICENSE" in tar.getnames()
    assert (info["version"], info["license"], info["repository"]) == (VERSION, ["MIT"], None)
    for name in NAMES:  # the placeholder domain is in no metadata a site sees
        path = dist / name
        data = zipfile.ZipFile(path).read(f"perfgroup-{VERSION}.dist-info/METADATA") if name.endswith(".whl") else b""
        if name.endswith(".tar.gz"):
            with tarfile.open(path) as tar:
                data = b"".join(tar.extractfile(m).read() for m in tar.getmembers()  # type: ignore[union-attr]
                                if m.isfile() and m.name.endswith(("PKG-INFO", "MANIFEST.json", "galaxy.yml")))
        assert data and release.PLACEHOLDER.encode() not in data, name


def installed_venv(path: Path, artifact: Path, wheelhouse: Path) -> Path:
    run([sys.executable, "-m", "venv", path])
    run([path / "bin/pip", "install", "-q", "--no-index", "--find-links", wheelhouse, artifact],
        env=offline_env(path), cwd=path)
    return path


@pytest.mark.parametrize("artifact", [NAMES[1], NAMES[0]], ids=["wheel", "sdist"])
def test_installs_offline_into_a_fresh_venv_and_runs(dist: Path, wheelhouse: Path, tmp_path: Path,
                                                     artifact: str, users: Node) -> None:
    venv = installed_venv(tmp_path / "venv", dist / artifact, wheelhouse)
    env = offline_env(tmp_path)
    # pyproject.toml's one console script (perfgroup-node is not one: setup installs it on the node)
    helped = run([venv / "bin/perfgroup", "--help"], env=env, cwd=tmp_path)
    assert "deploy" in helped.stdout and "audit" in helped.stdout
    assert run([venv / "bin/perfgroup", "--version"], env=env, cwd=tmp_path).stdout.strip() == f"perfgroup, version {VERSION}"
    assert "--inventory" in run([venv / "bin/perfgroup", "deploy", "--help"], env=env, cwd=tmp_path).stdout
    # the collection the wheel carries for `deploy`, from the sdist too
    share = venv / "share/perfgroup/collections/ansible_collections/perfgroup/hpc"
    engine = sorted(p.name for p in (share / "plugins/module_utils/perfgroup_engine").glob("*.py"))
    assert engine == sorted(p.name for p in (REPO / "perfgroup/engine").glob("*.py"))
    assert (share / "LICENSE").read_text() == (REPO / "LICENSE").read_text()
    # and the installed release does the job on a node: setup (templates, engine, node entry
    # point all from the install), verified by running perf, then a clean audit
    done = users.run([str(venv / "bin/perfgroup"), "setup", "--group", "perf_users", "--member", "alice"], timeout=300)
    assert done.returncode == 0 and "verified" in done.stdout, done.stdout + done.stderr
    audit = users.run([str(venv / "bin/perfgroup"), "audit", "--json"])
    assert audit.returncode == 0 and json.loads(audit.stdout)["status"] == "ok", audit.stdout
    assert users.run(["/usr/local/sbin/perfgroup-node", "audit", "--group", "perf_users"]).returncode == 0


def test_the_collection_tarball_installs_into_an_empty_path_and_documents_itself(dist: Path, tmp_path: Path) -> None:
    collections = tmp_path / "collections"
    collections.mkdir()
    env = {**offline_env(tmp_path), "ANSIBLE_COLLECTIONS_PATH": str(collections), "ANSIBLE_NOCOLOR": "1"}
    run([BIN / "ansible-galaxy", "collection", "install", "-p", collections, dist / NAMES[2]], env=env, cwd=tmp_path)
    for module in ("perf_users", "perf_users_audit"):
        doc = json.loads(run([BIN / "ansible-doc", "--json", f"perfgroup.hpc.{module}"], env=env, cwd=tmp_path).stdout)
        assert doc[f"perfgroup.hpc.{module}"]["doc"]["module"] == module
    role = json.loads(run([BIN / "ansible-doc", "-t", "role", "--json", "perfgroup.hpc.perf_users"], env=env,
                          cwd=tmp_path).stdout)["perfgroup.hpc.perf_users"]
    assert role["path"] == str(collections / "ansible_collections/perfgroup/hpc")  # the installed copy
    assert "perf_users_group" in role["entry_points"]["main"]["options"]


def test_refuses_placeholder_metadata_and_two_versions(tmp_path: Path) -> None:
    """One line on stderr, exit 2, nothing built."""
    source = clean_copy(tmp_path / "src")
    galaxy = source / "galaxy.yml"
    text = galaxy.read_text()
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    for changed, expected in ((text + "repository: https://example.invalid/perfgroup\n", "example.invalid in galaxy.yml"),
                              (text.replace(f"version: {VERSION}", "version: 9.9.9"), "galaxy.yml 9.9.9")):
        galaxy.write_text(changed)
        result = subprocess.run([sys.executable, "-m", "perfgroup.release"], cwd=source, env=env,
                                capture_output=True, text=True, timeout=300, check=False)
        assert result.returncode == 2 and result.stdout == "", result.stdout + result.stderr
        assert result.stderr.count("\n") == 1 and expected in result.stderr, result.stderr
        assert not (source / "dist").exists()
