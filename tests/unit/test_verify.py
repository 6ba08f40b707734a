"""verify.py's pure parts: the verdict of a row, which workloads a node supports, kernel symbols in a report."""

from __future__ import annotations

import pytest

from perfgroup.engine import (
    verify,
)

ALLOWED = verify.Probe(True, 0, "ok")


REFUSED = verify.Probe(True, 255, "Error: Access ... is limited")


W = verify.WORKLOADS[0]


@pytest.mark.parametrize(("row", "ok"), [
    (verify.Row(W, ALLOWED, REFUSED), True),
    (verify.Row(W, REFUSED, REFUSED), False),
    (verify.Row(W, ALLOWED, ALLOWED), False),  # the stock perf lets a non-member in
    (verify.Row(W, ALLOWED, ALLOWED, non_member_expected="either (perf_event_paranoid < 2)"), True),
    (verify.Row(W, ALLOWED, None), True),
    (verify.Row(W, None, None, unavailable="tracefs is not mounted"), True),
])
def test_row_verdict(row: verify.Row, ok: bool) -> None:
    assert row.ok is ok


def test_verify_fails_only_on_a_supported_workload() -> None:
    good = verify.VerifyResult(ALLOWED, verify.Probe(False, None, "permission denied"), None,
                               rows=(verify.Row(W, ALLOWED, REFUSED), verify.Row(W, None, None, unavailable="x")))
    assert good.ok and good.as_dict()["workloads_ok"]
    bad = good.__class__(good.member, good.non_member, None, rows=(verify.Row(W, REFUSED, REFUSED),))
    assert not bad.ok and "NOT AS EXPECTED" in bad.matrix()[1] and "count_system" in bad.lines()[-1]


@pytest.mark.parametrize(("node", "needs", "reason"), [
    (verify.Node(2, 2, None, "", True), "kallsyms", "kptr_restrict=2"),
    (verify.Node(2, 1, None, "tracefs is not mounted", True), "tracefs", "not mounted"),
    (verify.Node(2, 1, "confidentiality", "", True), "tracefs", "lockdown"),
    (verify.Node(2, 1, None, "", False), "mlock", "cap_ipc_lock"),
    (verify.Node(2, 1, None, "", True), "", ""),
])
def test_unavailable_reasons(node: verify.Node, needs: str, reason: str) -> None:
    assert reason in node.unavailable(needs) and bool(node.unavailable(needs)) == bool(reason)


@pytest.mark.parametrize(("report", "found"), [
    ("    12.00%  [k] native_safe_halt\n", True),
    ("    12.00%  [k] 0xffffffff81a2b3c4\n", False),
    ("    12.00%  [.] main\n", False),
])
def test_kernel_symbol_in_report(report: str, found: bool) -> None:
    assert verify.has_kernel_symbol(report) is found
