"""perf-shell's pure parts, from tables of plain data: input checks (--shell-caps), the plan's
refusals and notes, the audit's findings, verify's capsh arguments, and the nosuid decision."""

from __future__ import annotations

from typing import Any

import pytest
from factsdata import converged, desired, replace, state

from perfgroup.engine import findings, plan, shell_plan, shell_rules, verify
from perfgroup.engine.errors import RefusedError
from perfgroup.engine.node_files_rules import CHECKS, owned
from perfgroup.engine.paths import VISUDO, shell_paths
from perfgroup.engine.shell_facts import ShellFacts, capsh_knows_iab
from perfgroup.engine.validate import desired_from_input

READY = ShellFacts(asked=True, sudo=True, capsh="/usr/sbin/capsh", capsh_iab=True)


@pytest.mark.parametrize(("given", "extra"), [
    ({"shell": True}, frozenset()),
    ({"shell": True, "shell_caps": "cap_syslog, cap_perfmon"}, frozenset({"cap_syslog"})),
    ({"shell": True, "shell_caps": "cap_sys_ptrace", "allow_root_equivalent": True}, frozenset({"cap_sys_ptrace"})),
])
def test_shell_caps_accepted(given: dict[str, Any], extra: frozenset[str]) -> None:
    made = desired_from_input(group="g", **given)
    assert made.shell and made.shell_extra_caps == extra


@pytest.mark.parametrize(("given", "message"), [
    ({"shell_caps": "cap_syslog"}, "give --shell too"),
    ({"shell": True, "shell_caps": "cap_sys_ptrace"}, "would let every member become root"),
    ({"shell": True, "shell_caps": "cap_sys_admin"}, "would let every member become root"),
    ({"shell": True, "shell_caps": "cap_net_raw"}, "not needed for profiling"),
    ({"shell": True, "shell_caps": "all"}, "--shell-caps"),
    ({"shell": True, "shell_caps": "cap_nosuch"}, "--shell-caps"),
])
def test_shell_caps_refused(given: dict[str, Any], message: str) -> None:
    with pytest.raises(RefusedError, match=message):
        desired_from_input(group="g", **given)


@pytest.mark.parametrize(("shell", "message"), [
    (ShellFacts(asked=True, capsh="/usr/sbin/capsh", capsh_iab=True), "sudo is not installed"),
    (ShellFacts(asked=True, sudo=True), "capsh is not installed"),
    (ShellFacts(asked=True, sudo=True, capsh="/usr/sbin/capsh"), "has no --iab"),
])
def test_the_plan_refuses_where_the_shell_cannot_work(shell: ShellFacts, message: str) -> None:
    with pytest.raises(RefusedError, match=message):
        shell_plan.plan(shell, desired(shell=True), 40)


@pytest.mark.parametrize(("cap_last_cap", "extra", "expect"), [
    (40, frozenset(), ["hold cap_perfmon ambient"]),
    (38, frozenset(), ["hold cap_perfmon ambient", "older than 5.9"]),
    (39, frozenset({"cap_sys_ptrace"}), ["hold cap_sys_ptrace,cap_perfmon ambient", "MEMBERS CAN BECOME ROOT"]),
    (37, frozenset({"cap_sys_admin"}), ["hold cap_sys_admin,cap_perfmon ambient", "MEMBERS CAN BECOME ROOT"]),
])
def test_the_plan_says_what_sessions_hold(cap_last_cap: int, extra: frozenset[str], expect: list[str]) -> None:
    notes = shell_plan.plan(READY, desired(shell=True, shell_extra_caps=extra), cap_last_cap)
    assert len(notes) == len(expect) and all(word in note for word, note in zip(expect, notes))


def test_no_cap_perfmon_refuses_without_cap_sys_admin() -> None:
    with pytest.raises(RefusedError, match="no CAP_PERFMON"):
        shell_plan.plan(READY, desired(shell=True), 37)
    assert shell_plan.plan(READY, desired(), 37) == []  # not asked: nothing to say


@pytest.mark.parametrize(("shell", "ids"), [
    (ShellFacts(), set()),
    (READY, {"shell.ok"}),
    (READY._replace(sudo=False), {"shell.no_sudo"}),
    (READY._replace(capsh="", capsh_iab=False), {"shell.no_capsh"}),
    (READY._replace(capsh_iab=False), {"shell.capsh_no_iab"}),
    (READY._replace(sudoers_error="x:1: syntax error"), {"sudoers.invalid"}),
])
def test_audit_findings(shell: ShellFacts, ids: set[str]) -> None:
    assert {f.id for f in shell_rules.findings(shell, "g")} == ids


