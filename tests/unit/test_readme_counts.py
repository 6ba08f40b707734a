"""docs/safety.md's table lists the hostile inputs and the drift cases the tests run: number
and names both come from the tests' own tables (CASES, DRIFTS: the first item of each entry is
its label), so the document cannot drift from what is tested.

`python tests/unit/test_readme_counts.py --write` rewrites those two cells of docs/safety.md."""

from __future__ import annotations

import ast
import re
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
README = REPO / "docs" / "safety.md"
TABLES = {
    # README phrase after the number -> (test file, list name)
    "hostile or mistaken inputs": ("tests/integration/test_hostile_input.py", "CASES"),
    "drift cases": ("tests/integration/test_one_node.py", "DRIFTS"),
}


def labels(path: str, name: str) -> list[str]:
    """The first item of each entry of a module-level list literal, read without importing the test module."""
    for node in ast.parse((REPO / path).read_text()).body:
        targets = node.targets if isinstance(node, ast.Assign) else [node.target] if isinstance(node, ast.AnnAssign) else []
        if any(isinstance(t, ast.Name) and t.id == name for t in targets):
            assert isinstance(node.value, ast.List), f"{path}: {name} is not a list literal"
            found = []
            for entry in node.value.elts:
                assert isinstance(entry, ast.Tuple) and isinstance(entry.elts[0], ast.Constant), f"{path}: {name} entry without a label"
                label = entry.elts[0].value
                assert isinstance(label, str) and "|" not in label and label.strip() == label, label
                found.append(label)
            return found
    raise AssertionError(f"{path} has no {name}")


def cell_pattern(phrase: str) -> re.Pattern[str]:
    """The table's first cell: `| N phrase: label, label, ... |`."""
    return re.compile(r"^\| \d+ " + re.escape(phrase) + r"[^|\n]*", re.M)


def cell(phrase: str, names: list[str]) -> str:
    return f"| {len(names)} {phrase}: " + ", ".join(f"`{n}`" if n.startswith("-") else n for n in names) + " "


def expected() -> dict[str, list[str]]:
    return {phrase: labels(*where) for phrase, where in TABLES.items()}


def test_readme_lists_exactly_the_test_tables() -> None:
    text = README.read_text()
    for phrase, names in expected().items():
        found = cell_pattern(phrase).findall(text)
        assert found == [cell(phrase, names)], f"docs/safety.md's {phrase} cell differs from the tests: run {__file__} --write"


def test_every_label_is_unique() -> None:
    for names in expected().values():
        assert len(names) == len(set(names)), [n for n in names if names.count(n) > 1]


def test_the_tables_are_big_enough_to_mean_something() -> None:
    numbers = {phrase: len(names) for phrase, names in expected().items()}
    assert numbers["hostile or mistaken inputs"] >= 60 and numbers["drift cases"] >= 30


if __name__ == "__main__" and sys.argv[1:] == ["--write"]:
    text = README.read_text()
    for phrase, names in expected().items():
        text = cell_pattern(phrase).sub(lambda _m, p=phrase, n=names: cell(p, n), text)
    README.write_text(text)
