"""reach_rules.py: tracefs and mlock-budget findings over plain facts."""

from __future__ import annotations

import pytest
from factsdata import CLOSED, GID, OPENED, TRACING, converged, desired, replace, state

from perfgroup.engine import (
    reach_rules,
)
from perfgroup.engine.findings import audit
from perfgroup.engine.reach_facts import ReachFacts


def ids(facts_access: ReachFacts, kept: bool = False, caps: tuple[str, ...] = ("cap_ipc_lock",)) -> dict[str, str]:
    return {f[0]: f[1] for f in reach_rules.findings(facts_access, "perf_users", GID, kept, caps, True)}


@pytest.mark.parametrize(("facts_access", "kept", "expected"), [
    (CLOSED, False, {"tracefs.closed": "warning"}),
    (CLOSED, True, {"tracefs.closed": "ok"}),
    (OPENED, False, {"tracefs.ok": "ok"}),
    (CLOSED._replace(tracefs=((TRACING, 0o755, 0),)), False, {"tracefs.open": "warning"}),
    (CLOSED._replace(tracefs=((TRACING, 0o755, GID),)), True, {"tracefs.open": "warning"}),
    (ReachFacts(mlock_kb=516), False, {"tracefs.missing": "ok"}),
])
def test_tracefs_findings(facts_access: ReachFacts, kept: bool, expected: dict[str, str]) -> None:
    found = ids(facts_access, kept)
    assert {k: v for k, v in found.items() if k.startswith("tracefs.")} == expected


def test_mlock_budget_warns_only_without_cap_ipc_lock() -> None:
    assert ids(CLOSED)["mlock.budget"] == "ok"
    assert ids(CLOSED, caps=("cap_perfmon", "cap_syslog"))["mlock.budget"] == "warning"
    assert ids(CLOSED._replace(mlock_kb=16384), caps=("cap_perfmon",))["mlock.budget"] == "ok"
    assert "1032 KiB" in next(f[2] for f in reach_rules.findings(CLOSED, "g", GID, False, (), True) if f[0] == "mlock.budget")


def test_audit_reports_tracefs() -> None:
    found = {f.id: f.severity for f in audit(replace(converged(), reach=CLOSED), desired())}
    assert found["tracefs.closed"] == "warning"
    kept = replace(converged(), reach=CLOSED, state=state(tracefs_kept=True))
    assert {f.id: f.severity for f in audit(kept, desired())}["tracefs.closed"] == "ok"
