"""The changes perfgroup can make to a host, one small frozen type each.

Plans (setup, remove, members) are tuples of these; apply.py performs them, dispatching on
the type in one place. Each action knows how to describe itself (summary, why, before -> after),
so the CLI's plan, the Ansible diff and the syslog trail say the same thing.
"""

from __future__ import annotations

from dataclasses import dataclass

from .acl import AclEntry
from .fstab import edit_line
from .policy import COPY_MODE, DIR_MODE, FILE_MODE
from .state import StatKey


@dataclass(frozen=True)
class Action:
    target: str
    why: str

    kind = "action"  # class attribute: the step name in traces, logs and JSON

    @property
    def summary(self) -> str:
        raise NotImplementedError

    @property
    def before(self) -> str:
        return ""

    @property
    def after(self) -> str:
        return ""

    def as_dict(self) -> dict[str, str]:
        return {"kind": self.kind, "target": self.target, "summary": self.summary, "why": self.why}


@dataclass(frozen=True)
class CreateGroup(Action):
    gid: int | None = None
    kind = "create_group"

    @property
    def summary(self) -> str:
        gid = f"gid {self.gid}" if self.gid is not None else "a system gid"
        return f"create group {self.target} ({gid})"

    @property
    def after(self) -> str:
        return f"group {self.target}"


@dataclass(frozen=True)
class LockGroupPassword(Action):
    kind = "lock_group_password"

    @property
    def summary(self) -> str:
        return f"lock the group password of {self.target} (no `sg`/`newgrp` by password)"


@dataclass(frozen=True)
class CreateDir(Action):
    kind = "create_dir"

    @property
    def summary(self) -> str:
        return f"create directory {self.target} (root:root {DIR_MODE:04o})"

    @property
    def after(self) -> str:
        return f"directory root:root {DIR_MODE:04o}"


@dataclass(frozen=True)
class RepairDir(Action):
    mode: int = DIR_MODE
    was: str = ""
    kind = "repair_dir"

    @property
    def summary(self) -> str:
        return f"make {self.target} root-owned and not group/other-writable"

    @property
    def before(self) -> str:
        return self.was

    @property
    def after(self) -> str:
        return f"uid 0 mode {self.mode:04o}"


@dataclass(frozen=True)
class InstallCopy(Action):
    source: str = ""
    caps: tuple[str, ...] = ()
    group: str = ""
    reason: str = ""
    # The source as setup checked and hashed it: the copy is made only from that very file (same
    # inode, size and times) and only if its bytes have that sha256 (security review finding 4).
    source_sha256: str = ""
    source_key: StatKey | None = None
    # The access ACL the new copy gets before it is renamed into place: the live job grants'
    # entries (job_rules.grant_acl), () for none; acl_for names them ("alice (job 42)").
    acl: tuple[AclEntry, ...] = ()
    acl_for: tuple[str, ...] = ()
    kind = "install_copy"

    @property
    def summary(self) -> str:
        return f"install {self.source} as {self.target} ({self.after})"

    @property
    def before(self) -> str:
        return self.reason

    @property
    def after(self) -> str:
        return copy_after(self.group, self.caps, self.acl_for)


@dataclass(frozen=True)
class FixCopy(Action):
    caps: tuple[str, ...] = ()
    group: str = ""
    problems: str = ""
    acl: tuple[AclEntry, ...] = ()  # as InstallCopy's: what the copy's access ACL is set to
    acl_for: tuple[str, ...] = ()
    kind = "fix_copy"

    @property
    def summary(self) -> str:
        return f"set {self.target} to {self.after}"

    @property
    def before(self) -> str:
        return self.problems

    @property
    def after(self) -> str:
        return copy_after(self.group, self.caps, self.acl_for)


def copy_after(group: str, caps: tuple[str, ...], acl_for: tuple[str, ...]) -> str:
    grants = f", r-x kept for the live job grants of {', '.join(acl_for)}" if acl_for else ""
    return f"root:{group} {COPY_MODE:04o} {','.join(caps)}=ep{grants}"


@dataclass(frozen=True)
class RestoreContext(Action):
    kind = "restore_context"

    @property
    def summary(self) -> str:
        return f"restore the SELinux file context of {self.target} (restorecon)"


@dataclass(frozen=True)
class WriteFile(Action):
    content: str = ""
    old: str | None = None  # None: the file does not exist
    step: str = "write_file"
    mode: int = FILE_MODE
    # A command the new file must pass (run with its temp file's path appended) before it replaces
    # the old one: visudo -cf for a sudoers drop-in.
    check: tuple[str, ...] = ()
    kind = "write_file"

    @property
    def summary(self) -> str:
        return f"{'create' if self.old is None else 'rewrite'} {self.target}"

    @property
    def before(self) -> str:
        return self.old or ""

    @property
    def after(self) -> str:
        return self.content


@dataclass(frozen=True)
class CreateSymlink(Action):
    """A symlink setup owns, e.g. a unit's enablement in multi-user.target.wants (what
    `systemctl enable` makes, without systemd running: image chroots too)."""

    link_to: str = ""
    old: str | None = None  # what is at target now (its link target, "a file", or None)
    step: str = "create_symlink"
    kind = "create_symlink"

    @property
    def summary(self) -> str:
        return f"link {self.target} -> {self.link_to}"

    @property
    def before(self) -> str:
        return self.old or ""

    @property
    def after(self) -> str:
        return self.link_to


