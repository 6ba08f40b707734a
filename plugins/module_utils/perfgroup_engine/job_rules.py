"""Per-job grants under Slurm (rules layer, pure): whether a job asked for the feature, whether its
allocation is exclusive, which ACL entries and paranoid values live grants explain, and the
audit's findings about grants. Facts in job_facts.py, the grant and revoke flows in jobs.py.
"""

from __future__ import annotations

from .acl import MASK, USER, Acl, AclEntry, R, X, with_user
from .finding import CRITICAL, OK, WARNING, Finding
from .job_facts import Grant, JobFacts
from .options import JOB_FEATURE_CHARS

TYPE_CHECKING = False  # as typing.TYPE_CHECKING (mypy knows the name), without importing typing at run time
if TYPE_CHECKING:
    from typing import Iterable, Iterator

# Characters of a Slurm feature name; everything else in a constraint expression is an operator
# (& and , AND, | OR, [ ] matching OR, * count, ( ) grouping) or a count.
FEATURE_CHARS = JOB_FEATURE_CHARS
OR_OPERATORS = frozenset("|[]")


def tokens(constraints: str) -> list[str]:
    out, current = [], ""
    for char in constraints:
        if char in FEATURE_CHARS:
            current += char
        else:
            if current:
                out.append(current)
            current = ""
    return out + ([current] if current else [])


def requested(constraints: str, feature: str) -> str | None:
    """None when the job asked for `feature` as a whole token of an AND-only expression; else why
    not ("" when it did not ask at all). `noperf` is not `perf`; `perf|bigmem` may land on a node
    without the feature, so it asks for nothing certain."""
    if feature not in tokens(constraints):
        return ""
    if OR_OPERATORS & set(constraints):
        return f"constraint {constraints!r} requests {feature} only as an alternative (| or [])"
    return None


def exclusive(job_record: str) -> bool:
    """Whether `scontrol show job -o JOB` says the job has its nodes to itself. Slurm 22.05 gives
    the prolog no variable for it (no SLURM_JOB_OVERSUBSCRIBE); `--exclusive` and a partition's
    OverSubscribe=EXCLUSIVE show as OverSubscribe=NO, a shared allocation as OK, YES, USER or MCS.
    scontrol prints JobName, Command, WorkDir and StdOut unquoted: `sbatch -J 'x OverSubscribe=NO'`
    adds a second such word, so anything but exactly one, NO, is not exclusive."""
    values = [word[len("OverSubscribe="):] for word in job_record.split() if word.startswith("OverSubscribe=")]
    return values == ["NO"]


def live_grants(jobs: JobFacts, copy: str) -> tuple[Grant, ...]:
    """The grants whose job still runs and whose record names this copy: the only named-user
    entries the copy may carry (the epilog revokes on the record's copy, so an entry on any other
    path would outlive the job). A record whose revoke did not finish backs nothing."""
    return tuple(g for g in jobs.grants if g.job in jobs.alive and g.copy == copy and not g.revoking)


def granted_users(jobs: JobFacts) -> set[str]:
    return {g.user for g in jobs.grants if g.job in jobs.alive and not g.revoking}


def grant_acl(jobs: JobFacts, copy: str, mode: int) -> tuple[AclEntry, ...]:
    """The access ACL a copy (re)installed or repaired at `copy` with `mode` gets: `u:USER:r-x`
    for each live grant of it, as the prolog added it; () when there is none (the mode bits
    alone). Built from the records only, so an entry no live record backs is never carried over."""
    entries: tuple[AclEntry, ...] = ()
    for uid in sorted({g.uid for g in live_grants(jobs, copy)}):
        entries = with_user(entries, mode, uid, R | X)
    return entries


def lost_grants(acl: Acl | None, jobs: JobFacts, copy: str) -> tuple[Grant, ...]:
    """Live grants of `copy` whose user its ACL no longer lets run it: the copy was replaced (a
    perf upgrade's heal, setup) or the entry removed by hand while the job ran."""
    allowed = set() if acl is None or acl.kind != "access" else {
        e.id for e in acl.entries if e.tag == USER and (acl.effective(e) & (R | X)) == R | X}
    return tuple(g for g in live_grants(jobs, copy) if g.uid not in allowed)


def unbacked(acl: Acl | None, jobs: JobFacts) -> Acl | None:
    """The copy's ACL without the user entries live grants of it explain; None when nothing else
    is left (the mask that comes with a named entry is not access)."""
    if acl is None or acl.kind != "access":
        return acl
    live = {g.uid for g in live_grants(jobs, acl.path)}
    rest = tuple(e for e in acl.entries if not (e.tag == USER and e.id in live))
    if len(rest) == len(acl.entries):
        return acl
    if not any(e.tag != MASK and e.id is not None for e in rest):
        return None
    return acl._replace(entries=rest)


