"""The one place that changes the host. Every function here is small and ordered for safety:

- the privileged copy is built under a temporary name that only root can open (0700), gets owner,
  mode and capabilities on its open descriptor (capabilities last: chown clears them), is fsynced
  and renamed over the target, so no half-made or world-executable privileged file ever exists;
- every path is opened with O_NOFOLLOW, so a planted symlink cannot redirect a write;
- the copy is made through one descriptor of the source setup checked (same inode, size and times),
  hashing what it copies: bytes other than the ones setup checked are never installed;
- every change is written to syslog (authpriv) with who did it and old -> new;
- group and member changes go through shadow-utils (groupadd/gpasswd/groupdel), which lock
  /etc/group and /etc/gshadow; arguments are lists, never a shell string.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import grp
import hashlib
import os
import stat
import subprocess
import time
from typing import Any, Callable, Iterable, Iterator, Mapping

from . import actions as act
from . import fstab, host, log, trust
from .acl import ACL_ACCESS, ACL_DEFAULT, AclEntry, encode_acl
from .capabilities import XATTR_NAME, encode
from .errors import ConvergeError, LockedError
from .paths import DROPIN_PATH, LOCK_PATH, TMP_PREFIX, intent_path, journal_path
from .policy import COPY_MODE, DIR_MODE, FILE_MODE
from .reach_plan import render_dropin

# A narrow test hook (see tests/integration/test_faults.py): record each step reached, and pause
# before a named one so a test can SIGKILL the run exactly there. It only waits or writes a line to
# a file the test names; it never fakes or skips an effect.
PAUSE_ENV = "PERFGROUP_TEST_PAUSE_AT"
TRACE_ENV = "PERFGROUP_TEST_TRACE"


def checkpoint(step: str) -> None:
    trace = os.environ.get(TRACE_ENV)
    if trace:
        with open(trace, "a") as handle:
            handle.write(step + "\n")
    wanted = os.environ.get(PAUSE_ENV)
    # "repair_dir" pauses at every "repair_dir:PATH" (a step named per target, so the trace shows the order).
    if wanted and wanted in (step, step.split(":", 1)[0]):
        # The test kills us here, or deletes the marker to let us go on.
        marker = os.environ.get("PERFGROUP_TEST_PAUSE_FILE", "/run/perfgroup-paused")
        with open(marker, "w") as handle:
            handle.write(f"{os.getpid()} {step}\n")
        deadline = time.monotonic() + 600
        while os.path.exists(marker) and time.monotonic() < deadline:
            time.sleep(0.02)


@contextlib.contextmanager
def node_lock(wait_seconds: float, on_wait: Callable[[str], None] | None = None, image: bool = False) -> Iterator[None]:
    """Serialise perfgroup runs on one node (setup racing setup or remove). In an image chroot the
    lock is its root directory itself: no lock file left behind in the image."""
    if image:
        fd = os.open("/", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    else:
        fd = os.open(LOCK_PATH, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    where = "the image root" if image else LOCK_PATH
    try:
        deadline = time.monotonic() + wait_seconds
        told = False
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise LockedError(
                        f"another perfgroup run holds {where} (waited {wait_seconds:.0f}s); try again when it ends"
                    ) from None
                if not told and on_wait is not None:
                    on_wait(f"another perfgroup run holds {where}; waiting up to {wait_seconds:.0f}s")
                    told = True
                time.sleep(0.1)
        yield
    finally:
        os.close(fd)


def run_tool(step: str, argv: list[str], env: dict[str, str] | None = None) -> None:
    checkpoint(step)
    try:
        result = subprocess.run(argv, capture_output=True, text=True, check=False, stdin=subprocess.DEVNULL, env=env)
    except OSError as error:
        raise ConvergeError(step, f"cannot run {argv[0]}: {error.strerror}") from None
    if result.returncode != 0:
        detail = (result.stderr or result.stdout).strip().splitlines()
        raise ConvergeError(step, f"{' '.join(argv)} failed: {detail[-1] if detail else result.returncode}")


def install_package(command: tuple[str, ...]) -> None:
    """Install the distribution's perf package (only when --install-perf asked for it)."""
    run_tool("install_perf", list(command), env=dict(os.environ, DEBIAN_FRONTEND="noninteractive"))
    log.change("install_perf", command[-1], "absent", "installed")


