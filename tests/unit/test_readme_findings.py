"""Every finding id the engine can emit is listed in docs/findings.md, and
every id listed there exists: admins wire monitoring to these ids."""

from __future__ import annotations

import ast
import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
ENGINE = REPO / "perfgroup" / "engine"


ID = re.compile(r"^[a-z_]+\.[a-z_]+$")


def engine_ids() -> tuple[set[str], set[str]]:
    """Ids the engine emits: first arguments of Finding(...); and the suffixes of ids built from an f-string
    (f"{kind}.missing" for sysctl/profile, f"verify.{workload}")."""
    found, suffixes = set(), set()
    for path in ENGINE.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            first = None
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "Finding" and node.args:
                first = node.args[0]
            if isinstance(first, ast.Constant) and isinstance(first.value, str) and ID.match(first.value):
                found.add(first.value)
            elif isinstance(first, ast.JoinedStr):
                tail = first.values[-1]
                suffixes.add(tail.value if isinstance(tail, ast.Constant) else ".<workload>")
    return found, suffixes


def readme_ids() -> set[str]:
    section = (REPO / "docs" / "findings.md").read_text()
    listed = set()
    for prefix, names in re.findall(r"`([a-z_]+)\.([a-z_|<>]+)`", section):
        listed |= {f"{prefix}.{name}" for name in names.split("|")}
    return listed


def test_the_engine_emits_findings() -> None:
    found, suffixes = engine_ids()
    assert len(found) >= 80  # README: audit "checks 80+ ways it can go wrong"
    assert {".missing", ".modified", ".<workload>"} <= suffixes


def test_every_finding_id_is_in_the_readme() -> None:
    missing = sorted(engine_ids()[0] - readme_ids())
    assert missing == [], f"docs/findings.md does not list {missing}"


def test_the_readme_lists_no_id_the_engine_does_not_emit() -> None:
    found, suffixes = engine_ids()
    unknown = sorted(i for i in readme_ids() - found if not any(i.endswith(s) for s in suffixes))
    assert unknown == [], f"docs/findings.md lists finding ids no code emits: {unknown}"
