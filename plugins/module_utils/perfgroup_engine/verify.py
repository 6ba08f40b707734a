"""Proof by running perf: what members get, workload by workload, and that others do not.

Identities: a fresh uid holding the group (the member) runs the copy; another fresh uid without it
(the non-member) runs the copy (it must not even start) and the stock perf (what the perf wrapper
gives them), which must be refused every privileged workload.

A fresh uid is one nothing else on the node is or can become (`fresh_ids`): drawn at random from the
top of the id space, with no passwd or group entry, in no subuid/subgid range, used by no process.
So no other process can ptrace what runs as it (same-uid ptrace is all Yama's scope 0 asks, and
Debian boots with it), signal it, or write its directories. Each identity's HOME and working
directory is its own 0700 directory inside a root-owned 0711 one (`Identities`): nobody else can
plant a libtraceevent plugin or a .perfconfig there. When verification ends, every process running
as either uid is killed (kill(-1) sent as that uid, then /proc checked): nothing it started keeps
the group.

With perf-shell (setup --shell), two more workloads run inside a session as its helper starts it
(capsh with the ambient capabilities and the locked secure bits, then the member's identity): the
stock perf counting system-wide, and a program that calls perf_event_open itself. sudo, which
starts the helper for real members, needs a passwd entry that a fresh uid never has: verify starts
capsh itself, and tests/integration/test_perf_shell.py proves the sudo path.

On a shell-only node (file capabilities cannot work where the copy would be: nosuid, no xattrs;
setup installed perf-shell and no copy) there is no copy to probe, and verify says so. The member
check is then a session's system-wide count (as above) and perf-shell's command, helper and drop-in
as setup wrote them, with sudo and capsh present; the non-member check is what can be shown without
sudo: the drop-in holds only the group's rule, the helper is no set-id file and only root can change
it, and the helper run directly by the non-member (no sudo) gives nothing. ShellOnly carries the
judgments (findings.shell_only_problems); the copy's workloads are "unavailable: no copy".

Workloads: system-wide counting, counting another user's process, system-wide sampling with call
graphs, kernel symbols in its report, a tracepoint, a large ring buffer. A workload the node cannot
support (no tracefs, kptr_restrict=2, lockdown) is "unavailable" with the reason, never a failure
of the group.
"""

from __future__ import annotations

import contextlib
import grp
import os
import pwd
import random
import re
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Iterator

from .errors import VerifyError
from .paths import shell_helper_path, sudoers_path
from .tuples import NamedTuple

OTHER_UID = 1  # daemon: the "other user" whose process members count (it holds nothing)
# Fresh ids come from the top of the 32-bit id space: (uid_t)-1 is invalid and (uid_t)-2 is the
# overflow id, so the highest usable one is 4294967293; FRESH_SPAN ids below it are candidates.
FRESH_TOP = 4294967294
FRESH_SPAN = 1 << 28
FRESH_ATTEMPTS = 200
RESERVED_IDS = frozenset({65534, 65535})  # nobody/nogroup and (uint16_t)-1
SUB_ID_FILES = ("/etc/subuid", "/etc/subgid")
PRIVATE_TMP = "/run"  # root's own tmpfs: no other user can create or rename anything in it
PERF_ARGS = ("stat", "-a", "-e", "cpu-clock", "--", "true")
TIMEOUT = 60
SHORT = ("--", "sleep", "0.1")
KERNEL_SYMBOL = re.compile(r"\[k\] +[A-Za-z_][A-Za-z0-9_.]*")
# perf-shell's secure bits (templates/perf-shell-helper.sh.j2): NOROOT, NO_SETUID_FIXUP and
# NO_CAP_AMBIENT_RAISE, each set and locked.
SESSION_SECBITS = 239
# A program that counts by itself, as PAPI or LIKWID do: perf_event_open(2) on CPU 0 for every
# process (pid -1), a software cpu-clock event, through ctypes (no compiler on the node).
COUNTER = (
    "import ctypes, os, platform, struct, sys\n"
    "number = {'x86_64': 298, 'aarch64': 241, 'ppc64le': 319, 's390x': 331}[platform.machine()]\n"
    "attr = ctypes.create_string_buffer(128)\n"
    "struct.pack_into('IIQ', attr, 0, 1, 128, 0)  # PERF_TYPE_SOFTWARE, size, PERF_COUNT_SW_CPU_CLOCK\n"
    "libc = ctypes.CDLL(None, use_errno=True)\n"
    "fd = libc.syscall(number, attr, -1, 0, -1, 0)\n"
    "if fd < 0:\n"
    "    sys.exit('perf_event_open: ' + os.strerror(ctypes.get_errno()))\n"
    "print('counted', struct.unpack('Q', os.read(fd, 8))[0])\n"
)


