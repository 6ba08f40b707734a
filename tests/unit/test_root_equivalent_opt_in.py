"""The root-equivalent opt-in is a set each setup run decides from its own input (issue 10): an
earlier run's --allow-root-equivalent is never inherited."""

from __future__ import annotations

import pytest
from factsdata import CAPS, caps, converged, desired, replace, state, with_copy

from perfgroup.engine.errors import RefusedError
from perfgroup.engine.plan import make

LEGACY = ("cap_sys_admin", "cap_sys_ptrace", "cap_syslog")
OLD_KERNEL_OPTED_IN = with_copy(replace(converged(), cap_last_cap=37, state=state(
    caps=LEGACY, root_equivalent_caps=("cap_sys_ptrace", "cap_sys_admin"))), caps=caps(*LEGACY))


def test_an_old_kernel_opted_in_before_is_refused_like_a_fresh_node_without_the_flag() -> None:
    with pytest.raises(RefusedError, match=r"no CAP_PERFMON.*lowering perf_event_paranoid.*--allow-root-equivalent"):
        make(OLD_KERNEL_OPTED_IN, desired())
    assert make(OLD_KERNEL_OPTED_IN, desired(allow_root_equivalent=True)).actions == ()


def test_on_5_8_a_run_without_the_flag_takes_cap_sys_ptrace_away() -> None:
    granted = (*CAPS, "cap_sys_ptrace")
    facts = with_copy(replace(converged(), kernel_release="5.8.0", state=state(
        caps=granted, root_equivalent_caps=("cap_sys_ptrace",))), caps=caps(*granted))
    assert make(facts, desired(allow_root_equivalent=True)).actions == ()
    plan = make(facts, desired())
    assert "cap_sys_ptrace" not in plan.caps.caps and plan.caps.root_equivalent == frozenset()
    assert [a.kind for a in plan.actions] == ["fix_copy"]
    assert not any("BECOME ROOT" in note for note in plan.notes)


def test_a_recorded_root_equivalent_override_needs_the_flag_again() -> None:
    recorded = ("cap_perfmon", "cap_sys_ptrace")
    facts = with_copy(replace(converged(), state=state(caps=recorded, caps_override=True,
                                                      root_equivalent_caps=("cap_sys_ptrace",))), caps=caps(*recorded))
    with pytest.raises(RefusedError, match=r"recorded --caps .*cap_sys_ptrace.*not remembered.*--caps auto"):
        make(facts, desired())
    plan = make(facts, desired(allow_root_equivalent=True))
    assert plan.actions == () and any("MEMBERS CAN BECOME ROOT" in note for note in plan.notes)
    assert "cap_sys_ptrace" not in make(facts, desired(caps_auto=True)).caps.caps
