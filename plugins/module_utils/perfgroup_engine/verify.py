"""Proof by running perf: what members get, workload by workload, and that others do not.

Identities: uid nobody holding the group (the member) runs the copy; uid nobody without it (the
non-member) runs the copy (it must not even start) and the stock perf (what the perf wrapper gives
them), which must be refused every privileged workload. Workloads: system-wide counting, counting
another user's process, system-wide sampling with call graphs, kernel symbols in its report, a
tracepoint, a large ring buffer. A workload the node cannot support (no tracefs, kptr_restrict=2,
lockdown) is "unavailable" with the reason, never a failure of the group.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Iterator

from .tuples import NamedTuple

NOBODY = 65534
OTHER_UID = 1  # daemon: the "other user" whose process members count
PERF_ARGS = ("stat", "-a", "-e", "cpu-clock", "--", "true")
TIMEOUT = 60
SHORT = ("--", "sleep", "0.1")
KERNEL_SYMBOL = re.compile(r"\[k\] +[A-Za-z_][A-Za-z0-9_.]*")


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


@dataclass(frozen=True)
class VerifyResult:
    member: Probe
    non_member: Probe
    stock: Probe | None  # the distribution's perf for the member, if there is one
    rows: tuple[Row, ...] = field(default=())

    @property
    def member_ok(self) -> bool:
        return self.member.ran and self.member.returncode == 0

    @property
    def non_member_refused(self) -> bool:
        return not self.non_member.ran or self.non_member.returncode != 0

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
        }

    def lines(self) -> list[str]:
        out = [
            ("member (uid nobody + group): " + ("profiled system-wide" if self.member_ok else f"FAILED: {self.member.detail}")),
            ("non-member (uid nobody): " + ("refused" if self.non_member_refused else "ALLOWED: the copy is open to everyone")),
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


class Started(NamedTuple):
    """A probe running (or one that could not start: `done` already set)."""

    process: subprocess.Popen | None  # type: ignore[type-arg]
    output: Any  # temp file holding stdout+stderr
    check: Callable[[str], bool] | None
    done: Probe | None = None


def start(executable: str, groups: list[int], args: tuple[str, ...] = PERF_ARGS, cwd: str = "/",
          check: Callable[[str], bool] | None = None) -> Started:
    """Start one probe; output goes to a temp file, so many can run at once (no pipes to fill,
    no threads: preexec_fn is only safe without them)."""
    output = tempfile.TemporaryFile(mode="w+")  # noqa: SIM115 -- closed by finish(), after the process ends
    try:
        process = subprocess.Popen(
            [executable, *args], preexec_fn=drop_to(NOBODY, NOBODY, groups),
            env={"PATH": "/usr/bin:/bin", "LC_ALL": "C", "HOME": cwd}, cwd=cwd, stdin=subprocess.DEVNULL,
            stdout=output, stderr=subprocess.STDOUT, text=True,
        )
    except PermissionError:
        output.close()
        return Started(None, None, check, Probe(ran=False, returncode=None, detail="permission denied (cannot execute)"))
    except OSError as error:
        output.close()
        return Started(None, None, check, Probe(ran=False, returncode=None, detail=error.strerror or str(error)))
    return Started(process, output, check)


def finish(started: Started) -> Probe:
    if started.done is not None or started.process is None:
        return started.done or Probe(ran=False, returncode=None, detail="did not start")
    try:
        code = started.process.wait(timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        started.process.kill()
        started.process.wait()
        started.output.close()
        return Probe(ran=True, returncode=None, detail=f"timed out after {TIMEOUT}s")
    started.output.seek(0)
    text = started.output.read()
    started.output.close()
    if code == 0 and started.check is not None and not started.check(text):
        return Probe(ran=True, returncode=1, detail="ran, but no kernel symbol in the report")
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    detail = "ok" if code == 0 else (lines[0] if lines else f"exit {code}")
    return Probe(ran=True, returncode=code, detail=detail[:300])


def probe(executable: str, groups: list[int], args: tuple[str, ...] = PERF_ARGS, cwd: str = "/",
          check: Callable[[str], bool] | None = None) -> Probe:
    return finish(start(executable, groups, args, cwd, check))


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
    """A process of another user (daemon) for members to count."""
    child = subprocess.Popen(["sleep", "30"], preexec_fn=drop_to(OTHER_UID, OTHER_UID, []),
                             stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        yield child.pid
    finally:
        child.kill()
        child.wait()


def has_kernel_symbol(report: str) -> bool:
    return bool(KERNEL_SYMBOL.search(report))


def start_workload(workload: Workload, executable: str, groups: list[int], directory: str, pid: int) -> Started:
    args = tuple(a.replace("{dir}", directory).replace("{pid}", str(pid)) for a in workload.args)
    check = has_kernel_symbol if workload.id == "kernel_symbols" else None
    return start(executable, groups, args, cwd=directory, check=check)


def run_workload(workload: Workload, executable: str, groups: list[int], directory: str, pid: int) -> Probe:
    return finish(start_workload(workload, executable, groups, directory, pid))


# Workloads that read what an earlier one wrote run after the others.
SECOND_WAVE = ("kernel_symbols",)


def workload_rows(dest: str, gid: int, stock: str | None, node: Node) -> tuple[Row, ...]:
    member_dir = tempfile.mkdtemp(prefix="perfgroup-verify-")
    other_dir = tempfile.mkdtemp(prefix="perfgroup-verify-")
    probes: dict[tuple[str, str], Probe] = {}
    try:
        for directory in (member_dir, other_dir):
            os.chown(directory, NOBODY, NOBODY)
        with other_process() as pid:
            available = [w for w in WORKLOADS if not node.unavailable(w.needs)]
            # One workload at a time, member and non-member side by side: several system-wide
            # samplers at once soft-locked a 2-vCPU guest under qemu (seen in the real-kernel lane).
            for workload in [w for w in available if w.id not in SECOND_WAVE] + [w for w in available if w.id in SECOND_WAVE]:
                started = {(workload.id, "member"): start_workload(workload, dest, [gid], member_dir, pid)}
                if stock:
                    started[(workload.id, "other")] = start_workload(workload, stock, [], other_dir, pid)
                probes.update({key: finish(run) for key, run in started.items()})
    finally:
        shutil.rmtree(member_dir, ignore_errors=True)
        shutil.rmtree(other_dir, ignore_errors=True)
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


def run(dest: str, gid: int, stock: str | None, node: Node | None = None) -> VerifyResult:
    return VerifyResult(
        member=probe(dest, [gid]),
        non_member=probe(dest, []),
        stock=probe(stock, [gid]) if stock else None,
        rows=workload_rows(dest, gid, stock, node) if node is not None else (),
    )
