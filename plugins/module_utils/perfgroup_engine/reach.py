"""What members reach beyond the copy: tracefs (tracepoints, `perf trace`) and the mlock budget
(big ring buffers, `perf top`).

tracefs is mounted 0700 root by systemd and by the kernel's default; CAP_PERFMON does not bypass
file permissions, so members need the mount's `gid=<group>,mode=0750`. Those options belong to the
one tracefs superblock of the kernel: changing them is machine-wide, live (remount) and at boot
(a systemd drop-in for sys-kernel-tracing.mount). Never mode 0755: tracepoints show every user's
activity.

Facts (read_facts), plan (plan_tracefs), findings (findings) and the drop-in text live here; the
shared modules call each in one line.
"""

from __future__ import annotations

import os
import stat

from . import fstab, host
from .paths import DROPIN_PATH, FSTAB, MOUNT_UNITS, MOUNTINFO, TRACEFS_PATHS, artifact_paths, journal_path
from .tuples import NamedTuple

TYPE_CHECKING = False  # as typing.TYPE_CHECKING (mypy knows the name), without importing typing at run time
if TYPE_CHECKING:
    from typing import Iterator, Tuple

if TYPE_CHECKING:  # actions pull in dataclasses: not on the audit path
    from .actions import Action


# `perf top` and `perf record` map 512 KiB + one page per CPU by default; `-m 2048` asks 8 MiB.
DEFAULT_MMAP_KB = 516
BIG_MMAP_KB = 2048 * 4 + 4

# Kept in sync with templates/tracefs-perfgroup.conf.j2 by tests/unit/test_access.py: the engine
# is standard library only, and this one small file is rendered here.
DROPIN_TEMPLATE = """\
# Managed by perfgroup for group {group}: do not edit (rendered by `perfgroup setup`).
# tracefs (tracepoints, `perf trace`) readable by group {group} (gid {gid}), mode {mode}.
# Options= of a mount unit is a single string: a drop-in's value replaces the unit's
# (systemd src/core/load-fragment-gperf.gperf.in: Mount.Options -> config_parse_unit_string_printf),
# so systemd's own nosuid,nodev,noexec (units/sys-kernel-tracing.mount) are repeated here.
# tracefs has one superblock per kernel: this is machine-wide. Takes effect at the next boot
# (or `systemctl daemon-reload && umount /sys/kernel/tracing && systemctl start sys-kernel-tracing.mount`).
[Mount]
Options=nosuid,nodev,noexec,gid={gid},mode={mode}
"""

if TYPE_CHECKING:
    Mounted = Tuple[str, int, int]  # (mount point, mode of its root, gid of its root)


class ReachFacts(NamedTuple):
    tracefs: tuple[Mounted, ...] = ()  # tracefs mounts at TRACEFS_PATHS
    systemd: bool = False  # systemd runs and ships sys-kernel-tracing.mount
    fstab_tracefs: bool = False  # /etc/fstab mounts tracefs itself
    dropin: str | None = None  # our drop-in's content, if present
    mlock_kb: int | None = None  # kernel.perf_event_mlock_kb (per CPU, per user)
    cpus: int = 1
    fstab_lines: tuple[str, ...] = ()  # /etc/fstab's tracefs entries, as they are (engine/fstab.py)


def tracefs_points(mountinfo: str) -> tuple[str, ...]:
    """Mount points among TRACEFS_PATHS whose (topmost) filesystem is tracefs."""
    top: dict[str, str] = {}
    for line in mountinfo.splitlines():
        fields = line.split()
        if " - " not in line or len(fields) < 5:
            continue
        point = fields[4].replace("\\040", " ")
        fstype = line.split(" - ", 1)[1].split()[0]
        if point in TRACEFS_PATHS:
            top[point] = fstype  # later lines are mounted over earlier ones
    return tuple(point for point in TRACEFS_PATHS if top.get(point) == "tracefs")


def fstab_mounts_tracefs(text: str) -> bool:
    for line in text.splitlines():
        fields = line.split("#", 1)[0].split()
        if len(fields) >= 3 and fields[2] == "tracefs":
            return True
    return False


