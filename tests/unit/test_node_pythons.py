"""What ships to nodes runs on every node Python of the matrix (3.8: ansible-core's oldest target;
3.9: RHEL 9; 3.10: Ubuntu 22.04; 3.12; 3.13): the engine's unit tests run under each interpreter,
and a static check refuses syntax or standard-library names newer than 3.8 on the node side and
newer than 3.9 in the controller package (`pip install perfgroup` on RHEL 9's python3)."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
UNIT = REPO / "tests" / "unit"
PYENV = Path("/root/.pyenv/versions")
NODE_PYTHONS = {"3.8": "3.8.18", "3.9": "3.9.18", "3.10": "3.10.13", "3.12": "3.12.1", "3.13": "3.13.0"}
# pytest for each interpreter, installed by .ci/run (pip --target), never into the interpreter itself.
PYTEST_TARGETS = REPO / ".cache" / "node-pythons"
NODE_SIDE = ("perfgroup/engine", "roles/perf_users/library", "plugins/modules")
CONTROLLER = ("perfgroup", "plugins")  # all of the package, and the collection's controller plugins
# perfgroup.artifacts (stdlib + jinja2) renders what the node-side tests compare against, and
# prometheus_client parses what report_formats prints for `perfgroup-node audit --format prometheus`:
# both are installed next to pytest for each node Python (NODE_LIBRARIES), so those tests run there too.
ENGINE_ONLY_IMPORTS = ("perfgroup.engine", "perfgroup.artifacts", "prometheus_client", "factsdata", "pytest",
                       "__future__")
NODE_LIBRARIES = ("pytest", "jinja2", "prometheus_client")


def engine_only(path: Path) -> bool:
    """A unit test module that imports nothing of the controller side (click, yaml, ansible)."""
    stdlib = sys.stdlib_module_names
    for node in ast.walk(ast.parse(path.read_text())):
        names = [a.name for a in node.names] if isinstance(node, ast.Import) else (
            [f"{node.module}.{a.name}" for a in node.names] if isinstance(node, ast.ImportFrom) and not node.level
            else [])
        for name in names:
            if not name.startswith(ENGINE_ONLY_IMPORTS) and name.split(".")[0] not in stdlib:
                return False
    return True


# Not this module (it starts the interpreters itself) nor static checks of the source, which read
# the controller's own interpreter (sys.stdlib_module_names is 3.10+).
NOT_RUNTIME = {Path(__file__).name, "test_no_shell.py", "test_inventory_example.py"}  # the last runs ansible-inventory
ENGINE_TESTS = sorted(str(p) for p in UNIT.glob("test_*.py") if p.name not in NOT_RUNTIME and engine_only(p))


def test_the_engine_suite_is_most_of_the_unit_suite() -> None:
    names = {Path(p).name for p in ENGINE_TESTS}
    assert {"test_plan.py", "test_findings.py", "test_capabilities.py", "test_actions.py"} <= names
    # The node entry point's own code: node files, reach, and the Nagios/Prometheus formats.
    assert {"test_node_files_plan.py", "test_reach_plan.py", "test_report_formats.py"} <= names
    assert not {"test_cli.py", "test_options.py", "test_errors.py", "test_artifacts.py"} & names  # click, yaml, tomllib


@pytest.mark.parametrize("version", sorted(NODE_PYTHONS))
def test_engine_unit_suite_under_node_python(version: str) -> None:
    python = PYENV / NODE_PYTHONS[version] / "bin" / "python"
    target = PYTEST_TARGETS / version
    assert python.exists(), f"{python} missing: these machines carry pyenv interpreters (see engineering notes)"
    missing = [name for name in NODE_LIBRARIES if not (target / name).is_dir()]
    assert not missing, f"{', '.join(missing)} missing in {target}: run .ci/run, which installs them for each node Python"
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


def test_controller_package_needs_nothing_newer_than_python_3_9() -> None:
    vermin = Path(sys.executable).with_name("vermin")
    result = subprocess.run([str(vermin), "-t=3.9-", "--violations", "--no-tips", *(str(REPO / p) for p in CONTROLLER)],
                            capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout


# What vermin does not see (it reads `list[int]` and `X | Y` as annotations, evaluated or not, or
# not at all): type expressions that run. With `from __future__ import annotations` (ruff's FA rules
# make every module that needs it have it) annotations are never evaluated; everything else is:
# type aliases, isinstance() tuples, cast() targets, default values, base classes.
BUILTIN_GENERICS = frozenset({"list", "dict", "tuple", "set", "frozenset", "type"})  # subscriptable from 3.9
TYPE_NAMES = BUILTIN_GENERICS | {"int", "str", "float", "bytes", "bytearray", "bool", "complex", "object"}


def runtime_type_expressions(source: str, floor: tuple[int, int]) -> list[str]:
    """`line: what` for each type expression evaluated at run time that Python `floor` rejects:
    PEP 604 unions (`int | str`, 3.10) and, below 3.9, PEP 585 generics (`list[int]`)."""
    tree = ast.parse(source)
    typing_names = {a.asname or a.name for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)
                    and n.module in ("typing", "collections.abc") for a in n.names}
    future = any(isinstance(n, ast.ImportFrom) and n.module == "__future__" and
                 any(a.name == "annotations" for a in n.names) for n in tree.body)
    skipped: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skipped.update(id(n) for stmt in node.body for n in ast.walk(stmt))
        if not future:
            continue
        annotations = ([node.annotation] if isinstance(node, (ast.arg, ast.AnnAssign)) else
                       [node.returns] if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) else [])
        skipped.update(id(n) for a in annotations if a is not None for n in ast.walk(a))

    def is_type(node: ast.expr) -> bool:
        if isinstance(node, ast.Constant):
            return node.value is None
        if isinstance(node, ast.Name):
            return node.id in TYPE_NAMES or node.id in typing_names
        if isinstance(node, ast.Attribute):
            return isinstance(node.value, ast.Name) and node.value.id in ("typing", "abc")
        if isinstance(node, ast.Subscript):
            return is_type(node.value)
        return isinstance(node, ast.BinOp) and isinstance(node.op, ast.BitOr) and is_type(node.left)

    found = []
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.BitOr) and floor < (3, 10) and (
                is_type(node.left) or is_type(node.right)):
            found.append(f"{node.lineno}: {ast.unparse(node)} (a union of types needs Python 3.10)")
        elif (isinstance(node, ast.Subscript) and isinstance(node.value, ast.Name) and floor < (3, 9)
              and node.value.id in BUILTIN_GENERICS):
            found.append(f"{node.lineno}: {ast.unparse(node)} (subscripting {node.value.id} needs Python 3.9)")
    return found


def test_the_runtime_type_check_catches_what_vermin_and_ruff_miss() -> None:
    probe = textwrap.dedent('''
        from __future__ import annotations
        from typing import Optional, TYPE_CHECKING
        Alias = Optional[list[int]]
        def f(x: int | None, y: list[int] = []) -> dict[str, int] | None:
            return isinstance(x, int | str)
        if TYPE_CHECKING:
            Quiet = Optional[list[int]] | None
        flags = 4 | 2
        merged = left | right
    ''')
    assert runtime_type_expressions(probe, (3, 8)) == [
        "4: list[int] (subscripting list needs Python 3.9)",
        "6: int | str (a union of types needs Python 3.10)",
    ]
    assert runtime_type_expressions(probe, (3, 9)) == ["6: int | str (a union of types needs Python 3.10)"]
    # Without the future import annotations run too; ruff's FA102 asks for the import first.
    assert runtime_type_expressions("def f(x: list[int]) -> None: ...", (3, 8)) == [
        "1: list[int] (subscripting list needs Python 3.9)"]


@pytest.mark.parametrize(("paths", "floor"), [(NODE_SIDE, (3, 8)), (CONTROLLER, (3, 9))])
def test_no_runtime_type_expression_is_newer_than_the_floor(paths: tuple[str, ...], floor: tuple[int, int]) -> None:
    files = sorted({f for p in paths if (REPO / p).exists() for f in (REPO / p).rglob("*.py")})
    assert len(files) > 10
    found = [f"{f.relative_to(REPO)}:{line}" for f in files for line in runtime_type_expressions(f.read_text(), floor)]
    assert not found, found


def test_ruff_refuses_annotations_that_would_run_on_an_old_python() -> None:
    """Without the future import an annotation is evaluated: the repository's ruff settings refuse it."""
    ruff = Path(sys.executable).with_name("ruff")
    probe = "from typing import Optional\n\nx: Optional[list[int]] = None\n"
    result = subprocess.run([str(ruff), "check", "--no-cache", "--config", str(REPO / "pyproject.toml"),
                             "--stdin-filename", str(REPO / "perfgroup" / "engine" / "probe.py"), "-"],
                            input=probe, capture_output=True, text=True, check=False)
    assert result.returncode == 1 and "FA102" in result.stdout, result.stdout + result.stderr
