"""Judging what members reach beyond the copy: tracefs and the mlock budget (rules layer; facts in
reach_facts.py, plan in reach_plan.py).
"""

from __future__ import annotations

from . import fstab
from .finding import OK, WARNING, Finding
from .paths import FSTAB
from .reach_facts import ReachFacts

TYPE_CHECKING = False  # as typing.TYPE_CHECKING (mypy knows the name), without importing typing at run time
if TYPE_CHECKING:
    from typing import Iterator


# `perf top` and `perf record` map 512 KiB + one page per CPU by default; `-m 2048` asks 8 MiB.
DEFAULT_MMAP_KB = 516


BIG_MMAP_KB = 2048 * 4 + 4


def group_can_read(mounted: tuple[str, int, int], gid: int | None) -> bool:
    _, mode, owner_gid = mounted
    return gid is not None and owner_gid == gid and mode & 0o050 == 0o050


def open_to_others(mounted: tuple[str, int, int]) -> bool:
    return bool(mounted[1] & 0o007)


def needs_remount(reach: ReachFacts, gid: int | None) -> tuple[str, ...]:
    """Mounts whose root is not exactly gid=<group>,mode=0750 (gid None: the group is new)."""
    return tuple(m[0] for m in reach.tracefs if gid is None or m[2] != gid or m[1] != fstab.TRACEFS_MODE)


def persistence(reach: ReachFacts) -> str:
    """How the node mounts tracefs at boot: "systemd", "fstab" or "" (the kernel/someone else)."""
    if reach.fstab_tracefs or reach.fstab_lines:
        return "fstab"
    return "systemd" if reach.systemd else ""


def findings(reach: ReachFacts, group: str, gid: int | None, kept: bool, caps: tuple[str, ...],
             has_caps: bool) -> Iterator[Finding]:
    """Findings for tracefs and the mlock budget."""
    fix = f"perfgroup setup --group {group}"
    if not reach.tracefs:
        yield Finding("tracefs.missing", OK, "tracefs is not mounted: no tracepoints on this node (perf trace, -e sched:*)",
                      "mount -t tracefs -o nosuid,nodev,noexec,mode=0750,gid=GID tracefs /sys/kernel/tracing")
    for mounted in reach.tracefs:
        point, mode, owner_gid = mounted
        if open_to_others(mounted):
            yield Finding("tracefs.open", WARNING,
                          f"{point} is mode {mode:04o}: every user can read tracepoints (other users' activity)", fix)
        elif not group_can_read(mounted, gid):
            severity = OK if kept else WARNING
            why = " (kept as it was: setup --no-tracefs)" if kept else ""
            yield Finding("tracefs.closed", severity,
                          f"{point} is mode {mode:04o} gid {owner_gid}: members cannot read tracepoints{why}", fix)
        else:
            yield Finding("tracefs.ok", OK, f"{point} is mode {mode:04o} gid {owner_gid}: members read tracepoints", "")
    if gid is not None:
        for entry in fstab.missing(reach.fstab_lines, gid):
            why = " (kept as it was: setup --no-tracefs)" if kept else ""
            yield Finding("tracefs.not_persistent", OK if kept else WARNING,
                          f"{FSTAB} mounts tracefs at {entry.point} with options {entry.options or '(none)'}, "
                          f"not gid={gid},mode=0750: members lose tracepoints at the next boot{why}", fix)
    if reach.mlock_kb is not None:
        budget = reach.mlock_kb * reach.cpus
        text = (f"perf mlock budget {reach.mlock_kb} KiB per CPU x {reach.cpus} CPUs = {budget} KiB per user; "
                f"perf top needs {DEFAULT_MMAP_KB * reach.cpus} KiB, record -m 2048 needs {BIG_MMAP_KB * reach.cpus} KiB")
        if has_caps and "cap_ipc_lock" not in caps and reach.mlock_kb < BIG_MMAP_KB:
            yield Finding("mlock.budget", WARNING, text + "; the copy lacks cap_ipc_lock, so members are held to it",
                          f"perfgroup setup --group {group} --caps auto")
        else:
            yield Finding("mlock.budget", OK, text + ("; cap_ipc_lock lifts it for members" if "cap_ipc_lock" in caps else ""), "")
