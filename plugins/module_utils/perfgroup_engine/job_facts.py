"""Per-job grants under Slurm (read layer): the grant records under /run/perfgroup/grants, whether
each record's job still runs on this node, and which processes run the privileged copy. Rules in
job_rules.py; the prolog's grant and the epilog's revoke in jobs.py.

A record is `key=value` lines (no json on the audit path), written before the grant changes
anything and deleted only once everything it lists is restored.
"""

from __future__ import annotations

import os

from .access_facts import parse_status
from .host import read_text
from .paths import GRANTS_DIR, grant_path
from .trust import path_problem
from .tuples import NamedTuple

TYPE_CHECKING = False  # as typing.TYPE_CHECKING (mypy knows the name), without importing typing at run time
if TYPE_CHECKING:
    from typing import Iterable

# Whether a job still runs on this node comes only from what a user other than root cannot make:
# its cgroup (proctrack/cgroup, below /sys/fs/cgroup; patterns with at most one `*` per component)
# holding a process, or a root process titled as the job's slurmstepd. Never from environments
# (anyone can start `env SLURM_JOB_ID=N sleep infinity`) nor from a cgroup directory alone (a crash
# leaves them behind).
CGROUP_ROOT = "/sys/fs/cgroup"
# v2: under the scope 22.05 asks systemd for over D-Bus, named NODENAME_slurmstepd.scope on Debian
# 12 (seen in tests/vm/test_slurm_kernel.py; plain slurmstepd.scope in other builds). `populated 1`
# in its cgroup.events says a process is in it; no user can move one in (that needs write access
# to the cgroup.procs of the common ancestor with the user's own cgroup: the root's).
CGROUP_V2_JOB_DIRS = ("system.slice/*slurmstepd.scope/job_{job}",)
# v1, per controller: slurm/uid_U/job_N, slurm_NODENAME/... in builds with multiple-slurmd. A
# non-empty cgroup.procs somewhere below counts, if root made it: 22.05 gives the step cgroups to
# the job's user (xcgroup_create_hierarchy), who can make cgroups of their own in them and move
# their processes there (v1 asks only for the same uid and write access to the target file).
CGROUP_V1_JOB_DIRS = (
    "freezer/slurm*/uid_{uid}/job_{job}",
    "cpuset/slurm*/uid_{uid}/job_{job}",
)
# slurmstepd (root) rewrites its title to `slurmstepd: [JOB.STEP]`: [5.batch], [5.extern] (with
# PrologFlags=Contain, for the whole job), [5.0] (seen with Debian 12's Slurm 22.05.8, whose
# executable is /usr/sbin/slurmstepd-wlm). A step of a heterogeneous job adds `+COMPONENT`.
STEPD_TITLE = "slurmstepd: ["
STEPD_EXE = "slurmstepd"  # the start of its executable's name


class Grant(NamedTuple):
    job: str
    group: str
    user: str
    uid: int
    copy: str  # the privileged copy the ACL entry is on
    acl_added: bool  # False: another live grant of the user backed the entry it found (that grant's to remove)
    paranoid_before: int | None = None  # None: the grant did not touch perf_event_paranoid
    paranoid: int | None = None  # what the grant set it to
    # The epilog marks the record before it changes anything: a revoke that did not finish (a
    # step failed, the epilog was killed) is never taken for a live grant to keep or rebuild.
    revoking: bool = False


# Fields a record may lack: written only when set, so a record of a grant the epilog has not
# touched reads the same as before the field existed (older records, older perfgroup-node).
OPTIONAL_FIELDS = frozenset({"revoking"})


def format_record(grant: Grant) -> str:
    lines = [f"{name}={'' if value is None else int(value) if isinstance(value, bool) else value}"
             for name, value in zip(Grant._fields, grant) if value or name not in OPTIONAL_FIELDS]
    return "\n".join(lines) + "\n"


def parse_record(text: str) -> Grant | None:
    """The record, or None when it is not one perfgroup wrote (every field, well formed)."""
    values = {}
    for line in text.splitlines():
        name, sep, value = line.partition("=")
        if not sep or name in values:
            return None
        values[name] = value
    if not set(Grant._fields) - OPTIONAL_FIELDS <= set(values) <= set(Grant._fields):
        return None

    def number(name: str) -> int | None:
        value = values[name]
        if value == "":
            return None
        if not value.isdigit():
            raise ValueError(name)
        return int(value)

    try:
        uid = number("uid")
        revoking = values.get("revoking", "0")
        if uid is None or values["acl_added"] not in ("0", "1") or revoking not in ("0", "1") or not values["job"].isdigit():
            return None
        return Grant(values["job"], values["group"], values["user"], uid, values["copy"], values["acl_added"] == "1",
                     number("paranoid_before"), number("paranoid"), revoking == "1")
    except ValueError:
        return None


class JobFacts(NamedTuple):
    grants: tuple[Grant, ...] = ()  # this group's grant records
    alive: frozenset[str] = frozenset()  # jobs of those records seen running on this node
    problems: tuple[tuple[str, str], ...] = ()  # (path, why) of records that cannot be used


