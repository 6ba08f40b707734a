"""A mistyped group on a node set up for perf_users: every command answers "did you mean
perf_users?", never advises setting up the typo or deleting the real group's files, and changes
nothing. A node has one perfgroup group: a second one is refused with the reason, and allowed once
the first is removed."""

from __future__ import annotations

import json
from typing import Any

import pytest
from conftest import PERFGROUP, integration_possible
from node import Node

pytestmark = pytest.mark.integration

# (name, arguments, exit code, words that must appear, words that must not)
CASES: list[tuple[str, list[str], int, str, tuple[str, ...]]] = [
    ("audit", ["audit", "--group", "perf_user"], 2, "did you mean --group perf_users?",
     ("setup --group perf_user\n", "fix: perfgroup setup --group perf_user")),
    ("remove", ["remove", "--group", "perf_user"], 2, "did you mean `perfgroup remove --group perf_users`?",
     ("by hand", "/usr/local/bin/perf")),
    ("setup, second group", ["setup", "--group", "perf-users", "--no-verify"], 2,
     "A node has one perfgroup group", ("did not write", "refusing to overwrite")),
    ("setup --dry-run, second group", ["setup", "--group", "perf-users", "--dry-run"], 2,
     "did you mean --group perf_users?", ("did not write",)),
    ("members add", ["members", "add", "--group", "perf_user", "alice"], 2, "did you mean --group perf_users?",
     ("setup --group perf_user",)),
    ("verify", ["verify", "--group", "perf_user"], 2, "did you mean --group perf_users?", ("setup --group perf_user",)),
]


@pytest.fixture(scope="module")
def set_up() -> Any:
    reason = integration_possible()
    if reason:
        pytest.fail(reason)
    node = Node()
    try:
        node.ok("useradd -M -s /bin/sh alice")
        done = node.run([PERFGROUP, "setup", "--group", "perf_users", "--no-verify"])
        assert done.returncode == 0, done.stderr
        yield node, node.snapshot()
    finally:
        node.close()


@pytest.mark.parametrize(("args", "code", "words", "never"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_a_typo_gets_did_you_mean_and_changes_nothing(
    set_up: tuple[Node, dict[str, Any]], args: list[str], code: int, words: str, never: tuple[str, ...]
) -> None:
    node, before = set_up
    result = node.run([PERFGROUP, *args])
    said = result.stdout + result.stderr
    assert result.returncode == code, said
    assert words in said, said
    assert [bad for bad in never if bad in said] == [], said
    if code != 2 or args[0] != "audit":  # audit reports on stdout; the others refuse in one line
        assert len([line for line in result.stderr.splitlines() if line.strip()]) == 1, result.stderr
    assert node.snapshot() == before


def test_audit_json_names_the_typo_and_fixes_point_at_the_real_group(set_up: tuple[Node, dict[str, Any]]) -> None:
    node, _ = set_up
    result = node.run([PERFGROUP, "audit", "--group", "perf_user", "--json"])
    findings = json.loads(result.stdout)["findings"]
    assert findings[0]["id"] == "state.other_group" and findings[0]["severity"] == "critical"
    fixes = {f["fix"] for f in findings if f["fix"]}
    assert fixes == {"perfgroup audit --group perf_users"}, fixes


def test_the_real_group_still_audits_clean(set_up: tuple[Node, dict[str, Any]]) -> None:
    node, _ = set_up
    result = node.run([PERFGROUP, "audit", "--group", "perf_users", "--json"])
    ids = {f["id"] for f in json.loads(result.stdout)["findings"]}
    assert "state.other_group" not in ids and "state.present" in ids


def test_a_second_group_is_allowed_once_the_first_is_removed(users: Node) -> None:
    node = users
    assert node.run([PERFGROUP, "setup", "--group", "perf_users", "--no-verify"]).returncode == 0
    refused = node.run([PERFGROUP, "setup", "--group", "perf_ops", "--dry-run"])
    assert refused.returncode == 2 and "remove --group perf_users` first" in refused.stderr
    assert node.run([PERFGROUP, "remove", "--group", "perf_users"]).returncode == 0
    switched = node.run([PERFGROUP, "setup", "--group", "perf_ops", "--no-verify"])
    assert switched.returncode == 0, switched.stderr