def group_gid(name: str, step: str) -> int:
    try:
        return grp.getgrnam(name).gr_gid
    except KeyError:
        raise ConvergeError(step, f"group {name} does not exist") from None


def create_group(action: act.CreateGroup) -> None:
    gid = action.gid
    argv = ["groupadd", "--system"] + (["--gid", str(gid)] if gid is not None else []) + ["--", action.target]
    run_tool("create_group", argv)
    log.change("create_group", action.target, "absent", f"gid {group_gid(action.target, 'create_group')}")


def lock_group_password(action: act.LockGroupPassword) -> None:
    run_tool("lock_group_password", ["gpasswd", "-R", action.target])
    log.change("lock_group_password", action.target, "password set", "locked")


def add_member(user: str, group: str) -> None:
    run_tool("add_member", ["gpasswd", "-a", user, group])
    log.change("add_member", group, "", f"+{user}")


def remove_member(user: str, group: str) -> None:
    run_tool("remove_member", ["gpasswd", "-d", user, group])
    log.change("remove_member", group, user, f"-{user}")


def delete_group(name: str) -> None:
    run_tool("delete_group", ["groupdel", "--", name])
    log.change("delete_group", name, "present", "absent")


def create_dir(action: act.CreateDir) -> None:
    checkpoint("create_dir")
    try:
        os.mkdir(action.target, DIR_MODE)
        fd = os.open(action.target, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError as error:
        raise ConvergeError("create_dir", f"{action.target}: {error.strerror}") from None
    try:
        strip_acls(fd, default=True)  # a default ACL above would otherwise be inherited
        os.fchown(fd, 0, 0)
        os.fchmod(fd, DIR_MODE)  # umask may have narrowed it
    finally:
        os.close(fd)
    log.change("create_dir", action.target, "absent", "root:root 0755")


def strip_acls(fd: int, default: bool = False) -> None:
    """Drop POSIX ACLs so the mode bits say everything: a named entry (`setfacl -m u:bob:rx`, or one
    inherited from a parent's default ACL) would let a non-member past mode 0750."""
    for name in (ACL_ACCESS, ACL_DEFAULT) if default else (ACL_ACCESS,):
        try:
            os.removexattr(fd, name)
        except OSError as error:
            if error.errno not in (errno.ENODATA, errno.ENOTSUP, errno.EOPNOTSUPP):
                raise


def secure_path(action: act.SecurePath) -> None:
    checkpoint("secure_path")
    try:
        fd = os.open(action.target, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK)
    except OSError as error:
        raise ConvergeError("secure_path", f"{action.target}: {error.strerror}") from None
    try:
        os.fchmod(fd, action.mode)
        strip_acls(fd, default=stat.S_ISDIR(os.fstat(fd).st_mode))
        os.fchown(fd, 0, 0)
    finally:
        os.close(fd)
    log.change("secure_path", action.target, "writable by others", f"root {action.mode:04o}")


def repair_dir(action: act.RepairDir) -> None:
    checkpoint(f"repair_dir:{action.target}")
    mode = action.mode
    try:
        fd = os.open(action.target, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError as error:
        raise ConvergeError("repair_dir", f"{action.target}: {error.strerror}") from None
    try:
        os.fchmod(fd, mode)  # close the write hole before anything else
        strip_acls(fd, default=True)
        os.fchown(fd, 0, 0)
    finally:
        os.close(fd)
    log.change("repair_dir", action.target, action.before, action.after)


def _fsync_dir(path: str) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _open_temp(directory: str, name: str) -> tuple[int, str]:
    """A new file only root can open, in the destination's directory (so rename is atomic)."""
    temp = os.path.join(directory, f"{TMP_PREFIX}{name}.{os.getpid()}")
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    return fd, temp


def _open_checked_source(action: act.InstallCopy) -> int:
    """The source perf setup checked, opened once and never through a symlink: the same inode,
    size and times as when its path was checked and its bytes hashed (security review finding 4)."""
    changed = f"source perf {action.source} changed since it was checked; run setup again"
    if action.source_key is None or not action.source_sha256:
        raise ConvergeError("install_copy", f"source perf {action.source} was not checked; run setup again")
    try:
        src = os.open(action.source, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK)
    except OSError as error:
        raise ConvergeError("install_copy", f"source perf {action.source}: {error.strerror}") from None
    info = os.fstat(src)
    if not stat.S_ISREG(info.st_mode) or host.key_of(info) != action.source_key:
        os.close(src)
        raise ConvergeError("install_copy", changed)
    return src


def _copy_checked(src: int, fd: int, action: act.InstallCopy) -> None:
    """Copy from the checked descriptor, hashing what is copied: the copy holds exactly the bytes
    whose sha256 setup checked, or nothing is installed."""
    digest = hashlib.sha256()
    for chunk in iter(lambda: os.read(src, 1 << 20), b""):
        digest.update(chunk)
        view = memoryview(chunk)
        while view:
            view = view[os.write(fd, view):]
    got = digest.hexdigest()
    if got != action.source_sha256:
        raise ConvergeError("install_copy", f"source perf {action.source} changed since it was checked (sha256 "
                                            f"{got[:12]}, checked {action.source_sha256[:12]}); run setup again")


def _neutralise(fd: int) -> None:
    """Strip capabilities and every access bit but root's from an open regular file."""
    if stat.S_ISREG(os.fstat(fd).st_mode):
        with contextlib.suppress(OSError):
            os.removexattr(fd, XATTR_NAME)
        os.fchmod(fd, 0o600)


def _open_existing(path: str) -> int | None:
    try:
        return os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK)
    except OSError as error:
        if error.errno in (errno.ENOENT, errno.ELOOP, errno.ENXIO):
            return None
        raise


def retire(path: str, step: str) -> None:
    """Neutralise a file in place (used for leftovers, never for the live copy)."""
    checkpoint(step)
    try:
        fd = _open_existing(path)
    except OSError as error:
        raise ConvergeError(step, f"{path}: {error.strerror}") from None
    if fd is not None:
        try:
            _neutralise(fd)
        finally:
            os.close(fd)


def clean_leftovers(directory: str) -> list[str]:
    """Delete temp files a killed perfgroup run left in directory (neutralised first: one may
    already carry capabilities). Only names with perfgroup's own prefix are touched."""
    removed: list[str] = []
    try:
        names = [n for n in os.listdir(directory) if n.startswith(TMP_PREFIX)]
    except OSError:
        return removed
    for name in names:
        path = os.path.join(directory, name)
        retire(path, "clean_leftover")
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
            removed.append(path)
            log.change("clean_leftover", path, "present", "absent")
    return removed


def _set_copy_metadata(fd: int, gid: int, caps: list[str], acl: tuple[AclEntry, ...] = ()) -> None:
    checkpoint("chmod_private")
    strip_acls(fd)  # inherited from the directory's default ACL, or added by hand
    os.fchmod(fd, 0o700)  # no group/other access while the owner changes
    checkpoint("chown_copy")
    os.fchown(fd, 0, gid)  # clears capabilities and setuid bits, so it comes first
    checkpoint("chmod_copy")
    os.fchmod(fd, COPY_MODE)
    if acl:  # the live job grants' entries, as the plan built them from their records
        os.setxattr(fd, ACL_ACCESS, encode_acl(acl))
    checkpoint("setcap_copy")
    os.setxattr(fd, XATTR_NAME, encode(frozenset(caps)))


def _exposed(fd: int) -> bool:
    """An old copy that others can reach: extra names, open modes or a non-root owner."""
    info = os.fstat(fd)
    return (
        info.st_nlink > 1 or info.st_uid != 0
        or bool(info.st_mode & (stat.S_IWGRP | 0o007 | stat.S_ISUID | stat.S_ISGID))
    )


def install_copy(action: act.InstallCopy) -> None:
    """Build the new copy beside the target and rename it over, so the target path names either
    the old complete copy or the new complete copy. An old copy that others can reach (hard links
    elsewhere keep its inode alive, or its mode is open) is neutralised first, through a
    descriptor: a kill in between then leaves a harmless file, never a privileged open one."""
    caps = list(action.caps)
    gid = group_gid(action.group, "install_copy")
    directory, name = os.path.split(action.target)
    clean_leftovers(directory)
    checkpoint("write_copy")
    src = _open_checked_source(action)
    try:
        _install_from(src, action, directory, name, gid, caps)
    finally:
        os.close(src)
    log.change("install_copy", action.target, action.before, action.after)


def _install_from(src: int, action: act.InstallCopy, directory: str, name: str, gid: int, caps: list[str]) -> None:
    try:
        fd, temp = _open_temp(directory, name)
    except OSError as error:
        raise ConvergeError("install_copy", f"cannot create a file in {directory}: {error.strerror}") from None
    old = None
    try:
        try:
            _copy_checked(src, fd, action)
            checkpoint("fsync_copy")
            os.fsync(fd)
            _set_copy_metadata(fd, gid, caps, action.acl)
            os.fsync(fd)
        finally:
            os.close(fd)
        old = _open_existing(action.target)
        if old is not None and _exposed(old):
            checkpoint("retire_old_copy")
            _neutralise(old)
        checkpoint("rename_copy")
        os.rename(temp, action.target)
        _fsync_dir(directory)
    except OSError as error:
        with contextlib.suppress(OSError):
            os.unlink(temp)
        if error.errno in (errno.ENOTSUP, errno.EOPNOTSUPP):
            raise ConvergeError(
                "install_copy",
                f"the filesystem holding {directory} cannot store file capabilities (no security xattrs); "
                "choose a --dest on a local filesystem",
            ) from None
        raise ConvergeError("install_copy", f"{action.target}: {error.strerror}") from None
    except ConvergeError:
        with contextlib.suppress(OSError):
            os.unlink(temp)
        raise
    finally:
        if old is not None:
            os.close(old)


def fix_copy(action: act.FixCopy) -> None:
    caps = list(action.caps)
    gid = group_gid(action.group, "fix_copy")
    try:
        fd = os.open(action.target, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError as error:
        raise ConvergeError("fix_copy", f"{action.target}: {error.strerror}") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode) or info.st_uid != 0 or info.st_nlink != 1:
            raise ConvergeError("fix_copy", f"{action.target} changed while setup ran; run setup again")
        _set_copy_metadata(fd, gid, caps, action.acl)
        os.fsync(fd)
    except OSError as error:
        raise ConvergeError("fix_copy", f"{action.target}: {error.strerror}") from None
    finally:
        os.close(fd)
    log.change("fix_copy", action.target, action.before, action.after)


def write_file(path: str, content: str, step: str = "write_file", mode: int = FILE_MODE,
               check: tuple[str, ...] = ()) -> None:
    """Atomically replace path with content (root-owned, mode), never following a symlink, and
    only into a directory that is root's alone all the way up (planned writes were refused
    earlier; this catches a directory changed while the run went on)."""
    checkpoint(step)
    problem = trust.nearest_dir_problem(path)
    if problem is not None:
        raise ConvergeError(step, f"{problem}: not writing {path} there")
    try:
        os.makedirs(os.path.dirname(path), 0o755, exist_ok=True)
    except OSError as error:
        raise ConvergeError(step, f"cannot write in {os.path.dirname(path)}: {error.strerror}") from None
    replace_atomically(path, content.encode(), step, mode, check=check)


def replace_atomically(path: str, data: bytes, step: str, mode: int, owner: tuple[int, int] | None = None,
                       check: tuple[str, ...] = ()) -> None:
    """Temp file beside path, written, chmod (and chown when owner is given), fsync'd, `check`ed
    (its command must accept the temp file: else the old file stays), renamed over path,
    directory fsync'd: a reader sees the old file or the new one, never a part."""
    directory, name = os.path.split(path)
    try:
        clean_leftovers(directory)
        fd, temp = _open_temp(directory, name)
    except OSError as error:
        raise ConvergeError(step, f"cannot write in {directory}: {error.strerror}") from None
    try:
        try:
            if os.write(fd, data) != len(data):
                raise OSError(errno.ENOSPC, "short write")
            if owner is not None:
                os.fchown(fd, *owner)
            os.fchmod(fd, mode)
            os.fsync(fd)
        finally:
            os.close(fd)
        if check:
            run_tool(f"check_{step}", [*check, temp])
        checkpoint(f"rename_{step}")
        os.rename(temp, path)
        _fsync_dir(directory)
    except OSError as error:
        with contextlib.suppress(OSError):
            os.unlink(temp)
        raise ConvergeError(step, f"{path}: {error.strerror}") from None
    except ConvergeError:
        with contextlib.suppress(OSError):
            os.unlink(temp)
        raise


def write_file_action(action: act.WriteFile) -> None:
    write_file(action.target, action.content, step=action.step, mode=action.mode, check=action.check)
    log.change("write_file", action.target, "absent" if action.old is None else "old content", "perfgroup content")


def create_symlink(action: act.CreateSymlink) -> None:
    """Make the link under a temporary name and rename it over whatever is there (atomic)."""
    directory, name = os.path.split(action.target)
    checkpoint(action.step)
    problem = trust.nearest_dir_problem(action.target)
    if problem is not None:
        raise ConvergeError(action.step, f"{problem}: not linking {action.target} there")
    temp = os.path.join(directory, f"{TMP_PREFIX}{name}.{os.getpid()}")
    try:
        os.makedirs(directory, 0o755, exist_ok=True)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp)
        os.symlink(action.link_to, temp)
        os.rename(temp, action.target)
    except OSError as error:
        with contextlib.suppress(OSError):
            os.unlink(temp)
        raise ConvergeError(action.step, f"{action.target}: {error.strerror}") from None
    log.change("create_symlink", action.target, action.before or "absent", action.link_to)


