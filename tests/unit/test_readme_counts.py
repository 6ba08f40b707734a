"""The README's safety table gives the number of hostile inputs and drift cases: both come from
the tests' own tables (CASES, DRIFTS), so the README cannot drift from what is tested.

`python tests/unit/test_readme_counts.py --write` rewrites the two numbers in README.md."""

from __future__ import annotations

import ast
import re
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
README = REPO / "README.md"
TABLES = {
    # README phrase after the number -> (test file, list name)
    "hostile or mistaken inputs": ("tests/integration/test_hostile_input.py", "CASES"),
    "drift cases": ("tests/integration/test_one_node.py", "DRIFTS"),
}


def count(path: str, name: str) -> int:
    """Entries of a module-level list literal, read without importing the test module."""
    for node in ast.parse((REPO / path).read_text()).body:
        targets = node.targets if isinstance(node, ast.Assign) else [node.target] if isinstance(node, ast.AnnAssign) else []
        if any(isinstance(t, ast.Name) and t.id == name for t in targets):
            assert isinstance(node.value, ast.List), f"{path}: {name} is not a list literal"
            return len(node.value.elts)
    raise AssertionError(f"{path} has no {name}")


def pattern(phrase: str) -> re.Pattern[str]:
    return re.compile(r"^\| (\d+) " + re.escape(phrase), re.M)


def expected() -> dict[str, int]:
    return {phrase: count(*where) for phrase, where in TABLES.items()}


def test_readme_counts_equal_the_test_tables() -> None:
    text = README.read_text()
    for phrase, number in expected().items():
        found = pattern(phrase).findall(text)
        assert found == [str(number)], f"README says {found} {phrase}, the tests have {number}: run {__file__} --write"


def test_the_tables_are_big_enough_to_mean_something() -> None:
    numbers = expected()
    assert numbers["hostile or mistaken inputs"] >= 60 and numbers["drift cases"] >= 30


if __name__ == "__main__" and sys.argv[1:] == ["--write"]:
    text = README.read_text()
    for phrase, number in expected().items():
        text = pattern(phrase).sub(f"| {number} {phrase}", text)
    README.write_text(text)
