"""verify on a node without a copy (nosuid, no xattrs; setup --shell installed only perf-shell), from
plain data: whom the drop-in and the helper let in, what keeps members out, the member's and the
non-member's verdicts and lines, the --json fields, and audit --functional's findings."""

from __future__ import annotations

import stat
from typing import Any

import pytest
from factsdata import converged, desired, replace, state

from perfgroup.engine import converge, findings, shell_rules, verify
from perfgroup.engine.finding import CRITICAL, OK
from perfgroup.engine.paths import SHELL_COMMAND, shell_helper_path, shell_paths, sudoers_path
from perfgroup.engine.shell_facts import ShellFacts

GROUP = "perf_users"
HELPER = shell_helper_path(GROUP)
DROPIN = sudoers_path(GROUP)
SHA = "a" * 64
RULES = "\n".join(shell_rules.dropin_grants(GROUP)) + "\n"
READY = ShellFacts(asked=True, sudo=True, capsh="/usr/sbin/capsh", capsh_iab=True, dropin=RULES,
                   helper_mode=stat.S_IFREG | 0o755)


def shell_only_facts(**changes: Any) -> Any:
    """A converged shell-only node: nosuid where the copy would be, no copy, perf-shell recorded."""
    base = converged()
    files = tuple((path, SHA) for path in shell_paths(GROUP))
    facts = replace(base, nosuid=True, shell=READY, state=state(shell=True, files=base.state.files + files),
                    recorded_files=base.recorded_files + files,
                    copy=replace(base.copy, node=replace(base.copy.node, kind="missing")))
    return replace(facts, **changes)


def with_file(facts: Any, path: str, now: str | None) -> Any:
    return replace(facts, recorded_files=tuple((p, now if p == path else sha) for p, sha in facts.recorded_files))


def test_the_rendered_drop_in_holds_only_the_groups_rule() -> None:
    from perfgroup import artifacts

    rendered = {a.kind: a for a in artifacts.setup_artifacts(GROUP, f"/usr/local/libexec/perfgroup/{GROUP}/perf",
                                                           perf_shell=True)}
    assert shell_rules.dropin_rules(rendered["sudoers"].content) == list(shell_rules.dropin_grants(GROUP))
    assert shell_rules.dropin_problem(rendered["sudoers"].content, GROUP) is None


@pytest.mark.parametrize(("text", "problem"), [
    (None, None),  # missing: no one gets in (members' problem)
    (RULES, None),
    ("# a comment\n\n" + RULES.replace(" ALL=", "   ALL=") + "   # indented comment\n", None),
    (RULES + "bob ALL=(root) NOPASSWD: " + HELPER + "\n", "bob ALL=(root)"),
    (RULES + "ALL ALL=(ALL) ALL\n", "ALL ALL=(ALL) ALL"),
    (RULES + "#includedir /home/bob/sudoers.d\n", "#includedir /home/bob/sudoers.d"),
    (RULES + "%perf_users ALL=(root) NOPASSWD: \\\n  /bin/sh\n", "NOPASSWD: /bin/sh"),
    (RULES.replace("%perf_users", "%users"), "%users ALL=(root)"),
    (RULES + "a ALL=ALL\nb ALL=ALL\n", "(and 1 more)"),
])
def test_whom_the_drop_in_lets_in(text: str | None, problem: str | None) -> None:
    found = shell_rules.dropin_problem(text, GROUP)
    assert (found is None) == (problem is None), found
    assert found is None or (problem in found and found.startswith(f"{DROPIN} holds more than the rule for %{GROUP}"))


@pytest.mark.parametrize(("mode", "problem"), [
    (None, None),
    (stat.S_IFREG | 0o755, None),
    (stat.S_IFREG | 0o700, None),
    (stat.S_IFREG | stat.S_ISUID | 0o755, "set-user-ID or set-group-ID (mode 4755)"),
    (stat.S_IFREG | stat.S_ISGID | 0o755, "(mode 2755)"),
    (stat.S_IFDIR | 0o755, "not a regular file"),
    (stat.S_IFLNK | 0o777, "not a regular file"),
])
def test_whether_the_helper_gives_more_than_its_caller_has(mode: int | None, problem: str | None) -> None:
    found = shell_rules.helper_problem(mode, GROUP)
    assert (found is None) == (problem is None) and (found is None or (problem in found and HELPER in found)), found