def set_paranoid(action: act.SetParanoid) -> None:
    checkpoint("set_paranoid")
    try:
        with open(action.target, "w") as handle:
            handle.write(f"{action.value}\n")
    except OSError as error:
        raise ConvergeError("set_paranoid", f"cannot write {action.target}: {error.strerror}") from None
    log.change("set_paranoid", "kernel.perf_event_paranoid", action.before, action.after)


def remount_tracefs(action: act.RemountTracefs) -> None:
    gid = action.gid if action.gid is not None else group_gid(action.group, "remount_tracefs")
    run_tool("remount_tracefs", ["mount", "-o", f"remount,gid={gid},mode={action.mode:04o}", "--", action.target])
    log.change("remount_tracefs", action.target, action.before, f"mode {action.mode:04o} gid {gid}")


def persist_tracefs(action: act.PersistTracefs) -> None:
    write_file(action.target, render_dropin(action.group, group_gid(action.group, "persist_tracefs")),
               step="persist_tracefs")
    reload_systemd()
    log.change("persist_tracefs", action.target, "absent" if action.old is None else "old content", "perfgroup content")


def edit_fstab(action: act.EditFstab) -> bool:
    """Replace exactly the planned line; fstab changed since planning (the line is gone or
    doubled) fails the step rather than editing a line nobody looked at. False: nothing to do
    (the line already carries the gid of a group this plan created)."""
    step = action.step
    checkpoint(step)
    new: str | None = action.new_line
    if not new:
        new = fstab.edited(action.line, action.gid if action.gid is not None else group_gid(action.group, step))
        if new is None:
            return False
    try:
        fd = os.open(action.target, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        try:
            info = os.fstat(fd)
            with os.fdopen(os.dup(fd), "rb") as handle:
                text = handle.read().decode("utf-8", "surrogateescape")
        finally:
            os.close(fd)
    except OSError as error:
        raise ConvergeError(step, f"{action.target}: {error.strerror}") from None
    edited = fstab.replace_line(text, action.line, new)
    if edited is None or not stat.S_ISREG(info.st_mode):
        raise ConvergeError(step, f"{action.target} changed while perfgroup ran; run it again")
    if action.journal:  # setup's edit (remove's restore needs none)
        # Only what a root-owned journal holds of setup's own edits for this gid: a planted
        # journal must not be laundered into a root-owned one here.
        known, _ = trust.fstab_journal(action.group, group_gid(action.group, step))
        write_file(action.journal, fstab.journal_text((*known, (action.line, new))), step="journal_fstab", mode=0o600)
    # Not perfgroup's file: it keeps its owner and mode.
    replace_atomically(action.target, edited.encode("utf-8", "surrogateescape"), step, stat.S_IMODE(info.st_mode),
                       (info.st_uid, info.st_gid))
    reload_systemd()  # systemd's fstab generator makes the mount unit from the entry
    log.change(step, action.target, action.line, new)
    return True


def write_pending(state_path: str, text: str) -> None:
    """Before the first change: what only a record would remember (pending.py)."""
    write_file(intent_path(state_path), text, step="write_pending", mode=0o600)


def delete_pending(state_path: str) -> None:
    """Once a record carries the intent (setup's record, or remove's end)."""
    path = intent_path(state_path)
    if not os.path.lexists(path):
        return
    checkpoint("delete_pending")
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)


