"""Undo exactly what setup recorded, and nothing else.

Planned like setup: facts (what of the record still exists) -> a tuple of actions that each have
something to do -> apply. A record is trusted only for paths setup could have made: recorded copies
are deleted only while they look like what setup installs (trust.setup_made), files only at the
paths setup derives for the group and only while they hold what setup wrote there (their recorded
sha256), directories only when empty and above a recorded copy.
"""

from __future__ import annotations

import grp
import os

from . import (
    access_facts,
    access_rules,
    apply,
    fstab,
    host,
    intent_facts,
    intent_plan,
    jobs,
    node_files_rules,
    reach_facts,
    sysctl,
    trust,
)
from . import facts as facts_mod
from .actions import (
    Action,
    DeleteCopy,
    DeleteDir,
    DeleteFile,
    DeleteGroup,
    EditFstab,
    RemountTracefs,
    RemoveMember,
    SetParanoid,
    Systemctl,
)
from .errors import RefusedError
from .facts import other_groups
from .fstab import SYSTEMD_TRACEFS
from .host import load_state
from .paths import (
    DROPIN_PATH,
    ENGINE_DIR,
    FSTAB,
    LIB_DIR,
    MODULEFILES,
    STATE_DIR,
    SYSTEMD_DIR,
    TMP_PREFIX,
    artifact_paths,
    default_dest,
    intent_path,
    profile_path,
    state_path,
    sysctl_path,
)
from .policy import MIN_PARANOID, TARGET_PARANOID, did_you_mean
from .state import State
from .tuples import NamedTuple
from .validate import check_group

TYPE_CHECKING = False  # as typing.TYPE_CHECKING (mypy knows the name), without importing typing at run time
if TYPE_CHECKING:
    from typing import Callable


class RemoveFacts(NamedTuple):
    group: str
    state: State | None
    state_error: str | None
    copies: tuple[tuple[str, bool], ...] = ()  # (path, still there)
    files: tuple[tuple[str, bool], ...] = ()
    dirs: tuple[tuple[str, tuple[str, ...] | None], ...] = ()  # (path, its entries, or None if not a directory)
    group_exists: bool = False
    group_members: tuple[str, ...] = ()
    group_gid: int | None = None
    leftovers_of_unrecorded: tuple[str, ...] = ()  # default paths that exist although no record does
    entry_point_cache: tuple[str, ...] = ()  # bytecode python wrote beside the engine copy being removed
    state_unsafe: str | None = None  # the record or its directory is not root's alone
    tracefs: tuple[tuple[str, int, int], ...] = ()  # tracefs mounts now (point, mode, gid)
    fstab_lines: tuple[str, ...] = ()  # /etc/fstab's tracefs entries now
    untrusted: tuple[str, ...] = ()  # recorded copies that exist but setup could not have made: left in place
    not_ours: tuple[str, ...] = ()  # recorded files whose content is not what setup wrote there: left in place
    pending: bool = False  # a failed setup run's intent lies beside the record (folded into `state`)
    record_untrusted: tuple[str, ...] = ()  # record items dropped by trust.sanitize, each named
    other_groups: tuple[str, ...] = ()  # groups other setup records on this node are for
    paranoid_now: int | None = None  # live kernel.perf_event_paranoid (None in an image)


def derived_files(group: str) -> tuple[str, ...]:
    """The only files remove may delete: the paths setup derives for this group."""
    return (profile_path(group), sysctl_path(group), DROPIN_PATH, *artifact_paths(group))


def _state_unsafe(group: str) -> str | None:
    for path, kind in ((STATE_DIR, "dir"), (state_path(group), "file")):
        problem = trust.state_problem(host.owner_mode(path), kind)
        if problem:
            return f"{path} {problem}"
    return None


def _entries(path: str) -> tuple[str, ...] | None:
    if os.path.islink(path) or not os.path.isdir(path):
        return None
    try:
        return tuple(sorted(os.listdir(path)))
    except OSError:
        return None