@dataclass(frozen=True)
class Probe:
    ran: bool  # the executable started
    returncode: int | None
    detail: str

    @property
    def allowed(self) -> bool:
        return self.ran and self.returncode == 0


@dataclass(frozen=True)
class Workload:
    id: str
    title: str
    args: tuple[str, ...]  # {dir} and {pid} are filled in
    needs: str = ""  # "tracefs", "kallsyms", "mlock": what the node must support


WORKLOADS: tuple[Workload, ...] = (
    Workload("count_system", "system-wide counting (stat -a)", ("stat", "-a", "-e", "cpu-clock", *SHORT)),
    Workload("count_other_process", "counting another user's process (stat -p)",
             ("stat", "-e", "cpu-clock", "-p", "{pid}", *SHORT)),
    Workload("sample_callgraph", "system-wide sampling with call graphs (record -a -g)",
             ("record", "-q", "-a", "-g", "-o", "{dir}/cg.data", *SHORT)),
    Workload("kernel_symbols", "kernel symbols in the report (report --sort sym)",
             ("report", "-i", "{dir}/cg.data", "--stdio", "--sort", "sym"), needs="kallsyms"),
    Workload("tracepoint", "tracepoint (stat -e sched:sched_switch -a)",
             ("stat", "-e", "sched:sched_switch", "-a", *SHORT), needs="tracefs"),
    Workload("big_buffer", "large ring buffer (record -m 2048 -a)",
             ("record", "-q", "-m", "2048", "-a", "-o", "{dir}/big.data", *SHORT), needs="mlock"),
)


@dataclass(frozen=True)
class Row:
    workload: Workload
    member: Probe | None
    non_member: Probe | None  # the stock perf; None when there is none
    unavailable: str = ""  # the reason the node cannot support it
    non_member_expected: str = "refused"  # or "either" (paranoid < 2 lets everyone)

    @property
    def ok(self) -> bool:
        if self.unavailable:
            return True
        if self.member is None or not self.member.allowed:
            return False
        return self.non_member_expected != "refused" or self.non_member is None or not self.non_member.allowed

    @property
    def expected(self) -> str:
        if self.unavailable:
            return f"unavailable: {self.unavailable}"
        return "member allowed, non-member " + self.non_member_expected

    def as_dict(self) -> dict[str, object]:
        return {
            "id": self.workload.id, "title": self.workload.title, "ok": self.ok, "expected": self.expected,
            "unavailable": self.unavailable or None,
            "member": _probe_dict(self.member), "non_member": _probe_dict(self.non_member),
        }


def _probe_dict(probe: Probe | None) -> dict[str, object] | None:
    if probe is None:
        return None
    return {**asdict(probe), "outcome": "allowed" if probe.allowed else "refused"}


NOT_RUN = "sudo: the fresh uids have no passwd entry, which sudo needs; the session was started with capsh, as the helper starts it"