def delete_fstab_journal(group: str) -> None:
    """After the record carries the journal's edits (setup's last write)."""
    path = journal_path(group)
    if not os.path.lexists(path):
        return
    checkpoint("delete_fstab_journal")
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)


def reload_systemd() -> None:
    """So systemd's view of the mount unit matches its files (it warns otherwise); best effort."""
    if os.path.isdir("/run/systemd/system"):
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            subprocess.run(["systemctl", "daemon-reload"], capture_output=True, check=False,
                           stdin=subprocess.DEVNULL, timeout=60)


def systemctl(action: act.Systemctl) -> bool:
    """Best effort, like reload_systemd: a unit that will not stop must not keep its files alive."""
    if not os.path.isdir("/run/systemd/system"):
        return False
    checkpoint("systemctl")
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        subprocess.run(["systemctl", action.verb, *action.units], capture_output=True, check=False,
                       stdin=subprocess.DEVNULL, timeout=120)
    log.change("systemctl", " ".join(action.units) or "systemd", "", action.verb)
    return True


def delete_copy(path: str) -> bool:
    """Take the copy's name away atomically, then neutralise and delete the inode."""
    directory, name = os.path.split(path)
    checkpoint("delete_copy")
    try:
        fd = _open_existing(path)
        if fd is None:
            if not os.path.lexists(path):
                return False
            os.unlink(path)  # a symlink planted at the copy's path: remove the name only
            log.change("delete_copy", path, "symlink", "absent")
            return True
        try:
            temp = os.path.join(directory, f"{TMP_PREFIX}{name}.removed.{os.getpid()}")
            os.rename(path, temp)
            checkpoint("retire_removed_copy")
            _neutralise(fd)
        finally:
            os.close(fd)
        checkpoint("unlink_removed_copy")
        os.unlink(temp)
    except OSError as error:
        raise ConvergeError("delete_copy", f"{path}: {error.strerror}") from None
    log.change("delete_copy", path, "present", "absent")
    return True