def read_facts(image: bool = False) -> ReachFacts:
    """image: an image chroot, where nothing is mounted yet: only what its files say about boot."""
    mounts = []
    for point in () if image else tracefs_points(host.read_text(MOUNTINFO) or ""):
        try:
            info = os.stat(point)
        except OSError:
            continue
        mounts.append((point, stat.S_IMODE(info.st_mode), info.st_gid))
    mlock = "" if image else (host.read_text("/proc/sys/kernel/perf_event_mlock_kb") or "").strip()
    fstab_text = host.read_text(FSTAB, exact=True) or ""
    return ReachFacts(
        tracefs=tuple(mounts),
        systemd=(image or os.path.isdir("/run/systemd/system")) and any(os.path.exists(u) for u in MOUNT_UNITS),
        fstab_tracefs=fstab_mounts_tracefs(fstab_text),
        dropin=host.read_text(DROPIN_PATH),
        mlock_kb=int(mlock) if mlock.isdigit() else None,
        cpus=os.cpu_count() or 1,
        fstab_lines=fstab.tracefs_lines(fstab_text),
    )


def render_dropin(group: str, gid: int, mode: int = fstab.TRACEFS_MODE) -> str:
    return DROPIN_TEMPLATE.format(group=group, gid=gid, mode=f"{mode:04o}")


def group_can_read(mounted: Mounted, gid: int | None) -> bool:
    _, mode, owner_gid = mounted
    return gid is not None and owner_gid == gid and mode & 0o050 == 0o050


def open_to_others(mounted: Mounted) -> bool:
    return bool(mounted[1] & 0o007)


def needs_remount(reach: ReachFacts, gid: int | None) -> tuple[str, ...]:
    """Mounts whose root is not exactly gid=<group>,mode=0750 (gid None: the group is new)."""
    return tuple(m[0] for m in reach.tracefs if gid is None or m[2] != gid or m[1] != fstab.TRACEFS_MODE)


def persistence(reach: ReachFacts) -> str:
    """How the node mounts tracefs at boot: "systemd", "fstab" or "" (the kernel/someone else)."""
    if reach.fstab_tracefs or reach.fstab_lines:
        return "fstab"
    return "systemd" if reach.systemd else ""


# -- findings (pure; the shared findings module lists `rule` in RULES) ---------------------------

def findings(reach: ReachFacts, group: str, gid: int | None, kept: bool, caps: tuple[str, ...],
             has_caps: bool) -> Iterator[tuple[str, str, str, str]]:
    """(id, severity, message, fix) for tracefs and the mlock budget."""
    fix = f"perfgroup setup --group {group}"
    if not reach.tracefs:
        yield ("tracefs.missing", "ok", "tracefs is not mounted: no tracepoints on this node (perf trace, -e sched:*)",
               "mount -t tracefs -o nosuid,nodev,noexec,mode=0750,gid=GID tracefs /sys/kernel/tracing")
    for mounted in reach.tracefs:
        point, mode, owner_gid = mounted
        if open_to_others(mounted):
            yield ("tracefs.open", "warning",
                   f"{point} is mode {mode:04o}: every user can read tracepoints (other users' activity)", fix)
        elif not group_can_read(mounted, gid):
            severity = "ok" if kept else "warning"
            why = " (kept as it was: setup --no-tracefs)" if kept else ""
            yield ("tracefs.closed", severity,
                   f"{point} is mode {mode:04o} gid {owner_gid}: members cannot read tracepoints{why}", fix)
        else:
            yield ("tracefs.ok", "ok", f"{point} is mode {mode:04o} gid {owner_gid}: members read tracepoints", "")
    if gid is not None:
        for entry in fstab.missing(reach.fstab_lines, gid):
            why = " (kept as it was: setup --no-tracefs)" if kept else ""
            yield ("tracefs.not_persistent", "ok" if kept else "warning",
                   f"{FSTAB} mounts tracefs at {entry.point} with options {entry.options or '(none)'}, "
                   f"not gid={gid},mode=0750: members lose tracepoints at the next boot{why}", fix)
    if reach.mlock_kb is not None:
        budget = reach.mlock_kb * reach.cpus
        text = (f"perf mlock budget {reach.mlock_kb} KiB per CPU x {reach.cpus} CPUs = {budget} KiB per user; "
                f"perf top needs {DEFAULT_MMAP_KB * reach.cpus} KiB, record -m 2048 needs {BIG_MMAP_KB * reach.cpus} KiB")
        if has_caps and "cap_ipc_lock" not in caps and reach.mlock_kb < BIG_MMAP_KB:
            yield ("mlock.budget", "warning", text + "; the copy lacks cap_ipc_lock, so members are held to it",
                   f"perfgroup setup --group {group} --caps auto")
        else:
            yield ("mlock.budget", "ok", text + ("; cap_ipc_lock lifts it for members" if "cap_ipc_lock" in caps else ""), "")


