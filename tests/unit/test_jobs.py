"""Per-job grants under Slurm, the pure parts as tables: which constraints ask for the feature,
what scontrol says about exclusivity, the grant record's text, the ACL a grant writes and a revoke
leaves, and what the audit makes of grant records (live, gone, stale)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from factsdata import DEST, acl, converged, desired, with_copy

from perfgroup.engine import facts as facts_mod
from perfgroup.engine import findings, job_rules, plan, report_formats
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
from perfgroup.engine.job_facts import Grant, JobFacts, format_record, job_alive, parse_record

ALICE = 1001
GRANT = Grant("42", "perf_users", "alice", ALICE, DEST, True)


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


def test_grant_record_round_trips_and_refuses_what_perfgroup_did_not_write() -> None:
    full = GRANT._replace(paranoid_before=2, paranoid=0)
    for grant in (GRANT, full):
        assert parse_record(format_record(grant)) == grant
    text = format_record(GRANT)
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
    live = len(alive)  # live records, whatever their ACL entry
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


@pytest.mark.parametrize(("cgroup", "events", "environ", "alive"), [
    # cgroup v2, as 22.05 lays it out under its scope: populated decides, not the directory
    ("system.slice/slurmstepd.scope/job_7", "populated 1\nfrozen 0\n", None, True),
    ("system.slice/slurmstepd.scope/job_7", "populated 0\nfrozen 0\n", None, False),  # left by a crash
    ("system.slice/slurmstepd.scope/job_7", "populated 0\nfrozen 0\n", "SLURM_JOB_ID=7", True),
    ("system.slice/node1_slurmstepd.scope/job_7", "populated 1\n", None, True),  # Debian 12 names it so
    ("system.slice/node1_slurmstepd.scope/job_7", "populated 0\n", None, False),
    ("system.slice/slurmstepd.scope/job_8", "populated 1\n", None, False),  # another job's
    # cgroup v1 has no cgroup.events: the directory is the job's
    ("freezer/slurm/uid_1001/job_7", None, None, True),
    (None, None, "SLURM_JOB_ID=7", True),  # proctrack/linuxproc: a process's environment
    (None, None, "SLURM_JOB_ID=70", False),
    (None, None, None, False),
])
def test_a_job_is_alive_while_its_cgroup_is_populated_or_a_process_carries_its_id(
        tmp_path: Path, cgroup: str | None, events: str | None, environ: str | None, alive: bool) -> None:
    root, proc = tmp_path / "cgroup", tmp_path / "proc"
    (proc / "1").mkdir(parents=True)
    if cgroup is not None:
        (root / cgroup).mkdir(parents=True)
        if events is not None:
            (root / cgroup / "cgroup.events").write_text(events)
    if environ is not None:
        (proc / "4242").mkdir()
        (proc / "4242" / "environ").write_bytes(f"HOME=/\0{environ}\0".encode())
    assert job_alive("7", ALICE, proc=str(proc), cgroup_root=str(root)) is alive


def test_an_entry_the_mask_blocks_is_a_lost_grant() -> None:
    jobs = JobFacts((GRANT,), frozenset({"42"}))
    assert job_rules.lost_grants(acl(DEST, "access", ENTRY, mask=5), jobs, DEST) == ()
    assert job_rules.lost_grants(acl(DEST, "access", ENTRY, mask=4), jobs, DEST) == (GRANT,)
    assert job_rules.lost_grants(None, jobs, DEST) == (GRANT,)
    assert job_rules.lost_grants(None, JobFacts((GRANT,), frozenset()), DEST) == ()  # the job is gone


CAROL = 1003
CAROLS = Grant("43", "perf_users", "carol", CAROL, DEST, True)
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
        assert "live job grants of alice (job 42)" in actions[0].summary
        assert set(decode_acl(encode_acl(entries))) == set(entries)
    else:
        assert entries == () and "job grants" not in actions[0].summary


def test_grant_acl_is_the_prologs_entry_for_one_grant() -> None:
    jobs = JobFacts((GRANT,), frozenset({"42"}))
    assert job_rules.grant_acl(jobs, DEST, 0o750) == with_user((), 0o750, ALICE, 5)
    assert job_rules.grant_acl(JobFacts((GRANT,), frozenset()), DEST, 0o750) == ()


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