def remove_path(path: str, step: str) -> bool:
    checkpoint(step)
    try:
        os.unlink(path)
    except FileNotFoundError:
        return False
    except OSError as error:
        raise ConvergeError(step, f"cannot delete {path}: {error.strerror}") from None
    log.change(step, path, "present", "absent")
    return True


def set_copy_acl(path: str, entries: tuple[AclEntry, ...], step: str, old: str, new: str) -> None:
    """Write the privileged copy's access ACL (a job's grant or its revoke); () removes it. Only
    on a copy that is root's alone all the way up, never through a symlink."""
    checkpoint(step)
    problem = trust.path_problem(path, "file")
    if problem is not None:
        raise ConvergeError(step, f"{problem}: not changing the ACL of {path}")
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError as error:
        raise ConvergeError(step, f"{path}: {error.strerror}") from None
    try:
        if entries:
            os.setxattr(fd, ACL_ACCESS, encode_acl(entries))
        else:
            with contextlib.suppress(OSError):  # none there: already the mode bits alone
                os.removexattr(fd, ACL_ACCESS)
    except OSError as error:
        raise ConvergeError(step, f"{path}: {error.strerror}") from None
    finally:
        os.close(fd)
    log.change(step, path, old, new)


def kill_processes(pids: Iterable[int], step: str, what: str) -> None:
    """SIGKILL (a job's leftover perf must not outlive its grant); gone already is fine."""
    checkpoint(step)
    for pid in pids:
        try:
            os.kill(pid, 9)
        except ProcessLookupError:
            continue
        except OSError as error:
            raise ConvergeError(step, f"cannot end process {pid} ({what}): {error.strerror}") from None
        log.change(step, f"process {pid}", what, "killed")


