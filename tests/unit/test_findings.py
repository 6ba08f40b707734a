from __future__ import annotations

import struct
from typing import Any

import pytest
from factsdata import GID, caps, converged, desired, dirs, replace, state, with_copy

from perfgroup.engine.capabilities import decode
from perfgroup.engine.facts import GroupFacts, NodeFacts, PathFacts, SourceFacts, TextFacts
from perfgroup.engine.findings import audit, exit_code, worst


def non_ok(facts: NodeFacts, **want: Any) -> dict[str, str]:
    return {f.id: f.severity for f in audit(facts, desired(**want)) if f.severity != "ok"}


def test_converged_node_is_all_ok() -> None:
    found = audit(converged(), desired())
    assert worst(found) == "ok" and exit_code(found) == 0
    assert {"group.present", "copy.ok", "caps.ok", "path.ok", "copy.current", "paranoid.ok"} <= {f.id for f in found}


V3 = decode(struct.pack("<6I", 0x03000001, 0, 0, 1 << 6, 0, 100000))

CASES: list[tuple[str, NodeFacts, str, str]] = [
    ("o+x", with_copy(converged(), mode=0o751), "copy.world_access", "critical"),
    ("o+r", with_copy(converged(), mode=0o754), "copy.world_access", "critical"),
    ("g+w", with_copy(converged(), mode=0o770), "copy.group_writable", "critical"),
    ("setuid", with_copy(converged(), mode=0o4750), "copy.setid", "critical"),
    ("g-x", with_copy(converged(), mode=0o740), "copy.mode", "warning"),
    ("user owner", with_copy(converged(), uid=1000), "copy.owner", "critical"),
    ("wrong group", with_copy(converged(), gid=0), "copy.group", "critical"),
    ("hard link", with_copy(converged(), nlink=2), "copy.hardlinked", "warning"),
    ("not elf", with_copy(converged(), is_elf=False), "copy.not_elf", "critical"),
    ("unreadable and changed", with_copy(converged(), is_elf=None, sha256=None), "copy.unverifiable", "warning"),
    ("symlink", with_copy(converged(), kind="symlink"), "copy.not_file", "critical"),
    ("missing", with_copy(converged(), kind="missing"), "copy.missing", "critical"),
    ("no caps", with_copy(converged(), caps=None), "caps.missing", "critical"),
    ("sys_admin extra", with_copy(converged(), caps=caps("cap_perfmon", "cap_sys_admin")), "caps.excessive", "critical"),
    ("setuid cap", with_copy(converged(), caps=caps("cap_perfmon", "cap_setuid")), "caps.excessive", "critical"),
    ("ipc_lock extra", with_copy(converged(), caps=caps("cap_perfmon", "cap_ipc_lock")), "caps.extra", "warning"),
    ("not effective", with_copy(converged(), caps=caps("cap_perfmon", effective=False)), "caps.not_effective", "critical"),
    ("v3 namespaced", with_copy(converged(), caps=V3), "caps.namespaced", "critical"),
    ("syslog missing under kptr 1", replace(converged(), kptr_restrict=1), "caps.incomplete", "warning"),
    ("kptr 2", replace(converged(), kptr_restrict=2), "kptr_restrict.hidden", "warning"),
    ("modified", with_copy(converged(), sha256="6" * 64), "copy.modified", "critical"),
    ("stale", replace(converged(), source=SourceFacts("/usr/bin/perf", "/usr/bin/perf", "7" * 64)),
     "copy.stale", "warning"),
    ("world-writable dir", replace(converged(), dirs=dirs(**{
        "/usr/local/libexec/perfgroup": PathFacts("/usr/local/libexec/perfgroup", "dir", 0, 0, 0o777, 2)})),
     "path.unsafe", "critical"),
    ("user-owned dir", replace(converged(), dirs=dirs(**{
        "/usr/local": PathFacts("/usr/local", "dir", 1000, 1000, 0o755, 2)})), "path.unsafe", "critical"),
    ("nosuid", replace(converged(), nosuid=True), "mount.nosuid", "critical"),
    ("paranoid 1", replace(converged(), paranoid=1), "paranoid.low", "critical"),
    ("paranoid -1", replace(converged(), paranoid=-1), "paranoid.low", "critical"),
    ("not persisted", replace(converged(), persisted_paranoid=None), "paranoid.not_persisted", "warning"),
    ("persisted low", replace(converged(), persisted_paranoid=0, persisted_in="/etc/sysctl.conf"),
     "paranoid.not_persisted", "warning"),
    ("dropin edited", replace(converged(), sysctl_dropin=TextFacts("x", "# mine\n")), "sysctl.modified", "warning"),
    ("profile gone", replace(converged(), profile=TextFacts("x", None)), "profile.missing", "warning"),
    ("profile edited", replace(converged(), profile=TextFacts("x", "PATH=/tmp:$PATH")), "profile.modified", "warning"),
    ("group gone", replace(converged(), group=GroupFacts("perf_users", None)), "group.missing", "critical"),
    ("gid changed", replace(converged(), state=state(gid=GID + 1)), "group.gid_changed", "warning"),
    ("lockdown", replace(converged(), lockdown="confidentiality"), "lockdown.confidentiality", "warning"),
    ("selinux", replace(converged(), selinux="enforcing"), "selinux.enforcing", "warning"),
    ("no state", replace(converged(), state=None, state_error="missing"), "state.missing", "warning"),
    ("bad state", replace(converged(), state=None, state_error="unusable (not JSON)"), "state.unusable", "warning"),
]


@pytest.mark.parametrize(("facts", "finding", "severity"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_each_problem_has_its_finding(facts: NodeFacts, finding: str, severity: str) -> None:
    found = non_ok(facts)
    assert found.get(finding) == severity, found


def test_fallback_kernel_expects_sys_admin_and_does_not_call_it_excessive() -> None:
    facts = with_copy(replace(converged(), cap_last_cap=37),
                      caps=caps("cap_sys_admin", "cap_sys_ptrace", "cap_syslog"))
    assert non_ok(facts) == {}


def test_keep_paranoid_makes_low_paranoid_a_warning_and_skips_persistence() -> None:
    facts = replace(converged(), paranoid=1, persisted_paranoid=None, state=state(keep_paranoid=True))
    assert non_ok(facts) == {"paranoid.low": "warning"}


def test_recorded_override_is_expected_until_auto() -> None:
    facts = with_copy(replace(converged(), state=state(caps=("cap_ipc_lock", "cap_perfmon"), caps_override=True)),
                      caps=caps("cap_perfmon", "cap_ipc_lock"))
    assert non_ok(facts) == {}
    assert non_ok(facts, caps_auto=True) == {"caps.extra": "warning"}


def test_exit_code_is_the_worst() -> None:
    assert exit_code(audit(with_copy(converged(), nlink=2), desired())) == 1
    assert exit_code(audit(with_copy(converged(), mode=0o755), desired())) == 2