@pytest.mark.parametrize(("facts", "members", "others"), [
    (shell_only_facts(), [], []),
    (with_file(shell_only_facts(), HELPER, None), [f"{HELPER} is missing: members cannot start perf-shell"], []),
    (with_file(shell_only_facts(), SHELL_COMMAND, "b" * 64), [f"{SHELL_COMMAND} was edited since setup"], []),
    (with_file(shell_only_facts(), DROPIN, None), [f"{DROPIN} is missing"], []),
    (shell_only_facts(state=state(shell=True), recorded_files=converged().recorded_files), [f"{path} is not in the setup record" for path in shell_paths(GROUP)], []),
    (shell_only_facts(shell=READY._replace(sudo=False)), ["sudo (or visudo) is missing"], []),
    (shell_only_facts(shell=READY._replace(capsh_iab=False)), ["has no --iab"], []),
    (shell_only_facts(shell=READY._replace(sudoers_error="x:1: syntax error")), ["sudoers does not parse"], []),
    (shell_only_facts(shell=READY._replace(dropin=RULES + "ALL ALL=(ALL) ALL\n")), [], ["ALL ALL=(ALL) ALL"]),
    (shell_only_facts(shell=READY._replace(helper_mode=stat.S_IFREG | 0o4755)), [], ["set-user-ID"]),
    (shell_only_facts(unsafe_files=((HELPER, f"{HELPER} is owned by uid 1000"), ("/etc/other", "x"))),
     [], [f"{HELPER} is owned by uid 1000"]),
])
def test_what_verify_judges_without_running_a_process(facts: Any, members: list[str], others: list[str]) -> None:
    assert findings.shell_only(facts)
    got = findings.shell_only_problems(facts, desired())
    assert len(got[0]) == len(members) and all(want in line for want, line in zip(members, got[0])), got
    assert len(got[1]) == len(others) and all(want in line for want, line in zip(others, got[1])), got


@pytest.mark.parametrize(("facts", "reason"), [
    (shell_only_facts(), "a nosuid mount"),
    (shell_only_facts(nosuid=False, fstype="nfs4"), "nfs4, which cannot hold file capabilities"),
    (shell_only_facts(nosuid=False), None),  # file capabilities work: the copy is verified
    (shell_only_facts(copy=converged().copy), None),  # a copy is there: it is probed
    (shell_only_facts(state=state()), None),  # no perf-shell recorded
])
def test_verify_checks_perf_shell_only_where_audit_says_shell_only(facts: Any, reason: str | None) -> None:
    only = converge.shell_only(desired(), facts)
    assert (only.reason if only else None) == reason
    assert only is None or (only.dest, only.group, only.member_problems, only.non_member_problems) == (
        desired().dest, GROUP, (), ())


ALLOWED = verify.Probe(True, 0, "ok")
IAB = verify.Probe(True, 1, "unable to set IAB tuple: Operation not permitted")
GONE = verify.Probe(False, None, "No such file or directory")
ONLY = verify.ShellOnly(desired().dest, "a nosuid mount", GROUP)
LEGACY_FIELDS = {"ok", "member_ok", "non_member_refused", "workloads_ok", "member", "non_member", "stock", "workloads"}


def result(member: verify.Probe = ALLOWED, non_member: verify.Probe = IAB, **problems: tuple[str, ...]) -> verify.VerifyResult:
    rows = tuple(verify.Row(w, None, None, unavailable="no copy on this node (a nosuid mount): members use perf-shell")
                 for w in verify.WORKLOADS)
    return verify.VerifyResult(member, non_member, verify.Probe(True, 255, "Error:"), rows=rows,
                               shell_only=replace_only(**problems))