def remove_dir(path: str) -> bool:
    checkpoint("remove_dir")
    try:
        os.rmdir(path)
    except FileNotFoundError:
        return False
    except OSError as error:
        if error.errno == errno.ENOTEMPTY:
            return False  # something else lives there now: keep it
        raise ConvergeError("remove_dir", f"cannot delete {path}: {error.strerror}") from None
    log.change("remove_dir", path, "present", "absent")
    return True


def restore_context(action: act.RestoreContext) -> None:
    # A copy made in a temp file and renamed keeps the temp file's label; the policy's label
    # for the path is what lets confined services and users run it.
    run_tool("restore_context", ["restorecon", "-F", "--", action.target])
    log.change("restore_context", action.target, "", "policy label")


def clean_leftovers_action(action: act.CleanLeftovers) -> None:
    for directory in sorted({os.path.dirname(path) for path in action.paths}):
        clean_leftovers(directory)


def delete_copy_action(action: act.DeleteCopy) -> bool:
    found = delete_copy(action.target)
    clean_leftovers(os.path.dirname(action.target))
    return found


def delete_file_action(action: act.DeleteFile) -> bool:
    found = remove_path(action.target, action.step)
    if found and action.target == DROPIN_PATH:
        reload_systemd()
    return found


def delete_dir_action(action: act.DeleteDir) -> bool:
    clean_leftovers(action.target)  # a killed remove may have left the renamed-away copy here
    return remove_dir(action.target)