def live_paranoid(jobs: JobFacts) -> frozenset[int]:
    return frozenset(g.paranoid for g in jobs.grants if g.job in jobs.alive and g.paranoid is not None
                     and not g.revoking)


def findings(jobs: JobFacts, copy: str, copy_acl: Acl | None, paranoid: int | None, group: str) -> Iterator[Finding]:
    named_users = {e.id for e in (copy_acl.entries if copy_acl is not None else ()) if e.tag == USER}
    lost = lost_grants(copy_acl, jobs, copy)
    for grant in jobs.grants:
        where = f"job {grant.job}, user {grant.user}"
        if grant.revoking:
            yield _revoke_incomplete(grant, named_users, paranoid, group)
            continue
        if grant in lost:
            yield Finding("job.grant_lost", WARNING,
                          f"{where}: the grant record lets {grant.user} run {copy} for the job, but its ACL has "
                          f"no u:{grant.user}:r-x (replaced or changed while the job runs): the job has no perf",
                          f"perfgroup-node heal --group {group}")
            continue
        if grant.job in jobs.alive:
            lowered = f" and perf_event_paranoid={grant.paranoid}" if grant.paranoid is not None else ""
            what = "the privileged perf" + lowered
            yield Finding("job.grant_active", OK, f"{where}: {what} for the length of the job")
            continue
        yield Finding("job.record_gone", WARNING,
                      f"grant record of {where} outlived its job (no process of it on this node)",
                      f"perfgroup-node job-revoke --group {group} --job {grant.job}")
        if _still_open(grant, named_users, paranoid):
            yield Finding("job.grant_stale", CRITICAL,
                          f"{where} still has {_what(grant, named_users, paranoid)} though the job is gone",
                          f"perfgroup-node job-revoke --group {group} --job {grant.job}")
    for path, why in jobs.problems:
        yield Finding("job.record_unusable", WARNING, f"{path}: {why}", f"rm {path}  # after checking who wrote it")


def _still_open(grant: Grant, named_users: set[int | None], paranoid: int | None) -> bool:
    return (grant.acl_added and grant.uid in named_users) or (
        grant.paranoid is not None and paranoid == grant.paranoid and grant.paranoid_before != paranoid)


def _what(grant: Grant, named_users: set[int | None], paranoid: int | None) -> str:
    parts = []
    if grant.acl_added and grant.uid in named_users:
        parts.append(f"its ACL entry on {grant.copy}")
    if grant.paranoid is not None and paranoid == grant.paranoid:
        parts.append(f"perf_event_paranoid={paranoid}")
    return " and ".join(parts)


def active_count(jobs: JobFacts) -> int:
    """The number of live grant records (the textfile's perfgroup_job_grants_active)."""
    return sum(1 for g in jobs.grants if g.job in jobs.alive and not g.revoking)


def _revoke_incomplete(grant: Grant, named_users: set[int | None], paranoid: int | None, group: str) -> Finding:
    """A record the epilog marked and could not delete: a step of its revoke failed (a perf that
    outlived SIGKILL, a sysctl write refused) or it was killed; whatever it had not restored yet is
    still open, the job running or not."""
    left = f" ({_what(grant, named_users, paranoid)} still there)" if _still_open(grant, named_users, paranoid) else ""
    return Finding("job.revoke_incomplete", CRITICAL,
                   f"the epilog of job {grant.job} could not finish revoking the grant of {grant.user}{left}; "
                   "heal retries it", f"perfgroup-node job-revoke --group {group} --job {grant.job}")


def prolog_acl(entries: tuple[AclEntry, ...], mode: int, grant: Grant,
               others: Iterable[Grant]) -> tuple[bool, tuple[AclEntry, ...] | None]:
    """What the prolog does to the copy's access ACL (`entries`, () for the mode bits alone) for
    `grant`: (acl_added: the epilog removes the user's entry, the ACL to write or None). An entry
    of the user that another live grant of theirs on this copy (`others`: live records of other
    jobs) backs is that grant's; any other, added now or found there (set by hand, left by a
    crash), is this grant's: made `u:USER:r-x` and gone after the job."""
    backed = any(e.tag == USER and e.id == grant.uid for e in entries) and any(
        o.uid == grant.uid and o.copy == grant.copy and not o.revoking for o in others)
    if backed:
        return False, None
    wanted = with_user(entries, mode, grant.uid, R | X)
    return True, (wanted if set(wanted) != set(entries) else None)
