"""Per-job grants under Slurm, the pure parts as tables: which constraints ask for the feature,
what scontrol says about exclusivity, the grant record's text, the ACL a grant writes and a revoke
leaves, and what the audit makes of grant records (live, gone, stale)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, NamedTuple

import pytest
from factsdata import DEST, acl, converged, desired, with_copy

from perfgroup.engine import facts as facts_mod
from perfgroup.engine import findings, job_rules, jobs, plan, report_formats
from perfgroup.engine.acl import (
    GROUP_OBJ,
    MASK,
    OTHER,
    USER,
    USER_OBJ,
    AclEntry,
    decode_acl,
    encode_acl,
    with_user,
    without_user,
)
from perfgroup.engine.errors import ConvergeError
from perfgroup.engine.job_facts import Grant, JobFacts, format_record, job_alive, parse_record

ALICE = 1001
GRANT = Grant("42", "perf_users", "alice", ALICE, DEST, True)
REVOKING = GRANT._replace(revoking=True)  # the epilog marked it and did not finish
CAROL = 1003
CAROLS = Grant("43", "perf_users", "carol", CAROL, DEST, True)


@pytest.mark.parametrize(("constraints", "asks"), [
    ("perf", None),
    ("perf&bigmem", None),
    ("bigmem,perf", None),
    ("perf*2", None),
    ("(perf&bigmem)", None),
    ("noperf", ""),
    ("perfx", ""),
    ("xperf", ""),
    ("perf-tools", ""),
    ("", ""),
    ("perf|bigmem", "alternative"),
    ("[perf|bigmem]", "alternative"),
])
def test_only_a_whole_token_of_an_and_expression_asks_for_the_feature(constraints: str, asks: str | None) -> None:
    got = job_rules.requested(constraints, "perf")
    assert got == asks if asks in (None, "") else asks in str(got)


@pytest.mark.parametrize(("shown", "exclusive"), [
    ("JobId=1 Features=perf DelayBoot=00:00:00 OverSubscribe=NO Contiguous=0", True),
    ("JobId=2 Features=perf OverSubscribe=OK Contiguous=0", False),
    ("JobId=3 OverSubscribe=USER", False),
    ("JobId=4 OverSubscribe=YES", False),
    ("JobId=5 Comment=OverSubscribe=NO OverSubscribe=OK", False),
    # the user's own words, printed unquoted: a job name, a command, a working directory
    ("JobId=6 JobName=x OverSubscribe=NO UserId=alice(1000) Features=perf OverSubscribe=OK", False),
    ("JobId=7 Features=perf OverSubscribe=OK Command=/tmp/a OverSubscribe=NO", False),
    ("JobId=8 JobName=x\tOverSubscribe=NO Features=perf OverSubscribe=OK", False),
    ("JobId=9 JobName=x OverSubscribe=NO Features=perf OverSubscribe=NO", False),  # cannot tell: no grant
    ("", False),
])
def test_exclusive_is_what_scontrol_shows_for_oversubscribe(shown: str, exclusive: bool) -> None:
    assert job_rules.exclusive(shown) is exclusive


# A record as the prolog wrote it before the epilog marked records it revokes.
BEFORE_REVOKING = """job=42
group=perf_users
user=alice
uid=1001
copy=/usr/local/libexec/perfgroup/perf_users/perf
acl_added=1
paranoid_before=2
paranoid=0
"""


def test_grant_record_round_trips_and_refuses_what_perfgroup_did_not_write() -> None:
    full = GRANT._replace(paranoid_before=2, paranoid=0)
    for grant in (GRANT, full, full._replace(revoking=True)):
        assert parse_record(format_record(grant)) == grant
    text = format_record(GRANT)
    assert "revoking" not in text  # a grant the epilog has not touched: the record reads as before
    assert format_record(full) == BEFORE_REVOKING and parse_record(BEFORE_REVOKING) == full
    assert format_record(GRANT._replace(revoking=True)) == text + "revoking=1\n"
    assert parse_record(text + "revoking=0\n") == GRANT
    assert parse_record(text + "revoking=yes\n") is None
    assert parse_record(text + "revoking=1\nrevoking=1\n") is None
    assert parse_record(text + "revoked=1\n") is None  # a field perfgroup does not write
    assert parse_record(text.replace("uid=1001", "uid=x")) is None
    assert parse_record(text.replace("job=42", "job=4 2")) is None
    assert parse_record(text + "user=root\n") is None  # a field twice
    assert parse_record("\n".join(text.splitlines()[:-1])) is None  # a field missing
    assert parse_record(text.replace("acl_added=1", "acl_added=yes")) is None


def test_a_grant_adds_one_user_entry_and_a_revoke_takes_exactly_that_away() -> None:
    entries = with_user((), 0o750, ALICE, 5)
    assert set(entries) == {AclEntry(USER_OBJ, 7), AclEntry(GROUP_OBJ, 5), AclEntry(OTHER, 0),
                            AclEntry(USER, 5, ALICE), AclEntry(MASK, 5)}
    assert set(decode_acl(encode_acl(entries))) == set(entries)
    assert without_user(entries, ALICE) == ()  # nothing named left: the xattr goes, the mode bits stay
    other = with_user(entries, 0o750, 1002, 5)
    assert set(without_user(other, ALICE)) == set(other) - {AclEntry(USER, 5, ALICE)}


def _facts(grants: tuple[Grant, ...], alive: frozenset[str], named: tuple[AclEntry, ...] = (),
           paranoid: int = 2, mask: int = 5) -> Any:
    copy_acl = acl(DEST, "access", *named, mask=mask) if named else None
    base = converged(paranoid=paranoid)
    return base._replace(jobs=JobFacts(grants, alive), access=base.access._replace(copy_acl=copy_acl))


ENTRY = AclEntry(USER, 5, ALICE)


@pytest.mark.parametrize(("grants", "alive", "named", "paranoid", "expect"), [
    # a running job's grant: ok, and its ACL entry is not copy.acl
    ((GRANT,), {"42"}, (ENTRY,), 2, {"job.grant_active": "ok"}),
    # --job-paranoid 0 while the job runs: not paranoid.low
    ((GRANT._replace(paranoid_before=2, paranoid=0),), {"42"}, (ENTRY,), 0, {"job.grant_active": "ok"}),
    # the job is gone and its entry is still there: stale, critical
    ((GRANT,), set(), (ENTRY,), 2, {"job.record_gone": "warning", "job.grant_stale": "critical",
                                    "copy.acl": "critical"}),
    # the job is gone, paranoid still lowered by it
    ((GRANT._replace(acl_added=False, paranoid_before=2, paranoid=0),), set(), (), 0,
     {"job.record_gone": "warning", "job.grant_stale": "critical", "paranoid.low": "critical"}),
    # the job is gone, nothing left open: only the record to clean up
    ((GRANT,), set(), (), 2, {"job.record_gone": "warning"}),
    # no record at all: the entry is what it always was
    ((), set(), (ENTRY,), 2, {"copy.acl": "critical"}),
    # the job runs but its entry is gone (the copy replaced under it by something else): no perf in the job
    ((GRANT,), {"42"}, (), 2, {"job.grant_lost": "warning"}),
    ((GRANT._replace(acl_added=False),), {"42"}, (), 2, {"job.grant_lost": "warning"}),
    # a live record naming another copy (the destination moved) explains no entry on this one
    ((GRANT._replace(copy="/opt/old/perf"),), {"42"}, (ENTRY,), 2, {"job.grant_active": "ok", "copy.acl": "critical"}),
    # an epilog that could not finish (a step failed after it marked the record): critical, the job
    # running or not; its entry is not lost (heal must not put it back) and explains nothing
    ((REVOKING,), {"42"}, (), 2, {"job.revoke_incomplete": "critical"}),
    ((REVOKING,), {"42"}, (ENTRY,), 2, {"job.revoke_incomplete": "critical", "copy.acl": "critical"}),
    ((REVOKING._replace(paranoid_before=2, paranoid=0),), set(), (), 0,
     {"job.revoke_incomplete": "critical", "paranoid.low": "critical"}),
    ((REVOKING,), set(), (), 2, {"job.revoke_incomplete": "critical"}),
    ((REVOKING, CAROLS), {"42", "43"}, (AclEntry(USER, 5, CAROL),), 2,
     {"job.revoke_incomplete": "critical", "job.grant_active": "ok"}),
])
def test_the_audit_judges_grants_by_their_record_and_whether_the_job_runs(
        grants: tuple[Grant, ...], alive: set[str], named: tuple[AclEntry, ...], paranoid: int,
        expect: dict[str, str]) -> None:
    facts = _facts(grants, frozenset(alive), named, paranoid)
    found = findings.audit(facts, desired())  # type: ignore[arg-type]
    relevant = {f.id: f.severity for f in found
                if f.id.startswith(("job.", "copy.acl", "paranoid.low", "process.lingering"))}
    assert relevant == expect
    report = findings.report(facts, desired(), found)  # type: ignore[arg-type]
    live = sum(1 for g in grants if g.job in alive and not g.revoking)  # live records, whatever their ACL entry
    assert report["job_grants_active"] == live
    assert f'perfgroup_job_grants_active{{group="perf_users"}} {live}' in report_formats.prometheus(report, 0)
    assert f"'job_grants'={live};;;0" in report_formats.nagios(report)


def test_only_entries_of_live_grants_are_explained() -> None:
    other = AclEntry(USER, 5, 1002)
    copy_acl = acl(DEST, "access", ENTRY, other, mask=5)
    jobs = JobFacts((GRANT,), frozenset({"42"}))
    left = job_rules.unbacked(copy_acl, jobs)
    assert left is not None and ENTRY not in left.entries and other in left.entries
    assert job_rules.unbacked(acl(DEST, "access", ENTRY, mask=5), jobs) is None
    assert job_rules.unbacked(copy_acl, JobFacts((GRANT,), frozenset())) == copy_acl


V2 = "system.slice/slurmstepd.scope/job_7"
V1 = "freezer/slurm/uid_1001/job_7"
ROOT = "Uid:\t0\t0\t0\t0"
BOBS = "Uid:\t1002\t1002\t1002\t1002"
SETUID = "Uid:\t1001\t0\t0\t0"  # sudo, su, passwd at their prompt: the caller's real uid (seen)
STEPD = "/usr/sbin/slurmstepd-wlm"  # Debian 12's (/usr/sbin/slurmstepd is an alternatives link to it)
FORGED = b"HOME=/\0SLURM_JOB_ID=7\0"


class Proc(NamedTuple):
    cmdline: bytes
    status: str = ROOT
    exe: str | None = None  # None: not readable (a non-root audit)
    environ: bytes = b""


@pytest.mark.parametrize(("files", "procs", "alive"), [
    # cgroup v2, as 22.05 lays it out under its scope: populated decides, not the directory
    ({f"{V2}/cgroup.events": "populated 1\nfrozen 0\n"}, (), True),
    ({f"{V2}/cgroup.events": "populated 0\nfrozen 0\n"}, (), False),  # left by a crash
    ({"system.slice/node1_slurmstepd.scope/job_7/cgroup.events": "populated 1\n"}, (), True),  # Debian 12's name
    ({"system.slice/node1_slurmstepd.scope/job_7/cgroup.events": "populated 0\n"}, (), False),
    ({"system.slice/slurmstepd.scope/job_8/cgroup.events": "populated 1\n"}, (), False),  # another job's
    ({f"{V2}/cgroup.type": "domain\n"}, (), False),  # no cgroup.events: nothing says a process is there
    # an environment proves nothing, whoever's: `env SLURM_JOB_ID=7 sleep infinity`
    ({f"{V2}/cgroup.events": "populated 0\n"}, (Proc(b"sleep\0infinity\0", BOBS, environ=FORGED),), False),
    ({}, (Proc(b"sleep\0infinity\0", ROOT, "/usr/bin/sleep", FORGED),), False),
    # cgroup v1 (no cgroup.events): a cgroup.procs listing a process, in the job's cgroup or below
    ({f"{V1}/cgroup.procs": "", f"{V1}/step_batch/cgroup.procs": ""}, (), False),  # left by a crash
    ({f"{V1}/cgroup.procs": "", f"{V1}/step_batch/cgroup.procs": "4242\n"}, (), True),
    ({"cpuset/slurm/uid_1001/job_7/cgroup.procs": "4242\n"}, (), True),
    ({"freezer/slurm_node1/uid_1001/job_7/step_0/cgroup.procs": "4242\n"}, (), True),  # multiple-slurmd
    ({"freezer/slurm_node1/uid_1001/job_7/step_0/cgroup.procs": ""}, (), False),
    ({"freezer/slurm/uid_1002/job_7/cgroup.procs": "4242\n"}, (), False),  # not the record's uid
    ({"freezer/slurm/uid_1001/job_70/cgroup.procs": "4242\n"}, (), False),
    # no cgroup (proctrack/linuxproc): a root process titled as one of the job's slurmstepds
    ({}, (Proc(b"slurmstepd: [7.batch]\0"),), True),
    ({}, (Proc(b"slurmstepd: [7.extern]\0"),), True),  # PrologFlags=Contain: the whole job
    ({}, (Proc(b"slurmstepd: [7.0]\0", exe=STEPD),), True),
    ({}, (Proc(b"slurmstepd: [7.1+0]\0", exe=STEPD),), True),  # a heterogeneous job's component
    ({}, (Proc(b"slurmstepd: [7.batch]\0", exe=f"{STEPD} (deleted)"),), True),  # Slurm upgraded under it
    ({}, (Proc(b"slurmstepd: [70.batch]\0", exe=STEPD), Proc(b"slurmstepd: [17.0]\0", exe=STEPD)), False),
    ({}, (Proc(b"slurmstepd: [7.batch]\0", BOBS),), False),  # anyone can title a process so
    ({}, (Proc(b"slurmstepd: [7.batch]\0-S\0true\0", SETUID),), False),  # a setuid program's forged argv[0]
    ({}, (Proc(b"slurmstepd: [7.batch]\0", ROOT, "/usr/bin/sudo"),), False),  # root audits check the executable
    ({}, (Proc(b"slurmstepd:\0[7.batch]\0"),), False),
    ({}, (), False),
])
def test_a_job_is_alive_only_by_what_a_user_cannot_forge(
        tmp_path: Path, files: dict[str, str], procs: tuple[Proc, ...], alive: bool) -> None:
    root, proc = tmp_path / "cgroup", tmp_path / "proc"
    root.mkdir()
    (proc / "1").mkdir(parents=True)
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    for pid, made in enumerate(procs, 4242):
        (proc / str(pid)).mkdir()
        (proc / str(pid) / "cmdline").write_bytes(made.cmdline)
        (proc / str(pid) / "status").write_text(f"Name:\tx\nPid:\t{pid}\n{made.status}\n")
        (proc / str(pid) / "environ").write_bytes(made.environ)
        if made.exe is not None:
            (proc / str(pid) / "exe").symlink_to(made.exe)
    assert job_alive("7", ALICE, proc=str(proc), cgroup_root=str(root)) is alive


@pytest.mark.skipif(os.geteuid() != 0, reason="chown: the cgroup the job's user made must be theirs")
def test_a_v1_cgroup_the_jobs_user_made_in_their_step_cgroup_proves_nothing(tmp_path: Path) -> None:
    """22.05 gives a v1 step cgroup to the job's user: they can make one below it (its files are
    theirs) and move their own processes there after a crash; only cgroups root made count."""
    root, proc = tmp_path / "cgroup", tmp_path / "proc"
    mine = root / V1 / "step_batch" / "mine"
    mine.mkdir(parents=True)
    proc.mkdir()
    (mine / "cgroup.procs").write_text("4242\n")
    os.chown(mine / "cgroup.procs", ALICE, ALICE)
    assert not job_alive("7", ALICE, proc=str(proc), cgroup_root=str(root))
    os.chown(mine / "cgroup.procs", 0, 0)
    assert job_alive("7", ALICE, proc=str(proc), cgroup_root=str(root))


def test_an_entry_the_mask_blocks_is_a_lost_grant() -> None:
    jobs = JobFacts((GRANT,), frozenset({"42"}))
    assert job_rules.lost_grants(acl(DEST, "access", ENTRY, mask=5), jobs, DEST) == ()
    assert job_rules.lost_grants(acl(DEST, "access", ENTRY, mask=4), jobs, DEST) == (GRANT,)
    assert job_rules.lost_grants(None, jobs, DEST) == (GRANT,)
    assert job_rules.lost_grants(None, JobFacts((GRANT,), frozenset()), DEST) == ()  # the job is gone
    assert job_rules.lost_grants(None, JobFacts((REVOKING,), frozenset({"42"})), DEST) == ()  # being revoked


BOB = AclEntry(USER, 5, 1002)  # no record backs it


def _named(entries: tuple[AclEntry, ...]) -> dict[int | None, int]:
    return {e.id: e.perm for e in entries if e.tag == USER}


@pytest.mark.parametrize(("copy", "grants", "alive", "named", "kind", "carried"), [
    # a converged copy with its live grant: nothing to do
    ({}, (GRANT,), {"42"}, (ENTRY,), None, {}),
    # a perf upgrade made the copy stale while alice's job runs: the new copy carries her entry
    ({"sha256": "6" * 64}, (GRANT,), {"42"}, (ENTRY,), "install_copy", {ALICE: 5}),
    # ... also when the entry was already lost (an earlier replacement)
    ({"sha256": "6" * 64}, (GRANT,), {"42"}, (), "install_copy", {ALICE: 5}),
    # ... and for every live grant, one entry per user
    ({"sha256": "6" * 64}, (GRANT, CAROLS), {"42", "43"}, (ENTRY,), "install_copy", {ALICE: 5, CAROL: 5}),
    ({"sha256": "6" * 64}, (GRANT, GRANT._replace(job="44", acl_added=False)), {"42", "44"}, (ENTRY,), "install_copy",
     {ALICE: 5}),
    # the job is gone (its record not yet revoked): its entry is a stale grant, not carried over
    ({"sha256": "6" * 64}, (GRANT,), set(), (ENTRY,), "install_copy", {}),
    # an entry no record backs is not carried over either; a live one is
    ({"sha256": "6" * 64}, (), set(), (BOB,), "install_copy", {}),
    ({"sha256": "6" * 64}, (GRANT,), {"42"}, (ENTRY, BOB), "install_copy", {ALICE: 5}),
    # a record naming another copy (the destination moved) grants nothing on this one
    ({"sha256": "6" * 64}, (GRANT._replace(copy="/opt/old/perf"),), {"42"}, (), "install_copy", {}),
    # the copy repaired in place (setup again, heal after lost capabilities): the live entry stays
    ({"caps": None}, (GRANT,), {"42"}, (ENTRY,), "fix_copy", {ALICE: 5}),
    ({"mode": 0o751}, (GRANT,), {"42"}, (ENTRY, BOB), "fix_copy", {ALICE: 5}),
    # a live grant whose entry is gone: setup and heal put it back from the record
    ({}, (GRANT,), {"42"}, (), "fix_copy", {ALICE: 5}),
    ({}, (GRANT, CAROLS), {"42", "43"}, (ENTRY,), "fix_copy", {ALICE: 5, CAROL: 5}),
    # an unbacked entry alone: stripped, nothing carried
    ({}, (GRANT,), set(), (ENTRY,), "fix_copy", {}),
    # a record the epilog could not finish revoking, its job still running: its entry is neither
    # carried nor put back (the epilog took it away), and one still there goes
    ({"sha256": "6" * 64}, (REVOKING,), {"42"}, (ENTRY,), "install_copy", {}),
    ({"sha256": "6" * 64}, (REVOKING, CAROLS), {"42", "43"}, (ENTRY,), "install_copy", {CAROL: 5}),
    ({}, (REVOKING,), {"42"}, (), None, {}),
    ({}, (REVOKING,), {"42"}, (ENTRY,), "fix_copy", {}),
])
def test_a_copy_setup_or_heal_installs_or_repairs_carries_exactly_the_live_grants(
        copy: dict[str, Any], grants: tuple[Grant, ...], alive: set[str], named: tuple[AclEntry, ...],
        kind: str | None, carried: dict[int, int]) -> None:
    facts = with_copy(_facts(grants, frozenset(alive), named), **copy)
    actions = [a for a in plan.make(facts, desired()).actions if a.kind in ("install_copy", "fix_copy")]
    assert [a.kind for a in actions] == ([kind] if kind else [])
    if not actions:
        return
    entries = actions[0].acl  # type: ignore[attr-defined]
    assert _named(entries) == carried
    if carried:
        # what the prolog writes: owner rwx, group r-x, other none, mask r-x (the mode stays 0750)
        assert {(e.tag, e.perm) for e in entries if e.tag != USER} == {(USER_OBJ, 7), (GROUP_OBJ, 5), (OTHER, 0),
                                                                        (MASK, 5)}
        summary = actions[0].summary
        assert "live job grants of " in summary
        for uid, who in ((ALICE, "alice (job 42)"), (CAROL, "carol (job 43)")):
            assert (who in summary) is (uid in carried), summary
        assert set(decode_acl(encode_acl(entries))) == set(entries)
    else:
        assert entries == () and "job grants" not in actions[0].summary


def test_grant_acl_is_the_prologs_entry_for_one_grant() -> None:
    jobs = JobFacts((GRANT,), frozenset({"42"}))
    assert job_rules.grant_acl(jobs, DEST, 0o750) == with_user((), 0o750, ALICE, 5)
    assert job_rules.grant_acl(JobFacts((GRANT,), frozenset()), DEST, 0o750) == ()
    assert job_rules.grant_acl(JobFacts((REVOKING,), frozenset({"42"})), DEST, 0o750) == ()


def test_a_grant_or_revoke_while_setup_waits_for_the_lock_makes_it_read_the_node_again(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    """setup plans before the node lock and re-reads under it only when the fingerprint changed:
    a prolog's or epilog's record (even one that changes no ACL: acl_added=0) must count."""
    grants = tmp_path / "grants"
    grants.mkdir()
    monkeypatch.setattr(facts_mod, "GRANTS_DIR", str(grants))
    want = desired(dest=str(tmp_path / "perf"))
    os.utime(grants, ns=(0, 0))  # timestamps tick coarsely: a change must not fall in the same tick
    before = facts_mod.fingerprint(want)
    (grants / "42").write_text(format_record(GRANT))
    assert facts_mod.fingerprint(want) != before
    os.utime(grants, ns=(0, 0))
    before = facts_mod.fingerprint(want)
    (grants / "42").unlink()
    assert facts_mod.fingerprint(want) != before


@pytest.mark.parametrize(("alive", "paranoid", "lowered"), [
    ({"42"}, 0, False),  # the running job's value: left to its epilog
    (set(), 0, True),  # its job is gone: setup's 2 again
    ({"42"}, 1, True),  # not the value the grant set
])
def test_setup_leaves_a_running_jobs_paranoid_alone(alive: set[str], paranoid: int, lowered: bool) -> None:
    facts = _facts((GRANT._replace(paranoid_before=2, paranoid=0),), frozenset(alive), (ENTRY,), paranoid)
    raised = [a for a in plan.make(facts, desired()).actions if a.kind == "set_paranoid"]
    assert bool(raised) is lowered, raised


def test_an_unfinished_revoke_names_what_is_still_open_and_the_epilogs_own_fix() -> None:
    facts = _facts((REVOKING._replace(paranoid_before=2, paranoid=0),), frozenset({"42"}), (ENTRY,), 0)
    found = [f for f in findings.audit(facts, desired()) if f.id == "job.revoke_incomplete"]  # type: ignore[arg-type]
    assert [(f.severity, f.fix) for f in found] == [
        ("critical", "perfgroup-node job-revoke --group perf_users --job 42")]
    assert found[0].message == (f"the epilog of job 42 could not finish revoking the grant of alice (its ACL entry on "
                                f"{DEST} and perf_event_paranoid=0 still there); heal retries it")


WITH_ALICE = with_user((), 0o750, ALICE, 5)


def test_heal_revokes_the_grants_of_gone_jobs_and_retries_unfinished_revokes(monkeypatch: pytest.MonkeyPatch) -> None:
    records = {"41": GRANT._replace(job="41"), "42": GRANT, "43": CAROLS, "44": REVOKING._replace(job="44"),
               "45": GRANT._replace(job="45", group="other")}
    alive = {"41", "44", "45"}
    monkeypatch.setattr(jobs, "record_jobs", lambda: tuple(sorted(records)))
    monkeypatch.setattr(jobs, "read_record", lambda job: (records[job], None))
    monkeypatch.setattr(jobs, "job_alive", lambda job, uid: job in alive)
    monkeypatch.setattr(jobs, "revoke", lambda group, job: job)
    assert jobs.revoke_all("perf_users", gone_only=True) == ["42", "43", "44"]
    assert jobs.revoke_all("perf_users", gone_only=False) == ["41", "42", "43", "44"]


class FakeNode:
    """The copy's ACL and the steps jobs._undo takes, in order; `fail_at` raises there."""

    def __init__(self, entries: tuple[AclEntry, ...], fail_at: str | None = None) -> None:
        self.entries, self.fail_at = entries, fail_at
        self.steps: list[str] = []

    def step(self, name: str) -> None:
        self.steps.append(name)
        if name == self.fail_at:
            raise ConvergeError(name, "refused")

    def install(self, monkeypatch: pytest.MonkeyPatch) -> None:
        def write_file(path: str, content: str, step: str, mode: int) -> None:
            assert path.endswith("/42") and mode == 0o644
            self.step(f"{step}: {parse_record(content)}")

        def set_copy_acl(path: str, entries: tuple[AclEntry, ...], step: str, old: str, new: str) -> None:
            self.step(step)
            self.entries = entries

        monkeypatch.setattr(jobs, "_others", lambda grant: [])
        monkeypatch.setattr(jobs, "read_acl", lambda path, kind: acl(path, kind, *(
            e for e in self.entries if e.tag == USER), mask=5) if self.entries else None)
        monkeypatch.setattr(jobs, "copy_processes", lambda copy, uid: ())
        monkeypatch.setattr(jobs.apply, "write_file", write_file)
        monkeypatch.setattr(jobs.apply, "set_copy_acl", set_copy_acl)
        monkeypatch.setattr(jobs.apply, "remove_path", lambda path, step: self.step(step))