@dataclass(frozen=True)
class ShellOnly:
    """A node without a copy: where it would be, file capabilities cannot work, and setup installed
    perf-shell instead (findings.shell_only). What verify checks there without running a process,
    judged by findings.shell_only_problems."""

    dest: str
    reason: str  # policy.caps_blocked: "a nosuid mount", "nfs4, which cannot hold file capabilities"
    group: str
    member_problems: tuple[str, ...] = ()  # what keeps members from starting perf-shell
    non_member_problems: tuple[str, ...] = ()  # what could let someone outside the group start it

    @property
    def no_copy(self) -> str:
        return f"file capabilities do not work on this mount ({os.path.dirname(self.dest)} is on {self.reason})"

    def as_dict(self) -> dict[str, object]:
        return {
            "dest": self.dest, "reason": self.reason, "no_copy": self.no_copy,
            "member_probe": "the stock perf stat -a (or a program's own perf_event_open) in a perf-shell session",
            "non_member_probe": f"{shell_helper_path(self.group)} run by the non-member without sudo",
            "member_problems": list(self.member_problems), "non_member_problems": list(self.non_member_problems),
            "not_run": NOT_RUN,
        }


@dataclass(frozen=True)
class VerifyResult:
    member: Probe  # the copy as the member; on a shell-only node, a perf-shell session
    non_member: Probe  # the copy as the non-member; on a shell-only node, the helper without sudo
    stock: Probe | None  # the distribution's perf for the member, if there is one
    rows: tuple[Row, ...] = field(default=())
    shell_only: ShellOnly | None = None  # no copy on this node: what was checked instead

    @property
    def member_ok(self) -> bool:
        return self.member.allowed and not (self.shell_only is not None and self.shell_only.member_problems)

    @property
    def non_member_refused(self) -> bool:
        return not self.non_member.allowed and not (self.shell_only is not None and self.shell_only.non_member_problems)

    @property
    def workloads_ok(self) -> bool:
        return all(row.ok for row in self.rows)

    @property
    def ok(self) -> bool:
        return self.member_ok and self.non_member_refused and self.workloads_ok

    def as_dict(self) -> dict[str, object]:
        return {
            "ok": self.ok, "member_ok": self.member_ok, "non_member_refused": self.non_member_refused,
            "workloads_ok": self.workloads_ok,
            "member": asdict(self.member), "non_member": asdict(self.non_member),
            "stock": asdict(self.stock) if self.stock else None,
            "workloads": [row.as_dict() for row in self.rows],
            "copy_probed": self.shell_only is None,
            "shell_only": self.shell_only.as_dict() if self.shell_only is not None else None,
        }

    def lines(self) -> list[str]:
        if self.shell_only is not None:
            out = self.shell_only_lines(self.shell_only)
        else:
            out = [
                ("member (a fresh uid + group): " + ("profiled system-wide" if self.member_ok else f"FAILED: {self.member.detail}")),
                ("non-member (a fresh uid): " + ("refused" if self.non_member_refused else "ALLOWED: the copy is open to everyone")),
            ]
        if self.stock is not None:
            refused = not self.stock.ran or self.stock.returncode != 0
            out.append("stock perf for the member: " + ("refused -a, as expected" if refused else "allowed -a (perf_event_paranoid is low)"))
        failed = [row for row in self.rows if not row.ok]
        if failed:
            out.append("workloads not as expected: " + "; ".join(
                f"{row.workload.id} (member: {row.member.detail if row.member else '-'}; "
                f"non-member: {row.non_member.detail if row.non_member else '-'})" for row in failed))
        return out

    def shell_only_lines(self, only: ShellOnly) -> list[str]:
        """The member's and the non-member's lines on a node without a copy, what stands in for
        the copy's probes, and what was not run."""
        helper = shell_helper_path(only.group)
        if self.member_ok:
            member = ("profiled system-wide in a perf-shell session; perf-shell's command, helper and sudoers "
                      "drop-in are as setup wrote them")
        else:
            member = "FAILED: " + "; ".join(
                [*only.member_problems, *([] if self.member.allowed else [f"perf-shell session: {self.member.detail}"])])
        if self.non_member_refused:
            other = (f"refused: {sudoers_path(only.group)} lets only %{only.group} run {helper} through sudo, "
                     f"and run without sudo it gave nothing ({self.non_member.detail})")
        elif self.non_member.allowed:
            other = "; ".join((f"ALLOWED: {helper}, run without sudo, counted system-wide", *only.non_member_problems))
        else:
            other = "MAY START perf-shell: " + "; ".join(only.non_member_problems)
        return [f"member (a fresh uid + group): {member}", f"non-member (a fresh uid): {other}",
                f"no copy to probe on this node: {only.no_copy}; members use perf-shell", f"not run: {NOT_RUN}"]

    def matrix(self) -> list[str]:
        def cell(probe: Probe | None, unavailable: str) -> str:
            if unavailable:
                return "-"
            return "-" if probe is None else "allowed" if probe.allowed else "refused"

        out = [f"{'workload':54} {'member':8} {'non-member':10} expected"]
        for row in self.rows:
            mark = "" if row.ok else "  <-- NOT AS EXPECTED"
            out.append(f"{row.workload.title:54} {cell(row.member, row.unavailable):8} "
                       f"{cell(row.non_member, row.unavailable):10} {row.expected}{mark}")
        return out