def test_a_nosuid_node_with_the_shell_skips_the_copy_and_its_checks() -> None:
    facts = replace(converged(), nosuid=True, shell=READY)
    with pytest.raises(RefusedError, match="give --shell"):
        plan.make(facts, desired())
    made = plan.make(facts, desired(shell=True))
    assert not any(a.kind in ("install_copy", "fix_copy") for a in made.actions)
    assert any("members use perf-shell" in note for note in made.notes)
    gone = replace(facts, state=state(shell=True), copy=replace(facts.copy, node=replace(facts.copy.node, kind="missing")))
    found = {f.id for f in findings.audit(gone, desired())}
    assert "copy.shell_only" in found and not {"copy.missing", "mount.nosuid", "caps.missing"} & found


def test_the_drop_in_is_checked_by_visudo_and_remove_may_delete_the_shell_files() -> None:
    assert CHECKS["sudoers"] == (VISUDO, "-cf")
    assert all(owned("g", path) for path in shell_paths("g"))
    assert not owned("g", "/etc/sudoers.d/other") and not owned("g", "/usr/local/bin/other")


def test_verify_starts_the_session_as_the_helper_does() -> None:
    member = verify.Identity(4000000000, (995,), "/run/x/member")
    args = verify.session_args(verify.Session("/usr/sbin/capsh", ("cap_perfmon", "cap_syslog")), member, ("perf", "-a"))
    assert args == ("--iab=^cap_perfmon,^cap_syslog", "--secbits=239", "--gid=4000000000", "--groups=995,4000000000",
                    "--uid=4000000000", "--", "-c", 'exec "$@"', "perf-shell", "perf", "-a")


def test_capsh_iab_is_found_in_the_binary(tmp_path: Any) -> None:
    new, old = tmp_path / "new", tmp_path / "old"
    new.write_bytes(b"\x7fELF...usage: --iab=... --secbits=")
    old.write_bytes(b"\x7fELF...usage: --inh=... --secbits=")
    assert capsh_knows_iab(str(new)) and not capsh_knows_iab(str(old)) and not capsh_knows_iab(str(tmp_path / "none"))


def test_the_helper_and_verify_agree_on_the_session() -> None:
    from perfgroup import artifacts

    rendered = {a.kind: a for a in artifacts.setup_artifacts("g", "/usr/local/libexec/perfgroup/g/perf", perf_shell=True,
                                                           shell_caps="cap_syslog")}
    helper = rendered["shell-helper"]
    assert (helper.path, helper.mode) == (shell_paths("g")[1], 0o755)
    assert f"--iab=^cap_perfmon,^cap_syslog --secbits={verify.SESSION_SECBITS} --user=" in helper.content
    assert (rendered["sudoers"].path, rendered["sudoers"].mode) == (shell_paths("g")[2], 0o440)
    assert "%g ALL=(root) NOPASSWD: /usr/local/libexec/perfgroup/g/perf-shell\n" in rendered["sudoers"].content
    assert rendered["shell"].path == shell_paths("g")[0]


MOUNTINFO = """\
22 1 0:21 / / rw,relatime shared:1 - ext4 /dev/sda1 rw
30 22 0:40 / /home rw,nosuid - nfs4 server:/home rw,vers=4.2
31 22 0:41 / /usr/local/libexec\\040x rw - vfat /dev/sdb1 rw
"""


@pytest.mark.parametrize(("path", "fstype"), [
    ("/usr/local/libexec/perfgroup/g", "ext4"), ("/home/apps/perf", "nfs4"), ("/homework", "ext4"),
    ("/usr/local/libexec x/g", "vfat"), ("/", "ext4"),
])
def test_the_filesystem_of_the_copy_is_read_from_mountinfo(path: str, fstype: str) -> None:
    from perfgroup.engine.facts import fstype_at

    assert fstype_at(path, MOUNTINFO) == fstype


def test_a_filesystem_without_xattrs_is_like_nosuid() -> None:
    facts = replace(converged(), fstype="nfs4", shell=READY)
    with pytest.raises(RefusedError, match=r"nfs4, which cannot hold file capabilities.*give --shell"):
        plan.make(facts, desired())
    made = plan.make(facts, desired(shell=True))
    assert not any(a.kind in ("install_copy", "fix_copy") for a in made.actions)
    assert plan.make(replace(converged(), fstype="xfs"), desired()).caps.caps  # xattrs: the copy as always