@pytest.mark.parametrize(("grant", "fail_at", "steps"), [
    # the record is marked before anything changes, deleted once everything is restored
    (GRANT, None, [f"mark_grant_revoking: {REVOKING}", "revoke_acl", "delete_grant_record"]),
    # a step that fails leaves the record marked: the audit says job.revoke_incomplete, heal retries
    (GRANT, "revoke_acl", [f"mark_grant_revoking: {REVOKING}", "revoke_acl"]),
    (GRANT, "delete_grant_record", [f"mark_grant_revoking: {REVOKING}", "revoke_acl", "delete_grant_record"]),
    # the retry of a marked record marks nothing again
    (REVOKING, None, ["revoke_acl", "delete_grant_record"]),
])
def test_the_epilog_marks_the_record_revoking_before_it_changes_anything(
        monkeypatch: pytest.MonkeyPatch, grant: Grant, fail_at: str | None, steps: list[str]) -> None:
    node = FakeNode(WITH_ALICE, fail_at)
    node.install(monkeypatch)
    if fail_at is None:
        jobs._undo(grant)
    else:
        with pytest.raises(ConvergeError):
            jobs._undo(grant)
    assert node.steps == steps


@pytest.mark.parametrize(("entries", "others", "added", "written"), [
    # the usual: no entry yet, the grant adds it and its epilog takes it away
    ((), (), True, WITH_ALICE),
    # an entry nothing backs (set by hand, left by a crash): the grant's now, gone after the job
    (WITH_ALICE, (), True, None),
    (with_user((), 0o750, ALICE, 7), (), True, WITH_ALICE),  # made exactly r-x
    (with_user((), 0o750, 1002, 5), (), True, with_user(with_user((), 0o750, 1002, 5), 0o750, ALICE, 5)),
    # another live grant of alice on this copy backs it: that grant's epilog decides
    (WITH_ALICE, (GRANT._replace(job="41"),), False, None),
    # ... but only if the entry is there, the grant is alice's, on this copy, and not being revoked
    ((), (GRANT._replace(job="41"),), True, WITH_ALICE),
    (WITH_ALICE, (CAROLS,), True, None),
    (WITH_ALICE, (GRANT._replace(job="41", copy="/opt/old/perf"),), True, None),
    (WITH_ALICE, (REVOKING._replace(job="41"),), True, None),
])
def test_the_prolog_owns_every_entry_of_its_user_no_other_live_grant_backs(
        entries: tuple[AclEntry, ...], others: tuple[Grant, ...], added: bool,
        written: tuple[AclEntry, ...] | None) -> None:
    got_added, got_written = job_rules.prolog_acl(entries, 0o750, GRANT._replace(acl_added=False), others)
    assert got_added is added
    assert (set(got_written) if got_written is not None else None) == (set(written) if written is not None else None)
