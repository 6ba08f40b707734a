"""Planning tracefs for the group, live and at boot: remounts, the systemd drop-in or the fstab
entry (plan layer; facts in reach_facts.py, findings in reach_rules.py).
"""

from __future__ import annotations

from . import fstab
from .actions import Action, EditFstab, PersistTracefs, RemountTracefs
from .errors import RefusedError
from .paths import DROPIN_PATH, FSTAB, artifact_paths, journal_path
from .reach_facts import ReachFacts
from .reach_rules import needs_remount, persistence

# Kept in sync with templates/tracefs-perfgroup.conf.j2 by tests/unit/test_reach.py: the engine
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


def render_dropin(group: str, gid: int, mode: int = fstab.TRACEFS_MODE) -> str:
    return DROPIN_TEMPLATE.format(group=group, gid=gid, mode=f"{mode:04o}")


def plan_tracefs(reach: ReachFacts, group: str, gid: int | None, want: bool,
                 image: bool = False) -> tuple[list[Action], list[str]]:
    """Remount actions for mounts not yet gid=<group>,mode=0750, and what keeps it at boot: the
    systemd drop-in, or the fstab entry where fstab mounts tracefs (edited even while tracefs is
    not mounted: the entry is what the next boot uses). In an image nothing is mounted yet: only
    what keeps it at boot."""

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