# -- plan (pure) ---------------------------------------------------------------------------------


def is_ours(content: str, group: str) -> bool:
    head = content.splitlines()[:3]
    return any(f"Managed by perfgroup for group {group}:" in line for line in head)


def plan_tracefs(reach: ReachFacts, group: str, gid: int | None, want: bool,
                 image: bool = False) -> tuple[list[Action], list[str]]:
    """Remount actions for mounts not yet gid=<group>,mode=0750, and what keeps it at boot: the
    systemd drop-in, or the fstab entry where fstab mounts tracefs (edited even while tracefs is
    not mounted: the entry is what the next boot uses). In an image nothing is mounted yet: only
    what keeps it at boot."""
    from .actions import EditFstab, PersistTracefs, RemountTracefs
    from .errors import RefusedError

    actions: list[Action] = []
    notes: list[str] = []
    if not want:
        return actions, notes
    refused = fstab.refusal(reach.fstab_lines)
    if refused:
        raise RefusedError(refused)
    edits: list[Action] = [
        EditFstab(FSTAB, "keep the group's tracefs access after a reboot (the node mounts tracefs from fstab)",
                  line=entry.line, group=group, gid=gid, journal=journal_path(group))
        for entry in fstab.missing(reach.fstab_lines, gid)
    ]
    if not reach.tracefs and not image:
        notes.append("tracefs is not mounted here: nothing to open to the group (tracepoints unavailable)")
        if edits:
            notes.append(f"{FSTAB} mounts tracefs: its entry gets gid=<gid of {group}>,mode=0750 for the next boot")
        return edits, notes
    for point, mode, owner_gid in reach.tracefs:
        if point in needs_remount(reach, gid):
            actions.append(RemountTracefs(point, "members read tracepoints (perf trace, -e sched:*); never others",
                                          group=group, was_mode=mode, was_gid=owner_gid))
    how = persistence(reach)
    if how == "systemd":
        if gid is None or reach.dropin != render_dropin(group, gid):
            actions.append(PersistTracefs(DROPIN_PATH, "keep the group's tracefs access after a reboot",
                                          group=group, old=reach.dropin))
    elif how == "fstab":
        actions += edits
        if edits:
            notes.append(f"tracefs is mounted from {FSTAB}: its entry gets gid=<gid of {group}>,mode=0750 "
                         "(only its options field changes; remove puts the line back)")
    elif image:
        notes.append("the image has no systemd sys-kernel-tracing.mount or fstab entry for tracefs: the boot unit "
                     "opens tracefs to the group at every boot, if the booted kernel mounts it")
    else:
        notes.append("no systemd mount unit or fstab entry mounts tracefs: the group's access lasts until reboot")
    return actions, notes


def record_files(previous: tuple[tuple[str, str], ...], planned: tuple[tuple[str, str], ...],
                 dropin: tuple[str, str] | None, group: str, present: tuple[str, ...]) -> tuple[tuple[str, str], ...]:
    """The record's files: what this run wrote, plus access files an earlier run wrote that this
    run did not render (e.g. the Ansible module, which passes no artifacts) and that still exist."""
    out = dict(planned)
    if dropin is not None:
        out[dropin[0]] = dropin[1]
    owned = {DROPIN_PATH, *artifact_paths(group)}
    for path, sha in previous:
        if path in owned and path not in out and path in present:
            out[path] = sha
    return tuple(sorted(out.items()))
