"""The engine's layers (perfgroup/engine/__init__.py LAYERS): every module in one layer; imports
only from its own or a lower layer, at the top of the file, without a cycle; late imports only of
the allowed kinds, each with its reason; and the audit path's light imports follow from that."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from perfgroup.engine import LAYERS

ENGINE = Path(__file__).resolve().parents[2] / "perfgroup" / "engine"
ORDER = list(LAYERS)
LAYER_OF = {module: ORDER.index(layer) for layer, modules in LAYERS.items() for module in modules}
ENTRY = ORDER.index("entry")
# Heavy standard-library modules the audit path imports only where it needs them (a converged
# node's audit never does): each such import must say why on its line.
LATE_STDLIB = {"argparse", "json", "_json", "hashlib", "_sha256", "_sha2", "gzip", "glob", "re", "shlex", "subprocess"}
# What the audit path (NHC and the textfile timer, every few minutes on every node) must not load.
NOT_ON_AUDIT_PATH = {"dataclasses", "json", "argparse", "subprocess", "typing"}
AUDIT_ENTRY = ("node_main", "audit")


class Imports:
    def __init__(self, module: str, source: str) -> None:
        self.module = module
        self.top: list[tuple[str, int]] = []  # engine modules imported at the top
        self.top_stdlib: set[str] = set()
        self.late: list[tuple[str, int, str]] = []  # (engine module or "std:name", line, its text)
        self.type_checking: list[tuple[str, int]] = []
        self.lines = source.splitlines()
        self._visit(ast.parse(source), in_function=False, in_type_checking=False)

    def _visit(self, node: ast.AST, in_function: bool, in_type_checking: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and isinstance(child.test, ast.Name) and child.test.id == "TYPE_CHECKING":
                self._visit(child, in_function, True)
                continue
            if isinstance(child, (ast.Import, ast.ImportFrom)):
                self._record(child, in_function, in_type_checking)
            self._visit(child, in_function or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)),
                        in_type_checking)

    def _record(self, node: ast.Import | ast.ImportFrom, in_function: bool, in_type_checking: bool) -> None:
        if isinstance(node, ast.ImportFrom) and node.level:
            targets = [node.module] if node.module else [alias.name for alias in node.names]
        else:
            names = [node.module or ""] if isinstance(node, ast.ImportFrom) else [a.name for a in node.names]
            targets = ["std:" + name.split(".")[0] for name in names]
        text = self.lines[node.lineno - 1]
        for target in targets:
            if in_type_checking:
                if not target.startswith("std:"):
                    self.type_checking.append((target, node.lineno))
            elif in_function:
                self.late.append((target, node.lineno, text))
            elif target.startswith("std:"):
                self.top_stdlib.add(target[4:])
            else:
                self.top.append((target, node.lineno))


def read_engine(overrides: dict[str, str] | None = None) -> dict[str, Imports]:
    sources = {path.stem: path.read_text() for path in ENGINE.glob("*.py") if path.stem != "__init__"}
    sources.update(overrides or {})
    return {name: Imports(name, text) for name, text in sources.items()}


def closure(graph: dict[str, Imports], start: tuple[str, ...]) -> set[str]:
    seen: set[str] = set()
    todo = list(start)
    while todo:
        name = todo.pop()
        if name not in seen:
            seen.add(name)
            todo += [target for target, _ in graph[name].top]
    return seen


def violations(graph: dict[str, Imports]) -> list[str]:
    audit_path = closure(graph, AUDIT_ENTRY) if all(m in graph for m in AUDIT_ENTRY) else set()
    found = [f"{name}: in no layer of LAYERS" for name in sorted(set(graph) - set(LAYER_OF))]
    found += [f"{name}: in LAYERS but no such module" for name in sorted(set(LAYER_OF) - set(graph))]
    for name, imports in sorted(graph.items()):
        own = LAYER_OF.get(name, -1)
        for target, line in imports.top:
            if LAYER_OF.get(target, 99) > own:
                found.append(f"{name}:{line}: imports {target} ({ORDER[LAYER_OF[target]] if target in LAYER_OF else '?'}) "
                             f"from a higher layer than its own ({ORDER[own] if own >= 0 else '?'})")
        found += [f"{name}:{line}: TYPE_CHECKING import of engine module {target}" for target, line in imports.type_checking]
        for target, line, text in imports.late:
            engine_module = not target.startswith("std:")
            if engine_module and own != ENTRY:
                found.append(f"{name}:{line}: imports {target} inside a function (only entry points choose a subcommand so)")
            elif not engine_module and (target[4:] not in LATE_STDLIB or (name not in audit_path and own != ENTRY)):
                found.append(f"{name}:{line}: imports {target[4:]} inside a function (not a heavy module of the audit path)")
            elif "#" not in text:
                found.append(f"{name}:{line}: late import of {target} without a one-line reason (# ...)")
    found += cycles(graph)
    for name in sorted(audit_path):
        for heavy in sorted(graph[name].top_stdlib & NOT_ON_AUDIT_PATH):
            found.append(f"{name}: on the audit path, imports {heavy} at the top")
    return found


def cycles(graph: dict[str, Imports]) -> list[str]:
    state: dict[str, int] = {}
    found: list[str] = []

    def visit(name: str, stack: list[str]) -> None:
        state[name] = 1
        for target, _ in graph[name].top:
            if target not in graph:
                continue
            if state.get(target) == 1:
                found.append("import cycle: " + " -> ".join([*stack[stack.index(target):], target]))
            elif target not in state:
                visit(target, [*stack, target])
        state[name] = 2

    for name in sorted(graph):
        if name not in state:
            visit(name, [name])
    return found


def test_the_engine_keeps_its_layers() -> None:
    assert violations(read_engine()) == []


PROBES = {
    "an upward import": ("facts", "from .apply import perform\n", "imports apply (write) from a higher layer"),
    "a late engine import": ("findings", "def f():\n    from . import facts\n", "inside a function"),
    "a TYPE_CHECKING import": ("policy", "if TYPE_CHECKING:\n    from .plan import Plan\n", "TYPE_CHECKING import"),
    "a late import without a reason": ("host", "def f():\n    import json\n", "without a one-line reason"),
    "a late import off the audit path": ("plan", "def f():\n    import json  # why\n", "not a heavy module of the audit path"),
    "a cycle within a layer": ("host", "from .trust import setup_made\n", "import cycle"),
    "subprocess on the audit path": ("reach_facts", "import subprocess\n", "on the audit path, imports subprocess"),
}


@pytest.mark.parametrize("probe", PROBES, ids=list(PROBES))
def test_a_probe_breaking_the_rule_is_caught(probe: str) -> None:
    module, added, expected = PROBES[probe]
    source = (ENGINE / f"{module}.py").read_text() + "\n" + added
    assert any(expected in line for line in violations(read_engine({module: source}))), probe


def test_the_audit_path_is_the_read_and_rules_layers_and_its_renderers() -> None:
    reached = closure(read_engine(), AUDIT_ENTRY)
    plan_and_above = {m for m, layer in LAYER_OF.items() if ORDER[layer] in ("plan", "flows")} - {"audit"}
    assert reached & plan_and_above == set()
    assert {"facts", "findings", "report_formats"} <= reached