def read(group: str) -> RemoveFacts:
    state, error = load_state(state_path(group))
    try:
        entry = grp.getgrnam(group)
        exists, members, gid = True, tuple(entry.gr_mem), entry.gr_gid
    except KeyError:
        exists, members, gid = False, (), None
    intent = intent_facts.read(state_path(group), gid, members)
    if state is None:
        defaults = (default_dest(group), *derived_files(group), state_path(group), intent_path(state_path(group)))
        present = tuple(path for path in defaults if os.path.lexists(path))
        return RemoveFacts(group, None, error, group_exists=exists, group_members=members, group_gid=gid,
                           leftovers_of_unrecorded=present, other_groups=other_groups(group))
    state, record_untrusted = trust.sanitize(intent_plan.fold(state, intent))
    # Copies this record names, and any capability-carrying file under the install root that no
    # other group's record claims (a copy an older setup left behind).
    left = access_facts.find_orphans(None, state.dest, group)
    recorded = tuple(dict.fromkeys((*state.copies, state.dest)))
    allowed = set(derived_files(group))
    shared = bool(other_groups(group))  # the node entry point serves every group: the last remove takes it
    files = tuple(
        (path, os.path.lexists(path)) for path, _ in state.files
        if path in allowed or (node_files_rules.owned(group, path) and not (shared and node_files_rules.is_entry_point(path)))
    )
    # A recorded file someone else rewrote since (a site's own /usr/local/bin/perf): not perfgroup's
    # to delete (review finding 6). Unreadable (None: gone, a dangling link) is judged by the name alone.
    now = dict(facts_mod.recorded_files(state))
    not_ours = tuple(path for path, present in files
                     if present and now.get(path) is not None and now.get(path) != state.file_sha(path))
    cache: tuple[str, ...] = ()
    if any(node_files_rules.is_entry_point(path) for path, _ in files):
        pycache = f"{ENGINE_DIR}/__pycache__"
        cache = tuple(f"{pycache}/{n}" for n in (_entries(pycache) or ()) if n.endswith(".pyc"))
    parents = {os.path.dirname(copy) for copy in recorded}
    dirs = tuple((d, _entries(d)) for d in state.created_dirs if any(p == d or p.startswith(d + "/") for p in parents))
    # The modulefiles' own directory (…/modules/perf), once they are gone and if nothing else lives there.
    module_dirs = {os.path.dirname(path) for path, _ in files if path in MODULEFILES}
    dirs += tuple((d, _entries(d)) for d in sorted(module_dirs))
    existing = [c for c in recorded if os.path.lexists(c)]
    untrusted = tuple(c for c in existing if not trust.setup_made(c, state))
    copies = tuple((c, c in existing and c not in untrusted) for c in recorded)
    copies += tuple((c, True) for c in left if c not in recorded)
    return RemoveFacts(
        group, state, None, copies=copies, files=files, dirs=dirs,
        group_exists=exists, group_members=members, group_gid=gid, entry_point_cache=cache, state_unsafe=_state_unsafe(group),
        tracefs=reach_facts.read_facts().tracefs, paranoid_now=host.read_int(sysctl.PROC_PATH),
        fstab_lines=fstab.tracefs_lines(host.read_text(FSTAB, exact=True) or ""),
        untrusted=untrusted, not_ours=not_ours, pending=intent is not None, record_untrusted=record_untrusted,
    )


def check(facts: RemoveFacts) -> None:
    """Refuse when perfgroup files exist but no usable record says what setup made."""
    if facts.state is None and facts.state_error == "missing" and facts.other_groups and not facts.pending:
        # A typo: never advise deleting the other group's files.
        raise RefusedError(f"no setup record for group {facts.group}; "
                           + did_you_mean(facts.group, facts.other_groups, "remove") + " Nothing was changed")
    if facts.state is None and facts.leftovers_of_unrecorded:
        raise RefusedError(
            f"no usable setup record for group {facts.group} ({state_path(facts.group)} is {facts.state_error}) "
            f"but {', '.join(facts.leftovers_of_unrecorded)} exist; remove will not guess what perfgroup made. "
            f"Inspect with `perfgroup audit --group {facts.group}` and delete by hand"
        )
    if facts.state_unsafe is not None:
        raise RefusedError(
            f"{facts.state_unsafe}: the setup record cannot be trusted to say what to delete; "
            "inspect it and remove by hand"
        )
    if facts.state is not None and facts.state.group != facts.group:
        raise RefusedError(f"{state_path(facts.group)} records group {facts.state.group!r}, not {facts.group!r}; refusing")