def _changes(do: Callable[[Any], object]) -> Callable[[Any], bool]:
    """For steps that always change something when they succeed (a delete may find nothing)."""
    def done(action: Any) -> bool:
        do(action)
        return True
    return done


# The one dispatch from an action's type to the code that performs it; True: something changed.
PERFORMERS: dict[type, Callable[[Any], bool]] = {
    act.CreateGroup: _changes(create_group),
    act.LockGroupPassword: _changes(lock_group_password),
    act.SecurePath: _changes(secure_path),
    act.CreateDir: _changes(create_dir),
    act.RepairDir: _changes(repair_dir),
    act.InstallCopy: _changes(install_copy),
    act.FixCopy: _changes(fix_copy),
    act.RestoreContext: _changes(restore_context),
    act.WriteFile: _changes(write_file_action),
    act.SetParanoid: _changes(set_paranoid),
    act.CreateSymlink: _changes(create_symlink),
    act.AddMember: _changes(lambda action: add_member(action.target, action.group)),
    act.RemoveMember: _changes(lambda action: remove_member(action.target, action.group)),
    act.CleanLeftovers: _changes(clean_leftovers_action),
    act.DeleteCopy: delete_copy_action,
    act.DeleteFile: delete_file_action,
    act.DeleteDir: delete_dir_action,
    act.DeleteGroup: _changes(lambda action: delete_group(action.target)),
    act.RemountTracefs: _changes(remount_tracefs),
    act.PersistTracefs: _changes(persist_tracefs),
    act.EditFstab: edit_fstab,
    act.Systemctl: systemctl,
}


def perform(actions: Iterable[act.Action], performers: Mapping[type, Callable[[Any], bool]] | None = None,
            on_done: Callable[[act.Action], None] | None = None) -> None:
    """Perform actions in order through PERFORMERS (tests pass their own table). `on_done` hears
    of each action that changed something (a delete with nothing left is silent)."""
    table = PERFORMERS if performers is None else performers
    for action in actions:
        if table[type(action)](action) and on_done is not None:
            on_done(action)