def drop_to(uid: int, gid: int, groups: list[int]) -> Callable[[], None]:
    """Child-side switch to an unprivileged identity (subprocess's user=/extra_groups= are 3.9+).
    setuid from root to a non-zero uid clears every capability, so the exec that follows gets
    only what the file grants: a 0750 copy stays closed to a non-member."""

    def switch() -> None:
        os.setgroups(groups)
        os.setgid(gid)
        os.setuid(uid)

    return switch


class Identity(NamedTuple):
    """Who a probe runs as: a fresh uid (and the same number as its primary gid), the
    supplementary groups (the group for the member, none for the non-member), and its directory
    (HOME and cwd), which only this uid and root can enter."""

    uid: int
    groups: tuple[int, ...]
    home: str

    @property
    def gid(self) -> int:
        return self.uid


def _id_map(path: str) -> list[tuple[int, int]]:
    """The ids this process's user namespace maps, as [start, end) ranges (all of them when the
    map cannot be read, as in the initial namespace)."""
    ranges = []
    try:
        with open(path) as handle:
            for line in handle:
                fields = line.split()
                if len(fields) == 3:
                    ranges.append((int(fields[0]), int(fields[0]) + int(fields[2])))
    except (OSError, ValueError):
        return [(0, FRESH_TOP + 1)]
    return ranges


def _sub_id_ranges() -> list[tuple[int, int]]:
    """Ranges delegated to users for their own user namespaces (newuidmap): ids there can be
    taken by those users, so a fresh id is never one of them."""
    ranges = []
    for path in SUB_ID_FILES:
        try:
            with open(path) as handle:
                lines = handle.read().splitlines()
        except OSError:
            continue
        for line in lines:
            fields = line.strip().split(":")
            if len(fields) == 3 and fields[1].isdigit() and fields[2].isdigit():
                ranges.append((int(fields[1]), int(fields[1]) + int(fields[2])))
    return ranges


def _status_ids(pid: str) -> tuple[set[int], set[int], bool] | None:
    """(uids, gids and groups, alive) of a process from /proc/PID/status; None when it is gone."""
    uids: set[int] = set()
    gids: set[int] = set()
    alive = True
    try:
        with open(f"/proc/{pid}/status") as handle:
            for line in handle:
                key, _, value = line.partition(":")
                if key == "State":
                    alive = not value.strip().startswith(("Z", "X"))
                elif key == "Uid":
                    uids.update(int(v) for v in value.split())
                elif key in ("Gid", "Groups"):
                    gids.update(int(v) for v in value.split())
    except (OSError, ValueError):
        return None
    return uids, gids, alive


def _ids_in_use() -> set[int]:
    """Every uid, gid and supplementary group of every process this node's /proc shows."""
    used: set[int] = set()
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            ids = _status_ids(pid)
            if ids is not None:
                used |= ids[0] | ids[1]
    return used