def plan(facts: RemoveFacts) -> tuple[Action, ...]:
    """Only the steps that still have something to do, in a safe order (the record goes last)."""
    check(facts)
    state = facts.state
    if state is None:
        return ()
    units = tuple(os.path.basename(path) for path, present in facts.files
                  if present and path not in facts.not_ours and is_unit(path))
    actions: list[Action] = []
    if units:
        actions.append(Systemctl("systemd", "the units go with their files", verb="stop", units=units))
    actions += [DeleteCopy(path, "the privileged copy") for path, present in facts.copies if present]
    for path, present in facts.files:
        if present and path not in facts.not_ours:
            why = "the live value is kept" if path == sysctl_path(facts.group) else "setup wrote it"
            name = "node-entry" if node_files_rules.is_entry_point(path) else os.path.basename(path)
            actions.append(DeleteFile(path, why, step=f"delete_file:{name}"))
    if any(node_files_rules.is_entry_point(path) for path, present in facts.files if present and path not in facts.not_ours):
        actions += [DeleteFile(path, "python's cache of the engine copy", step="delete_file:pyc")
                    for path in facts.entry_point_cache]
        actions += [DeleteDir(path, "the node entry point's") for path in
                    (f"{ENGINE_DIR}/__pycache__", ENGINE_DIR, LIB_DIR)]
    gone = {a.target for a in actions}
    for path, entries in sorted(facts.dirs, key=lambda item: len(item[0]), reverse=True):
        # Empty once the copies and inner directories go (temp files a killed run left go with the copy).
        left = [n for n in entries or () if f"{path}/{n}" not in gone and not n.startswith(TMP_PREFIX)]
        if entries is not None and not left:
            actions.append(DeleteDir(path, "setup created it"))
            gone.add(path)
    if units:
        actions.append(Systemctl("systemd", "so systemd forgets the deleted units"))
    actions += restore_tracefs(state, facts.tracefs)
    actions += [EditFstab(FSTAB, "setup gave tracefs's entry the group's options; put the line back",
                          line=now, new_line=before, step="restore_fstab")
                for now, before in fstab.restores(state.fstab_edits, facts.fstab_lines)]
    if state.group_created and facts.group_exists:
        actions.append(DeleteGroup(state.group, "setup created it"))
    elif facts.group_exists:
        actions += [RemoveMember(user, "setup added them", group=state.group)
                    for user in state.members_added if user in facts.group_members]
    actions += restore_paranoid(state, facts.paranoid_now)[0]
    if facts.pending:
        actions.append(DeleteFile(intent_path(state_path(state.group)), "what a setup run that did not finish meant to record",
                                  step="delete_state:pending"))
    actions.append(DeleteFile(state_path(state.group), "the record of this setup", step="delete_state:" +
                              os.path.basename(state_path(state.group))))
    return tuple(actions)


def is_unit(path: str) -> bool:
    return os.path.dirname(path) == SYSTEMD_DIR and path.endswith((".service", ".timer"))


def restore_tracefs(state: State, mounts: tuple[tuple[str, int, int], ...]) -> list[Action]:
    """Back as setup found it; a mount the record knows nothing of but that carries the group's gid
    was opened at boot by what setup wrote into an image: back to systemd's own 0700 root."""
    actions: list[Action] = []
    before = {point: (mode, gid) for point, mode, gid in state.tracefs_before}
    for point, mode, gid in mounts:
        if point in before:
            want = before[point]
        elif gid == state.gid and not state.tracefs_kept:
            want = SYSTEMD_TRACEFS
        else:
            continue
        if want != (mode, gid):
            actions.append(RemountTracefs(point, "setup opened tracefs to the group; put back as it was",
                                          gid=want[1], mode=want[0], was_mode=mode, was_gid=gid))
    return actions


