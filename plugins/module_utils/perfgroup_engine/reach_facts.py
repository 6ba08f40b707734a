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
from .paths import DROPIN_PATH, FSTAB, MOUNT_UNITS, MOUNTINFO, TRACEFS_PATHS
from .tuples import NamedTuple

TYPE_CHECKING = False  # as typing.TYPE_CHECKING (mypy knows the name), without importing typing at run time
if TYPE_CHECKING:
    from typing import Tuple

if TYPE_CHECKING:  # actions pull in dataclasses: not on the audit path
    pass


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


def filesystems(mountinfo: str) -> dict[str, str]:
    """Mount point -> type of the filesystem on top there (later lines are mounted over earlier ones)."""
    top: dict[str, str] = {}
    for line in mountinfo.splitlines():
        fields = line.split()
        if " - " not in line or len(fields) < 5:
            continue
        top[fields[4].replace("\\040", " ")] = line.split(" - ", 1)[1].split()[0]
    return top


def tracefs_points(mountinfo: str) -> tuple[str, ...]:
    """Mount points among TRACEFS_PATHS whose (topmost) filesystem is tracefs."""
    top = filesystems(mountinfo)
    return tuple(point for point in TRACEFS_PATHS if top.get(point) == "tracefs")


# What / is on a node booted from a Warewulf/xCAT-style image: a memory filesystem, built anew
# from the image at every boot.
IN_MEMORY = ("rootfs", "tmpfs", "ramfs")


def stateless_root(mountinfo: str | None = None) -> bool:
    text = host.read_text(MOUNTINFO) if mountinfo is None else mountinfo
    return filesystems(text or "").get("/") in IN_MEMORY


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


# -- findings (pure; the shared findings module lists `rule` in RULES) ---------------------------


# -- plan (pure) ---------------------------------------------------------------------------------