def replace_only(**problems: tuple[str, ...]) -> verify.ShellOnly:
    return verify.ShellOnly(ONLY.dest, ONLY.reason, ONLY.group, **problems)


@pytest.mark.parametrize(("made", "member_ok", "refused", "member_line", "other_line"), [
    (result(), True, True, "profiled system-wide in a perf-shell session",
     f"refused: {DROPIN} lets only %{GROUP} run {HELPER} through sudo, and run without sudo it gave nothing "
     "(unable to set IAB tuple"),
    (result(non_member=GONE), True, True, "profiled", "gave nothing (No such file or directory)"),
    (result(member=verify.Probe(True, 1, "Error: no access")), False, True,
     "FAILED: perf-shell session: Error: no access", "refused"),
    (result(member_problems=(f"{HELPER} is missing: members cannot start perf-shell",)), False, True,
     f"FAILED: {HELPER} is missing", "refused"),
    (result(non_member_problems=(f"{DROPIN} holds more than the rule for %{GROUP}: ALL ALL=(ALL) ALL",)), True, False,
     "profiled", "MAY START perf-shell: /etc/sudoers.d/perfgroup-perf_users holds more"),
    (result(non_member=ALLOWED), True, False, "profiled", f"ALLOWED: {HELPER}, run without sudo, counted system-wide"),
])
def test_the_member_and_non_member_checks_on_a_node_without_a_copy(
        made: verify.VerifyResult, member_ok: bool, refused: bool, member_line: str, other_line: str) -> None:
    assert (made.member_ok, made.non_member_refused, made.ok) == (member_ok, refused, member_ok and refused)
    lines = made.lines()
    assert lines[0].startswith("member (a fresh uid + group): ") and member_line in lines[0], lines[0]
    assert lines[1].startswith("non-member (a fresh uid): ") and other_line in lines[1], lines[1]
    assert lines[2] == ("no copy to probe on this node: file capabilities do not work on this mount "
                        "(/usr/local/libexec/perfgroup/perf_users is on a nosuid mount); members use perf-shell")
    assert lines[3].startswith("not run: sudo: the fresh uids have no passwd entry")
    assert not any("copy is open" in line for line in lines)


def test_json_keeps_every_field_and_adds_what_was_checked_instead() -> None:
    copy = verify.VerifyResult(ALLOWED, GONE, None).as_dict()
    only = result(member_problems=("x",)).as_dict()
    assert set(copy) > LEGACY_FIELDS and set(copy) == set(only)
    assert (copy["copy_probed"], copy["shell_only"]) == (True, None)
    assert only["copy_probed"] is False and (only["ok"], only["member_ok"], only["non_member_refused"]) == (False, False, True)
    shell = only["shell_only"]
    assert isinstance(shell, dict)
    assert (shell["reason"], shell["member_problems"], shell["non_member_problems"]) == ("a nosuid mount", ["x"], [])
    assert "sudo" in shell["not_run"] and HELPER in shell["non_member_probe"] and "nosuid" in shell["no_copy"]


@pytest.mark.parametrize(("made", "member", "non_member"), [
    (result(), OK, OK),
    (result(member_problems=("gone",)), CRITICAL, OK),
    (result(non_member_problems=("open",)), OK, CRITICAL),
])
def test_audit_functional_gives_the_same_verdicts(monkeypatch: pytest.MonkeyPatch, made: verify.VerifyResult,
                                                   member: str, non_member: str) -> None:
    monkeypatch.setattr(converge.os, "geteuid", lambda: 0)
    monkeypatch.setattr(converge, "run_verify", lambda wanted: made)
    found = {f.id: f for f in converge.functional_findings(desired())}
    assert (found["verify.member"].severity, found["verify.non_member"].severity) == (member, non_member)
    assert found["verify.member"].message == made.lines()[0] and found["verify.non_member"].message == made.lines()[1]
    assert found["verify.non_member"].fix == f"perfgroup setup --group {GROUP} --shell"
    assert found["verify.count_system"].severity == OK and "unavailable: no copy" in found["verify.count_system"].message