def _is_free(candidate: int, used: set[int], sub_ranges: list[tuple[int, int]]) -> bool:
    if candidate in used or candidate in RESERVED_IDS:
        return False
    if any(start <= candidate < end for start, end in sub_ranges):
        return False
    try:
        pwd.getpwuid(candidate)
        return False
    except KeyError:
        pass
    try:
        grp.getgrgid(candidate)
        return False
    except KeyError:
        pass
    return True


def fresh_ids(count: int) -> list[int]:
    """`count` distinct ids, each usable as a uid and as a gid, that nothing else on the node is:
    no passwd or group entry (NSS, so LDAP/SSSD too), no process with it as any uid, gid or
    group, outside every subuid/subgid range, never nobody. Drawn at random from the top of what
    this user namespace maps (the 32-bit space on a host), so two runs at once do not meet."""
    uid_map, gid_map = _id_map("/proc/self/uid_map"), _id_map("/proc/self/gid_map")
    spans = []
    for start, end in uid_map:
        for g_start, g_end in gid_map:
            low, high = max(start, g_start, 1), min(end, g_end, FRESH_TOP)
            if low < high:
                spans.append((low, high))
    if not spans:
        raise VerifyError("no id is mapped both as a uid and as a gid here: cannot pick a verification identity")
    low, high = max(spans, key=lambda span: span[1])
    low = max(low, high - FRESH_SPAN)
    used = _ids_in_use()
    sub_ranges = _sub_id_ranges()
    chooser = random.SystemRandom()
    found: list[int] = []
    for _ in range(FRESH_ATTEMPTS):
        candidate = chooser.randrange(low, high)
        if candidate not in found and _is_free(candidate, used, sub_ranges):
            found.append(candidate)
            if len(found) == count:
                return found
    raise VerifyError(f"no unused id found in {low}-{high - 1} for the verification identities")


def processes_of(uids: set[int]) -> list[int]:
    """Live processes running as any of uids (real, effective, saved or filesystem uid)."""
    found = []
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            ids = _status_ids(pid)
            if ids is not None and ids[2] and ids[0] & uids:
                found.append(int(pid))
    return found


def _kill_all_as(uid: int) -> None:
    """kill(-1, SIGKILL) sent as uid: every process of that uid (a fresh one: only what verify
    started) at once, forks in flight included, and nothing else."""
    pid = os.fork()
    if pid == 0:  # pragma: no cover -- the child
        try:
            os.setgroups([])
            os.setgid(uid)
            os.setuid(uid)
            with contextlib.suppress(ProcessLookupError):
                os.kill(-1, signal.SIGKILL)
        finally:
            os._exit(0)
    os.waitpid(pid, 0)


def end_processes(uids: set[int], wait: float = 5.0) -> None:
    """Kill everything running as the verification uids; raise if anything survives."""
    deadline = time.monotonic() + wait
    while True:
        for uid in sorted(uids):
            _kill_all_as(uid)
        left = processes_of(uids)
        if not left:
            return
        if time.monotonic() > deadline:
            raise VerifyError(f"processes of the verification identities survived SIGKILL: pids {left}")
        time.sleep(0.02)


def _private_dir() -> str:
    """Where to put the verification directories: /run, which must be root's alone (never a
    $TMPDIR someone else could have chosen or can write)."""
    try:
        info = os.lstat(PRIVATE_TMP)
    except OSError as error:
        raise VerifyError(f"{PRIVATE_TMP}: {error.strerror}: no private place for the verification homes") from None
    if stat.S_ISDIR(info.st_mode) and info.st_uid == 0 and not info.st_mode & 0o022:
        return PRIVATE_TMP
    raise VerifyError(f"{PRIVATE_TMP} is not root's alone: no private place for the verification homes")


