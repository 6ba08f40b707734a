"""perfgroup runs as root: no shell ever sees user input, and the engine reaches no network."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "perfgroup"
FORBIDDEN_CALLS = {"system", "popen", "getoutput", "getstatusoutput"}
FORBIDDEN_IMPORTS = {"socket", "urllib", "http", "requests", "ssl", "ftplib"}


def sources() -> list[Path]:
    plugins = PACKAGE.parent / "plugins"  # the collection's modules and callback (module_utils is the engine)
    return sorted(PACKAGE.rglob("*.py")) + sorted((plugins / "modules").glob("*.py")) + sorted((plugins / "callback").glob("*.py"))


def test_no_shell_true_and_no_shell_helpers() -> None:
    for path in sources():
        tree = ast.parse(path.read_text(), str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.keyword) and node.arg == "shell":
                raise AssertionError(f"{path}:{node.value.lineno} passes shell=")
            if isinstance(node, ast.Attribute) and node.attr in FORBIDDEN_CALLS:
                raise AssertionError(f"{path}:{node.lineno} uses {node.attr}")


def test_engine_imports_no_network_module() -> None:
    for path in sorted((PACKAGE / "engine").rglob("*.py")):
        tree = ast.parse(path.read_text(), str(path))
        for node in ast.walk(tree):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else (
                [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            for name in names:
                assert name.split(".")[0] not in FORBIDDEN_IMPORTS, f"{path} imports {name}"


def test_engine_imports_only_stdlib_and_itself() -> None:
    import sys

    # CPython's own sha256 module is _sha256 up to 3.11 and _sha2 from 3.12 (facts.sha256_text).
    stdlib = sys.stdlib_module_names | {"__future__", "_sha2", "_sha256"}
    for path in sorted((PACKAGE / "engine").rglob("*.py")):
        tree = ast.parse(path.read_text(), str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                for alias in node.names:
                    assert alias.name.split(".")[0] in stdlib, f"{path}: {alias.name}"
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                assert (node.module or "").split(".")[0] in stdlib, f"{path}: {node.module}"