def restore_paranoid(state: State, now: int | None) -> tuple[list[Action], str]:
    """The live value back to what setup found, if setup's 2 is still there; never below 2."""
    before = state.paranoid_before
    if before is None or now is None:
        return [], ("kernel.perf_event_paranoid keeps its live value; without the drop-in, boot applies the "
                    "distribution default")
    if state.keep_paranoid or before == now:
        return [], ""
    if now != TARGET_PARANOID:
        return [], (f"kernel.perf_event_paranoid is {now}, not the {TARGET_PARANOID} setup set (changed since): "
                    f"left as it is; it was {before} before setup")
    if before < MIN_PARANOID:
        return [], (f"kernel.perf_event_paranoid stays {now}: it was {before} before setup, but below {MIN_PARANOID} "
                    f"every user may profile the whole system; if you mean that: sysctl -w "
                    f"kernel.perf_event_paranoid={before}")
    return [SetParanoid(sysctl.PROC_PATH, "as before setup (boot applies the kernel's and the site's sysctl "
                                          "settings, as before setup)", value=before, was=now)], ""


def notes(facts: RemoveFacts) -> list[str]:
    if facts.state is None:
        return [f"nothing to remove: no setup record and no perfgroup files for group {facts.group}"]
    paranoid = restore_paranoid(facts.state, facts.paranoid_now)[1]
    changed = [f"{FSTAB}: the tracefs line setup wrote ({written!r}) was changed since; left as it is"
               for original, written in facts.state.fstab_edits
               if written != original and written not in facts.fstab_lines and original not in facts.fstab_lines]
    return [
        *(trust.untrusted_note(path) for path in facts.untrusted), *facts.record_untrusted,
        *(f"{path} is not what perfgroup wrote there (changed since setup); left in place" for path in facts.not_ours),
        *changed, *([paranoid] if paranoid else []),
    ]


def document(steps: tuple[Action, ...], done: tuple[Action, ...], notes: tuple[str, ...], dry_run: bool) -> dict[str, object]:
    """What `remove --json` prints, here or from an image."""
    return {"dry_run": dry_run, "changed": bool(done), "steps": [s.summary for s in steps],
            "done": [s.summary for s in steps if s in done], "notes": list(notes)}


class RemoveResult(NamedTuple):
    steps: tuple[Action, ...]
    done: tuple[Action, ...]
    notes: tuple[str, ...]


def run(group: str, dry_run: bool, lock_wait: float, on_wait: Callable[[str], None] | None = None) -> RemoveResult:
    """The remove flow: refuse before the lock (a refusal writes nothing), then under the node
    lock read again and perform what the record allows; name what still holds the capabilities
    or the group's gid."""
    check_group(group, allow_privileged=True)
    facts = read(group)
    steps = plan(facts)
    found = notes(facts)
    done: list[Action] = []
    if not dry_run:  # the epilog goes with the scripts: nothing else would take these grants back
        found += jobs.revoke_all(group, gone_only=False)
    if steps and not dry_run:
        with apply.node_lock(lock_wait, on_wait):
            steps = plan(read(group))
            apply.perform(steps, on_done=done.append)
    # Sessions that outlive the group keep its gid: name them (any user's once the group goes,
    # else those of the members remove takes out).
    deleted = any(isinstance(step, DeleteGroup) for step in steps)
    removed = {step.target for step in steps if isinstance(step, RemoveMember)}
    gid = facts.group_gid if deleted or removed else None
    found += access_rules.remaining_notes(access_facts.scan_processes(gid=gid), None, gid, None if deleted else removed)
    return RemoveResult(steps, tuple(done), tuple(found))