class Identities:
    """The member and the non-member of one verification, and their directories:
    `/run/perfgroup-verify-XXXX` (root 0711) holding `member` and `non-member`, each owned by its
    fresh uid and 0700. On exit every process of both uids is killed, then the directories go."""

    def __init__(self, gid: int) -> None:
        self.gid = gid
        self.base = ""
        self.member: Identity
        self.non_member: Identity

    def __enter__(self) -> Identities:
        member_uid, non_member_uid = fresh_ids(2)
        self.base = tempfile.mkdtemp(prefix="perfgroup-verify-", dir=_private_dir())  # root, 0700
        try:
            homes = []
            for name, uid in (("member", member_uid), ("non-member", non_member_uid)):
                home = os.path.join(self.base, name)
                os.mkdir(home, 0o700)
                os.chown(home, uid, uid)
                os.chmod(home, 0o700)
                homes.append(home)
            os.chmod(self.base, 0o711)  # each uid may pass to its own directory, list nothing
        except BaseException:
            shutil.rmtree(self.base, ignore_errors=True)
            raise
        self.member = Identity(member_uid, (self.gid,), homes[0])
        self.non_member = Identity(non_member_uid, (), homes[1])
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            end_processes({self.member.uid, self.non_member.uid})
        finally:
            shutil.rmtree(self.base, ignore_errors=True)


class Started(NamedTuple):
    """A probe running (or one that could not start: `done` already set)."""

    process: subprocess.Popen | None  # type: ignore[type-arg]
    output: Any  # temp file holding stdout+stderr
    check: Callable[[str], bool] | None
    done: Probe | None = None


def start(executable: str, identity: Identity, args: tuple[str, ...] = PERF_ARGS,
          check: Callable[[str], bool] | None = None, drop: bool = True, env: dict[str, str] | None = None) -> Started:
    """Start one probe as identity, in its own directory and session; output goes to a temp file,
    so many can run at once (no pipes to fill, no threads: preexec_fn is only safe without them).
    drop=False: the executable switches to identity itself (capsh, for a perf-shell session).
    env: more environment variables for it."""
    output = tempfile.TemporaryFile(mode="w+")  # noqa: SIM115 -- closed by finish(), after the process ends
    try:
        process = subprocess.Popen(
            [executable, *args], preexec_fn=drop_to(identity.uid, identity.gid, list(identity.groups)) if drop else None,
            env={**(env or {}), "PATH": "/usr/bin:/bin", "LC_ALL": "C", "HOME": identity.home}, cwd=identity.home,
            stdin=subprocess.DEVNULL, stdout=output, stderr=subprocess.STDOUT, text=True, start_new_session=True,
        )
    except PermissionError:
        output.close()
        return Started(None, None, check, Probe(ran=False, returncode=None, detail="permission denied (cannot execute)"))
    except OSError as error:
        output.close()
        return Started(None, None, check, Probe(ran=False, returncode=None, detail=error.strerror or str(error)))
    return Started(process, output, check)