def read_record(job: str) -> tuple[Grant | None, str | None]:
    """(the record, why it cannot be used); (None, None) when there is none."""
    path = grant_path(job)
    if not os.path.lexists(path):
        return None, None
    problem = path_problem(path, "file")
    if problem is not None:
        return None, problem
    text = read_text(path)
    grant = parse_record(text) if text is not None else None
    if grant is None or grant.job != job:
        return None, "unreadable or not a perfgroup grant record"
    return grant, None


def job_alive(job: str, uid: int, proc: str = "/proc", cgroup_root: str = CGROUP_ROOT) -> bool:
    """Whether the job still has a process on this node: its cgroup holds one (proctrack/cgroup),
    or a root process (real uid 0) is one of its slurmstepds (every other proctrack: a step runs
    under its stepd). Nothing a user other than root can start or change counts."""
    for pattern in CGROUP_V2_JOB_DIRS:
        if any(_cgroup_populated(d) for d in _expand(cgroup_root, pattern.format(job=job, uid=uid))):
            return True
    try:
        owner = os.stat(cgroup_root).st_uid  # root (/sys/fs/cgroup's owner)
    except OSError:
        owner = None
    for pattern in CGROUP_V1_JOB_DIRS:
        if owner is not None and any(_v1_holds_process(d, owner)
                                     for d in _expand(cgroup_root, pattern.format(job=job, uid=uid))):
            return True
    return any(_stepd_of(pid, job, proc) for pid in _pids(proc))


def _stepd_of(pid: str, job: str, proc: str) -> bool:
    """Whether the process is a slurmstepd of the job: its title (cmdline and status are world-
    readable), real uid 0 (a setuid program started with a forged argv[0], e.g. sudo at its
    password prompt, keeps its caller's real uid), and, where this audit may read it (root), an
    executable named slurmstepd*."""
    title = f"{STEPD_TITLE}{job}.".encode()
    try:
        with open(f"{proc}/{pid}/cmdline", "rb") as handle:
            if handle.read(len(title)) != title:
                return False
    except OSError:
        return False
    if _real_uid(proc, pid) != 0:
        return False
    try:
        exe = os.readlink(f"{proc}/{pid}/exe")
    except OSError:
        return True  # a non-root audit may not read root's: title and uid are what it can check
    if exe.endswith(" (deleted)"):
        exe = exe[:-len(" (deleted)")]  # a stepd of the Slurm installed before an upgrade
    return os.path.basename(exe).startswith(STEPD_EXE)


def _expand(root: str, pattern: str) -> list[str]:
    """The paths below root matching pattern, whose components may hold one `*` (no glob: it
    imports re, which the node's audit path does without)."""
    paths = [root]
    for part in pattern.split("/"):
        if "*" not in part:
            paths = [os.path.join(path, part) for path in paths]
            continue
        head, tail = part.split("*", 1)
        paths = [os.path.join(path, name) for path in paths for name in _names(path)
                 if name.startswith(head) and name.endswith(tail) and len(name) >= len(head) + len(tail)]
    return paths


def _names(directory: str) -> list[str]:
    try:
        return os.listdir(directory)
    except OSError:
        return []


def _cgroup_populated(directory: str) -> bool:
    """cgroup v2: `populated 1` in cgroup.events (the directory alone is left by a crash)."""
    events = read_text(os.path.join(directory, "cgroup.events"), 4096)
    return events is not None and "populated 1" in events.splitlines()


def _v1_holds_process(directory: str, owner: int) -> bool:
    """cgroup v1 has no cgroup.events: a cgroup.procs that lists a process, in the job's cgroup or
    below, and that `owner` (root) made, not the job's user in a step cgroup Slurm gave them."""
    for path, _dirs, files in os.walk(directory):
        if "cgroup.procs" not in files:
            continue
        procs = os.path.join(path, "cgroup.procs")
        try:
            if os.stat(procs).st_uid != owner:
                continue
        except OSError:
            continue
        if (read_text(procs, 64) or "").strip():
            return True
    return False


def _pids(proc: str) -> Iterable[str]:
    return [name for name in _names(proc) if name.isdigit()]


def copy_processes(copy: str, uid: int, proc: str = "/proc") -> tuple[int, ...]:
    """Processes of real uid `uid` whose executable is the copy (also a replaced, deleted one)."""
    real = os.path.realpath(copy)
    names = {copy, real, f"{copy} (deleted)", f"{real} (deleted)"}
    found = []
    for pid in _pids(proc):
        try:
            if os.readlink(f"{proc}/{pid}/exe") not in names:
                continue
        except OSError:
            continue
        if _real_uid(proc, pid) == uid:
            found.append(int(pid))
    return tuple(found)


def _real_uid(proc: str, pid: str) -> int | None:
    return parse_status(read_text(f"{proc}/{pid}/status") or "")[0]


def record_jobs() -> tuple[str, ...]:
    try:
        return tuple(sorted(name for name in os.listdir(GRANTS_DIR) if name.isdigit()))
    except OSError:
        return ()


def read(group: str) -> JobFacts:
    grants, problems = [], []
    for job in record_jobs():
        grant, problem = read_record(job)
        if problem is not None:
            problems.append((grant_path(job), problem))
        elif grant is not None and grant.group == group:
            grants.append(grant)
    alive = frozenset(g.job for g in grants if job_alive(g.job, g.uid))
    return JobFacts(tuple(grants), alive, tuple(problems))