@dataclass(frozen=True)
class Systemctl(Action):
    """`systemctl stop UNITS` before remove deletes their files, or `daemon-reload` after, so no
    unit stays loaded as `not-found ... active`. Skipped where systemd is not running (images)."""

    verb: str = "daemon-reload"
    units: tuple[str, ...] = ()
    kind = "systemctl"

    @property
    def summary(self) -> str:
        return " ".join(("systemctl", self.verb, *self.units))


@dataclass(frozen=True)
class SetParanoid(Action):
    value: int = 2
    was: int | None = None
    kind = "set_paranoid"

    @property
    def summary(self) -> str:
        verb = "raise" if self.was is None or self.was < self.value else "lower"
        return f"{verb} kernel.perf_event_paranoid {self.was} -> {self.value}"

    @property
    def before(self) -> str:
        return str(self.was)

    @property
    def after(self) -> str:
        return str(self.value)


@dataclass(frozen=True)
class AddMember(Action):
    group: str = ""
    kind = "add_member"

    @property
    def summary(self) -> str:
        return f"add {self.target} to {self.group}"

    @property
    def after(self) -> str:
        return f"{self.target} in {self.group} (effective at their next login)"


@dataclass(frozen=True)
class RemoveMember(Action):
    group: str = ""
    kind = "remove_member"

    @property
    def summary(self) -> str:
        return f"remove {self.target} from {self.group}"


@dataclass(frozen=True)
class CleanLeftovers(Action):
    paths: tuple[str, ...] = ()
    kind = "clean_leftovers"

    @property
    def summary(self) -> str:
        return f"delete {len(self.paths)} leftover temp files"


@dataclass(frozen=True)
class DeleteCopy(Action):
    kind = "delete_copy"

    @property
    def summary(self) -> str:
        return f"strip capabilities from and delete {self.target}"


@dataclass(frozen=True)
class DeleteFile(Action):
    step: str = "delete_file"
    kind = "delete_file"

    @property
    def summary(self) -> str:
        return f"delete {self.target}"


@dataclass(frozen=True)
class DeleteDir(Action):
    kind = "delete_dir"

    @property
    def summary(self) -> str:
        return f"delete {self.target} if empty"


@dataclass(frozen=True)
class DeleteGroup(Action):
    kind = "delete_group"

    @property
    def summary(self) -> str:
        return f"delete group {self.target}"


@dataclass(frozen=True)
class SecurePath(Action):
    """The setup record or its directory: root-owned and not writable by others."""

    mode: int = 0o644
    kind = "secure_path"

    @property
    def summary(self) -> str:
        return f"make {self.target} root-owned, mode {self.mode:04o}"


@dataclass(frozen=True)
class RemountTracefs(Action):
    """Remount tracefs at target with gid/mode: the group's gid (resolved when applied, the group
    may be created by the same plan) or, on remove, the recorded gid."""

    group: str = ""
    gid: int | None = None
    mode: int = 0o750
    was_mode: int = 0
    was_gid: int = 0
    kind = "remount_tracefs"

    @property
    def summary(self) -> str:
        return f"remount tracefs {self.target} {self.after} (machine-wide, live)"

    @property
    def before(self) -> str:
        return f"mode {self.was_mode:04o} gid {self.was_gid}"

    @property
    def after(self) -> str:
        owner = f"gid of {self.group}" if self.gid is None else f"gid {self.gid}"
        return f"mode {self.mode:04o} {owner}"


@dataclass(frozen=True)
class PersistTracefs(Action):
    """The systemd drop-in giving the group tracefs at boot (rendered with the group's gid)."""

    group: str = ""
    old: str | None = None
    kind = "persist_tracefs"

    @property
    def summary(self) -> str:
        return f"{'create' if self.old is None else 'rewrite'} {self.target} (tracefs gid {self.group}, mode 0750 at boot)"


@dataclass(frozen=True)
class EditFstab(Action):
    """One tracefs entry's line in /etc/fstab (target): setup gives it the group's gid and mode
    0750 (`new_line` "" = computed with the group's gid when applied: the same plan may create the
    group); remove puts back the line setup found."""

    line: str = ""  # the line as it is now
    new_line: str = ""
    group: str = ""
    gid: int | None = None
    step: str = "edit_fstab"
    journal: str = ""  # setup: where the edit is written down before fstab changes (fstab.py)
    kind = "edit_fstab"

    @property
    def summary(self) -> str:
        return f"edit the tracefs entry in {self.target}: {self.after} (machine-wide, at boot)"

    @property
    def before(self) -> str:
        return self.line

    @property
    def after(self) -> str:
        if self.new_line:
            return self.new_line

        return edit_line(self.line, self.gid) if self.gid is not None else f"options +gid=<gid of {self.group}>,mode=0750"


ALL_ACTIONS = (
    CreateGroup, LockGroupPassword, CreateDir, RepairDir, InstallCopy, FixCopy, RestoreContext, WriteFile, SetParanoid,
    AddMember, RemoveMember, CleanLeftovers, DeleteCopy, DeleteFile, DeleteDir, DeleteGroup, CreateSymlink, SecurePath,
    RemountTracefs, PersistTracefs, EditFstab, Systemctl,
)