def _kill_group(process: subprocess.Popen) -> None:  # type: ignore[type-arg]
    """SIGKILL the probe's session (its own process group): perf and the workload it started."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)


def finish(started: Started) -> Probe:
    if started.done is not None or started.process is None:
        return started.done or Probe(ran=False, returncode=None, detail="did not start")
    try:
        code = started.process.wait(timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        _kill_group(started.process)
        started.process.kill()
        started.process.wait()
        started.output.close()
        return Probe(ran=True, returncode=None, detail=f"timed out after {TIMEOUT}s")
    _kill_group(started.process)  # whatever it left behind in its group
    started.output.seek(0)
    text = started.output.read()
    started.output.close()
    if code == 0 and started.check is not None and not started.check(text):
        return Probe(ran=True, returncode=1, detail="ran, but no kernel symbol in the report")
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    detail = "ok" if code == 0 else (lines[0] if lines else f"exit {code}")
    return Probe(ran=True, returncode=code, detail=detail[:300])


def probe(executable: str, identity: Identity, args: tuple[str, ...] = PERF_ARGS,
          check: Callable[[str], bool] | None = None) -> Probe:
    return finish(start(executable, identity, args, check))


class Node:
    """What verify needs to know of the node to call a workload unavailable (read by the caller)."""

    def __init__(self, paranoid: int | None, kptr_restrict: int | None, lockdown: str | None,
                 tracefs: str, mlock_ok: bool) -> None:
        self.paranoid = paranoid
        self.kptr_restrict = kptr_restrict
        self.lockdown = lockdown
        self.tracefs = tracefs  # "" when members can read it, else why not
        self.mlock_ok = mlock_ok

    def unavailable(self, needs: str) -> str:
        if self.lockdown == "confidentiality" and needs in ("kallsyms", "tracefs"):
            return "kernel lockdown=confidentiality"
        if needs == "kallsyms" and self.kptr_restrict == 2:
            return "kptr_restrict=2 hides kernel addresses from everyone"
        if needs == "tracefs":
            return self.tracefs
        if needs == "mlock" and not self.mlock_ok:
            return "the copy lacks cap_ipc_lock and the mlock budget is below 8 MiB per CPU"
        return ""


@contextlib.contextmanager
def other_process() -> Iterator[int]:
    """A process of another user (daemon) for members to count; it holds no group, and it is
    killed with its whole session when verification ends."""
    child = subprocess.Popen(["sleep", "30"], preexec_fn=drop_to(OTHER_UID, OTHER_UID, []), cwd="/",
                             env={"PATH": "/usr/bin:/bin", "LC_ALL": "C", "HOME": "/"}, start_new_session=True,
                             stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        yield child.pid
    finally:
        _kill_group(child)
        child.kill()
        child.wait()


def has_kernel_symbol(report: str) -> bool:
    return bool(KERNEL_SYMBOL.search(report))


def start_workload(workload: Workload, executable: str, identity: Identity, pid: int) -> Started:
    args = tuple(a.replace("{dir}", identity.home).replace("{pid}", str(pid)) for a in workload.args)
    check = has_kernel_symbol if workload.id == "kernel_symbols" else None
    return start(executable, identity, args, check=check)


def run_workload(workload: Workload, executable: str, identity: Identity, pid: int) -> Probe:
    return finish(start_workload(workload, executable, identity, pid))


# Workloads that read what an earlier one wrote run after the others.
SECOND_WAVE = ("kernel_symbols",)


def workload_rows(dest: str, gid: int, stock: str | None, node: Node,
                  identities: Identities | None = None) -> tuple[Row, ...]:
    if identities is None:
        with Identities(gid) as own:
            return workload_rows(dest, gid, stock, node, own)
    probes: dict[tuple[str, str], Probe] = {}
    with other_process() as pid:
        available = [w for w in WORKLOADS if not node.unavailable(w.needs)]
        # One workload at a time, member and non-member side by side: several system-wide
        # samplers at once soft-locked a 2-vCPU guest under qemu (seen in the real-kernel lane).
        for workload in [w for w in available if w.id not in SECOND_WAVE] + [w for w in available if w.id in SECOND_WAVE]:
            started = {(workload.id, "member"): start_workload(workload, dest, identities.member, pid)}
            if stock:
                started[(workload.id, "other")] = start_workload(workload, stock, identities.non_member, pid)
            probes.update({key: finish(run) for key, run in started.items()})
    expected = "refused" if node.paranoid is None or node.paranoid >= 2 else "either (perf_event_paranoid < 2)"
    rows = []
    for workload in WORKLOADS:
        reason = node.unavailable(workload.needs)
        if reason:
            rows.append(Row(workload, None, None, unavailable=reason))
        else:
            rows.append(Row(workload, probes[(workload.id, "member")], probes.get((workload.id, "other")),
                            non_member_expected=expected))
    return tuple(rows)


class Session(NamedTuple):
    """A perf-shell session to verify: the node's capsh and the capabilities sessions hold."""

    capsh: str
    caps: tuple[str, ...]


