"""What ships to nodes runs on every node Python of the matrix (3.8: ansible-core's oldest target;
3.9: RHEL 9; 3.10: Ubuntu 22.04; 3.12; 3.13): the engine's unit tests run under each interpreter,
and a static check refuses syntax or standard-library names newer than 3.8."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
UNIT = REPO / "tests" / "unit"
PYENV = Path("/root/.pyenv/versions")
NODE_PYTHONS = {"3.8": "3.8.18", "3.9": "3.9.18", "3.10": "3.10.13", "3.12": "3.12.1", "3.13": "3.13.0"}
# pytest for each interpreter, installed by .ci/run (pip --target), never into the interpreter itself.
PYTEST_TARGETS = REPO / ".cache" / "node-pythons"
NODE_SIDE = ("perfgroup/engine", "roles/perf_users/library", "plugins/modules")
ENGINE_ONLY_IMPORTS = ("perfgroup.engine", "factsdata", "pytest", "__future__")


def engine_only(path: Path) -> bool:
    """A unit test module that imports nothing of the controller side (click, yaml, ansible)."""
    stdlib = sys.stdlib_module_names
    for node in ast.walk(ast.parse(path.read_text())):
        names = [a.name for a in node.names] if isinstance(node, ast.Import) else (
            [node.module or ""] if isinstance(node, ast.ImportFrom) and not node.level else [])
        for name in names:
            if not name.startswith(ENGINE_ONLY_IMPORTS) and name.split(".")[0] not in stdlib:
                return False
    return True


# Not this module (it starts the interpreters itself) nor static checks of the source, which read
# the controller's own interpreter (sys.stdlib_module_names is 3.10+).
NOT_RUNTIME = {Path(__file__).name, "test_no_shell.py"}
ENGINE_TESTS = sorted(str(p) for p in UNIT.glob("test_*.py") if p.name not in NOT_RUNTIME and engine_only(p))


def test_the_engine_suite_is_most_of_the_unit_suite() -> None:
    names = {Path(p).name for p in ENGINE_TESTS}
    assert {"test_plan.py", "test_findings.py", "test_capabilities.py", "test_actions.py"} <= names


@pytest.mark.parametrize("version", sorted(NODE_PYTHONS))
def test_engine_unit_suite_under_node_python(version: str) -> None:
    python = PYENV / NODE_PYTHONS[version] / "bin" / "python"
    target = PYTEST_TARGETS / version
    assert python.exists(), f"{python} missing: these machines carry pyenv interpreters (see engineering notes)"
    assert target.is_dir(), f"{target} missing: run .ci/run, which installs pytest for each node Python"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(target), str(REPO), str(UNIT)]),
           "PYTHONDONTWRITEBYTECODE": "1"}
    result = subprocess.run(
        [str(python), "-m", "pytest", "-q", "-p", "no:cacheprovider", "--rootdir", str(REPO), "-c", os.devnull,
         *ENGINE_TESTS],
        capture_output=True, text=True, env=env, cwd=REPO, timeout=600, check=False,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert " passed" in result.stdout


def test_node_side_code_needs_nothing_newer_than_python_3_8() -> None:
    vermin = Path(sys.executable).with_name("vermin")
    paths = [str(REPO / p) for p in NODE_SIDE if (REPO / p).exists()]
    result = subprocess.run([str(vermin), "-t=3.8-", "--violations", "--no-tips", "--backport", "typing", *paths],
                            capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout
