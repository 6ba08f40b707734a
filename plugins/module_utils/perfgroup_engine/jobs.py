"""Per-job access under Slurm (flows): the prolog's grant and the epilog's revoke, run as
`perfgroup-node job-grant` / `job-revoke` by the scripts `setup --job-feature` installs.

The prolog script exits by itself for a job that did not ask for the feature; this runs only for
one that named it. Grant: the job's user gets `u:USER:r-x` on the privileged copy (a named ACL
entry needs no group lookup, so it works whatever groups the job credential carries, and the copy
keeps its capabilities and its root:GROUP 0750), and with --job-paranoid N perf_event_paranoid is
lowered to N. The record under /run/perfgroup/grants/JOBID is written before anything changes
and deleted only once everything in it is restored: the epilog revokes from it, never from the
environment; a record left by a crash is found by the audit and revoked by heal.
"""

from __future__ import annotations

import grp
import os
import pwd
import subprocess
import time

from . import apply, log
from .acl import USER, read_acl, without_user
from .actions import SetParanoid
from .errors import ConvergeError, PerfgroupError, RefusedError
from .host import load_state, read_int
from .job_facts import Grant, copy_processes, format_record, job_alive, read_record, record_jobs
from .job_rules import exclusive, prolog_acl, requested
from .options import LOCK_WAIT_SECONDS
from .paths import SCONTROL, grant_path, state_path
from .sysctl import PROC_PATH
from .trust import path_problem
from .validate import check_name

TYPE_CHECKING = False  # as typing.TYPE_CHECKING (mypy knows the name), without importing typing at run time
if TYPE_CHECKING:
    from typing import Mapping

KILL_WAIT_SECONDS = 10.0  # an epilog that cannot end them fails: the node drains
SCONTROL_TIMEOUT = 20.0  # the prolog holds the job's start: a controller that does not answer is no grant


def _scontrol_job(job: str) -> str | None:
    """`scontrol show job -o JOB` (one line), None when it cannot say."""
    if path_problem(SCONTROL, "file") is not None:
        return None
    try:
        done = subprocess.run([SCONTROL, "show", "job", "-o", job], stdin=subprocess.DEVNULL, capture_output=True,
                              text=True, timeout=SCONTROL_TIMEOUT, env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin"})
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout if done.returncode == 0 else None


def _member(group: str, user: str, gid: int) -> bool:
    try:
        entry = grp.getgrnam(group)
    except KeyError:
        return False
    return user in entry.gr_mem or entry.gr_gid == gid


def grant(group: str, env: Mapping[str, str], feature: str, paranoid: int | None,
          scontrol: str | None = None) -> str:
    """The prolog's decision and grant; the line to print. An ineligible request is not an error
    (a failing prolog drains the node and holds the job): a syslog line, nothing changed.
    Raises PerfgroupError when a grant was started and could not be completed (undone first)."""
    check_name("group", group)
    job, user = env.get("SLURM_JOB_ID", ""), env.get("SLURM_JOB_USER", "")
    if not job.isdigit():
        raise RefusedError("SLURM_JOB_ID is missing or not a number: job-grant runs from slurmd's prolog")
    why = requested(env.get("SLURM_JOB_CONSTRAINTS", ""), feature)
    if why == "":
        return f"job {job}: did not ask for {feature}"
    if why is not None:
        return _refuse(job, user, why)
    try:
        entry = pwd.getpwnam(user)
    except KeyError:
        return _refuse(job, user, "unknown user")
    if str(entry.pw_uid) != env.get("SLURM_JOB_UID", str(entry.pw_uid)) or entry.pw_uid == 0:
        return _refuse(job, user, "SLURM_JOB_UID does not match the user, or root")
    if _member(group, user, entry.pw_gid):
        return f"job {job}: {user} is a member of {group}: nothing to grant"
    state, problem = load_state(state_path(group))
    if state is None:
        return _refuse(job, user, f"no usable setup record for group {group} ({problem})")
    record = scontrol if scontrol is not None else _scontrol_job(job)
    if record is None or not exclusive(record):
        return _refuse(job, user, "the allocation is not exclusive (scontrol shows no OverSubscribe=NO)"
                       if record is not None else "scontrol could not tell whether the allocation is exclusive")
    with apply.node_lock(LOCK_WAIT_SECONDS):
        old, problem = read_record(job)
        if problem is not None:
            raise RefusedError(f"{grant_path(job)}: {problem}")
        if old is not None:
            return f"job {job}: already granted to {old.user}"
        done = _grant(Grant(job, group, user, entry.pw_uid, state.dest, True), paranoid)
    log.note(f"job {job}: granted {user} {done}")
    return f"job {job}: granted {user} {done}"


def _refuse(job: str, user: str, why: str) -> str:
    text = f"job {job} of {user or '?'} asked for perf but gets no grant: {why}"
    log.note(text)
    return text


def _grant(planned: Grant, paranoid: int | None) -> str:
    copy = planned.copy
    problem = path_problem(copy, "file")
    if problem is not None:
        raise RefusedError(f"{problem}: not granting access to {copy}")
    acl = read_acl(copy, "access")
    entries = acl.entries if acl is not None else ()
    added, wanted = prolog_acl(entries, os.stat(copy).st_mode, planned, _others(planned))
    before = read_int(PROC_PATH) if paranoid is not None else None
    if paranoid is not None and before is None:
        raise RefusedError(f"cannot read {PROC_PATH}: --job-paranoid cannot be recorded")
    lower = paranoid is not None and before is not None and before > paranoid
    record = planned._replace(acl_added=added, paranoid_before=before if lower else None,
                              paranoid=paranoid if lower else None)
    apply.write_file(grant_path(record.job), format_record(record), step="write_grant_record", mode=0o644)
    try:
        if wanted is not None:
            apply.set_copy_acl(copy, wanted, "grant_acl", acl.text() if acl is not None else "",
                               f"u:{record.user}:r-x for job {record.job}")
        if lower:
            apply.set_paranoid(SetParanoid(PROC_PATH, f"job {record.job}", value=int(paranoid or 0), was=before))
    except PerfgroupError:
        _undo(record)  # a half grant is worse than none; raise what failed first either way
        raise
    return f"{copy}" + (f" and perf_event_paranoid {before} -> {paranoid}" if lower else "")


def revoke(group: str, job: str) -> str:
    """The epilog: undo what the job's record lists; raises ConvergeError when it cannot (the
    epilog fails and Slurm drains the node rather than leave access open)."""
    check_name("group", group)
    if not job.isdigit():
        raise RefusedError(f"job {job!r} is not a job id")
    with apply.node_lock(LOCK_WAIT_SECONDS):
        grant, problem = read_record(job)
        if problem is not None:
            raise ConvergeError("read_grant_record", f"{grant_path(job)}: {problem}: cannot tell what to restore")
        if grant is None:
            return f"job {job}: no grant"
        if grant.group != group:
            return f"job {job}: granted for group {grant.group}, not {group}"
        _undo(grant)
    log.note(f"job {job}: revoked the grant of {grant.user}")
    return f"job {job}: revoked {grant.user}"


def revoke_all(group: str, gone_only: bool) -> list[str]:
    """Revoke every grant record of the group (remove), or those whose job is gone or whose revoke
    did not finish (heal)."""
    done = []
    for job in record_jobs():
        grant, _ = read_record(job)
        if grant is None or grant.group != group or (
                gone_only and not grant.revoking and job_alive(grant.job, grant.uid)):
            continue  # heal: a live grant stays; one whose revoke did not finish is retried
        done.append(revoke(group, job))
    return done


def _others(grant: Grant) -> list[Grant]:
    """Live grants of other jobs (a uid's entry or a paranoid value they still need); one whose
    revoke did not finish needs nothing kept."""
    out = []
    for job in record_jobs():
        other, _ = read_record(job)
        if other is not None and job != grant.job and not other.revoking and job_alive(job, other.uid):
            out.append(other)
    return out


def _undo(grant: Grant) -> None:
    if not grant.revoking:
        # Before anything changes: a revoke that stops half way (a step fails, the epilog is
        # killed) leaves a record the audit reports (job.revoke_incomplete) and heal retries,
        # never one whose entry heal or setup would put back while the job still counts alive.
        apply.write_file(grant_path(grant.job), format_record(grant._replace(revoking=True)),
                         step="mark_grant_revoking", mode=0o644)
    others = _others(grant)
    keep_user = any(o.uid == grant.uid and o.copy == grant.copy for o in others)
    acl = read_acl(grant.copy, "access")
    entries = acl.entries if acl is not None else ()
    if grant.acl_added and not keep_user and any(e.tag == USER and e.id == grant.uid for e in entries):
        apply.set_copy_acl(grant.copy, without_user(entries, grant.uid), "revoke_acl", acl.text() if acl else "",
                           f"u:{grant.user} removed after job {grant.job}")
    if not keep_user:
        # After the ACL entry is gone no new one can start; end those still running (SIGKILL
        # takes effect when the process next runs: wait for them to be gone, bounded).
        deadline = time.monotonic() + KILL_WAIT_SECONDS
        pids = copy_processes(grant.copy, grant.uid)
        while pids and time.monotonic() < deadline:
            apply.kill_processes(pids, "kill_job_perf", f"{grant.copy} of {grant.user} after job {grant.job}")
            time.sleep(0.05)
            pids = copy_processes(grant.copy, grant.uid)
    restore = grant.paranoid is not None and grant.paranoid_before is not None and not any(
        o.paranoid is not None for o in others)
    if restore and read_int(PROC_PATH) == grant.paranoid:
        apply.set_paranoid(SetParanoid(PROC_PATH, f"job {grant.job} ended", value=int(grant.paranoid_before or 0),
                                       was=grant.paranoid))
    _check_restored(grant, keep_user, restore)
    apply.remove_path(grant_path(grant.job), "delete_grant_record")


def _check_restored(grant: Grant, keep_user: bool, restore: bool) -> None:
    left = []
    acl = read_acl(grant.copy, "access")
    if grant.acl_added and not keep_user and acl is not None and any(
            e.tag == USER and e.id == grant.uid for e in acl.entries):
        left.append(f"u:{grant.user} on {grant.copy}")
    if not keep_user and copy_processes(grant.copy, grant.uid):
        left.append(f"processes of {grant.user} running {grant.copy}")
    if restore and read_int(PROC_PATH) == grant.paranoid:
        left.append(f"perf_event_paranoid still {grant.paranoid}")
    if left:
        raise ConvergeError("revoke_check", f"job {grant.job}: still open: {'; '.join(left)}")