def session_args(session: Session, identity: Identity, argv: tuple[str, ...]) -> tuple[str, ...]:
    """capsh's arguments for argv in a session of identity: the helper's, with numeric ids."""
    groups = ",".join(str(g) for g in (*identity.groups, identity.gid))
    return (f"--iab={','.join('^' + cap for cap in session.caps)}", f"--secbits={SESSION_SECBITS}",
            f"--gid={identity.gid}", f"--groups={groups}", f"--uid={identity.uid}",
            "--", "-c", 'exec "$@"', "perf-shell", *argv)


def session_programs(stock: str | None) -> list[tuple[Workload, tuple[str, ...]]]:
    """What runs in a session: the stock perf counting system-wide (where there is one), and a
    program that calls perf_event_open itself."""
    python = "/usr/bin/python3" if os.path.exists("/usr/bin/python3") else sys.executable
    counter = Workload("shell_counter", "perf-shell: a program's own perf_event_open -a", ())
    programs: list[tuple[Workload, tuple[str, ...]]] = [(counter, (python, "-I", "-c", COUNTER))]
    if stock:
        programs.insert(0, (Workload("shell_perf_stat", "perf-shell: stock perf stat -a", ()), (stock, *PERF_ARGS)))
    return programs


def session_rows(session: Session, stock: str | None, identities: Identities, paranoid: int | None) -> tuple[Row, ...]:
    """Inside a session the member counts system-wide, with the stock perf and with a program of
    its own; the non-member runs the same without a session and must be refused."""
    programs = session_programs(stock)
    expected = "refused" if paranoid is None or paranoid >= 2 else "either (perf_event_paranoid < 2)"
    rows = []
    for workload, argv in programs:
        member = finish(start(session.capsh, identities.member, session_args(session, identities.member, argv), drop=False))
        other = probe(argv[0], identities.non_member, argv[1:])
        rows.append(Row(workload, member, other, non_member_expected=expected))
    return tuple(rows)


def sudo_user_stand_in() -> dict[str, str]:
    """SUDO_USER naming an account that exists (daemon), as sudo would set it: the helper, run
    without sudo, then goes on to capsh as it would for a member (and capsh cannot switch users
    or set capabilities for anyone but root). Without such an account it stops at its own check."""
    try:
        return {"SUDO_USER": pwd.getpwuid(OTHER_UID).pw_name}
    except KeyError:
        return {}


def run_shell_only(only: ShellOnly, stock: str | None, session: Session | None, identities: Identities,
                   paranoid: int | None) -> VerifyResult:
    """No copy: the member counts in a perf-shell session, the non-member runs the helper without
    sudo (it must give nothing); the copy's workloads are unavailable."""
    rows = tuple(Row(w, None, None, unavailable=f"no copy on this node ({only.reason}): members use perf-shell")
                 for w in WORKLOADS)
    sessions = session_rows(session, stock, identities, paranoid) if session is not None else ()
    member = sessions[0].member if sessions and sessions[0].member is not None else \
        Probe(ran=False, returncode=None, detail="perf-shell cannot start a session here (no capsh with --iab)")
    argv = session_programs(stock)[0][1]
    non_member = finish(start(shell_helper_path(only.group), identities.non_member, ("-c", 'exec "$@"', "perf-shell", *argv),
                              env=sudo_user_stand_in()))
    stock_probe = probe(stock, identities.member) if stock else None
    return VerifyResult(member=member, non_member=non_member, stock=stock_probe, rows=rows + sessions, shell_only=only)


def run(dest: str, gid: int, stock: str | None, node: Node | None = None, session: Session | None = None,
        shell_only: ShellOnly | None = None) -> VerifyResult:
    with Identities(gid) as identities:
        if shell_only is not None:
            return run_shell_only(shell_only, stock, session, identities, node.paranoid if node is not None else None)
        member = probe(dest, identities.member)
        non_member = probe(dest, identities.non_member)
        stock_probe = probe(stock, identities.member) if stock else None
        rows = workload_rows(dest, gid, stock, node, identities) if node is not None else ()
        if session is not None:
            rows += session_rows(session, stock, identities, node.paranoid if node is not None else None)
    return VerifyResult(member=member, non_member=non_member, stock=stock_probe, rows=rows)
