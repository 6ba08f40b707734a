"""Reading the host. Nothing here changes anything or needs root, and nothing spawns a process
but shell_facts' `visudo -c` (audits of a node with perf-shell only).

Everything the decisions (plan.py, findings.py) need is gathered into one NodeFacts value, so
those decisions are pure functions that tests feed with plain data.
"""

from __future__ import annotations

import grp
import os
import pwd
import stat
from types import MappingProxyType

from . import (
    access_facts,
    intent_facts,
    job_facts,
    node_files_facts,
    perfsource,
    reach_facts,
    shell_facts,
    sysctl,
    trust,
)
from .access_facts import AccessFacts
from .capabilities import FileCaps, kernel_version
from .desired import Desired
from .errors import RefusedError
from .host import digest, key_of, load_state, read_caps, read_int, read_text, sha256_fd, sha256_text
from .intent_facts import Intent
from .paths import (
    DROPIN_PATH,
    ENGINE_DIR,
    GRANTS_DIR,
    LAUNCHER,
    MOUNTINFO,
    STATE_DIR,
    TMP_PREFIX,
    default_dest,
    state_path,
)
from .state import State, StatKey
from .tuples import NamedTuple
from .validate import check_abs_path, check_group

TYPE_CHECKING = False  # as typing.TYPE_CHECKING (mypy knows the name), without importing typing at run time
if TYPE_CHECKING:
    from typing import Mapping


class PathFacts(NamedTuple):
    """lstat of one path; kind is file, dir, symlink, other or missing."""

    path: str
    kind: str
    uid: int = 0
    gid: int = 0
    mode: int = 0  # permission bits incl. setuid/setgid/sticky
    nlink: int = 0
    key: StatKey | None = None

    @property
    def exists(self) -> bool:
        return self.kind != "missing"


class CopyFacts(NamedTuple):
    node: PathFacts
    is_elf: bool | None = False  # None: unreadable for this user
    caps: FileCaps | None = None
    caps_error: str | None = None
    sha256: str | None = None


class TextFacts(NamedTuple):
    path: str
    content: str | None  # None: missing or unreadable


class GroupFacts(NamedTuple):
    name: str
    gid: int | None  # None: no such group
    members: tuple[str, ...] = ()
    local: bool = False  # defined in /etc/group (else it comes from the directory)


class SourceFacts(NamedTuple):
    requested: str | None = None
    path: str | None = None
    sha256: str | None = None
    key: StatKey | None = None
    error: str | None = None
    install_command: tuple[str, ...] | None = None


class NodeFacts(NamedTuple):
    kernel_release: str
    cap_last_cap: int | None
    paranoid: int | None
    kptr_restrict: int | None
    lockdown: str | None
    selinux: str | None
    group: GroupFacts
    copy: CopyFacts
    dirs: tuple[PathFacts, ...]  # dest's parents, nearest first, up to /
    nosuid: bool | None
    source: SourceFacts
    profile: TextFacts
    sysctl_dropin: TextFacts
    persisted_paranoid: int | None
    persisted_in: str | None
    state: State | None
    state_error: str | None
    leftovers: tuple[str, ...] = ()  # temp files a killed perfgroup run left behind
    dest_realpath: str = ""  # Desired.dest with every symlink resolved
    packaged_realpaths: tuple[str, ...] = ()  # the distribution's perf, resolved (never the dest)
    gid_owner: str | None = None  # group already holding Desired.gid, if any
    users: Mapping[str, bool] = MappingProxyType({})  # Desired.members -> exists
    os_release: str = ""
    # CONFIG_SECURITY_PERF_EVENTS_RESTRICT (Debian's paranoid 3): None when the config is unreadable
    # or was not needed (paranoid < 3)
    perf_restrict_config: bool | None = None
    recorded_files: tuple[tuple[str, str | None], ...] = ()  # (path, sha256 now or None) of recorded files
    node_files: node_files_facts.NodeFileFacts = node_files_facts.NodeFileFacts()  # entry point + artifacts (setup only)
    access: AccessFacts = AccessFacts()  # ACLs, hidden group holders, leftovers (access.py)
    reach: reach_facts.ReachFacts = reach_facts.ReachFacts()  # tracefs mounts, mlock budget
    fstab_journal: tuple[tuple[str, str], ...] = ()  # fstab edits not yet recorded (fstab.py: the journal)
    pending: Intent | None = None  # what a setup run that did not finish meant to record (intent_facts.py)
    record_untrusted: tuple[str, ...] = ()  # record items trust.sanitize dropped, each named
    # (path, why) of installed files root or members run that others could change (trust.files_problems)
    unsafe_files: tuple[tuple[str, str], ...] = ()
    # (path, why) of files setup would write whose directory others could change (setup and heal only)
    unsafe_targets: tuple[tuple[str, str], ...] = ()
    other_groups: tuple[str, ...] = ()  # groups other setup records on this node are for (one group per node)
    shell: shell_facts.ShellFacts = shell_facts.ShellFacts()  # sudo, capsh (setup --shell, or recorded)
    fstype: str = ""  # the filesystem type of the mount holding the copy's directory ("" unknown, image)
    jobs: job_facts.JobFacts = job_facts.JobFacts()  # per-job grants under Slurm (job_facts.py)


def path_facts(path: str) -> PathFacts:
    try:
        info = os.lstat(path)
    except OSError:
        return PathFacts(path=path, kind="missing")
    mode = info.st_mode
    kind = (
        "file" if stat.S_ISREG(mode) else "dir" if stat.S_ISDIR(mode)
        else "symlink" if stat.S_ISLNK(mode) else "other"
    )
    return PathFacts(path, kind, info.st_uid, info.st_gid, stat.S_IMODE(mode), info.st_nlink, key_of(info))


def copy_facts(path: str, state: State | None) -> CopyFacts:
    node = path_facts(path)
    if node.kind != "file":
        return CopyFacts(node=node)
    caps, caps_error = read_caps(path)
    recorded = state if state is not None and state.dest == path else None
    sha = digest(path, node.key, recorded.copy_stat if recorded else None, recorded.copy_sha256 if recorded else None)
    # Unchanged since setup checked it (same inode, size, times): no need to read it again,
    # which also lets a non-root monitoring account audit a copy it may not read.
    unchanged = recorded is not None and node.key == recorded.copy_stat
    elf = True if unchanged else perfsource.is_elf(path)
    return CopyFacts(node=node, is_elf=elf, caps=caps, caps_error=caps_error, sha256=sha)


def parent_chain(path: str) -> tuple[PathFacts, ...]:
    chain = []
    current = os.path.dirname(path)
    while True:
        chain.append(path_facts(current))
        if current == "/":
            return tuple(chain)
        current = os.path.dirname(current)


def nosuid_at(path: str) -> bool | None:
    """ST_NOSUID of the filesystem holding path (or its nearest existing ancestor)."""
    current = path
    while True:
        try:
            return bool(os.statvfs(current).f_flag & os.ST_NOSUID)
        except OSError:
            if current == "/":
                return None
            current = os.path.dirname(current)


def fstype_at(path: str, mountinfo: str) -> str:
    """The type of the filesystem whose mount point is the longest prefix of path (the topmost
    mount there), "" if none."""
    types = reach_facts.filesystems(mountinfo)
    points = [point for point in types if path == point or path.startswith(point.rstrip("/") + "/")]
    return types[max(points, key=len)] if points else ""


def lockdown_mode() -> str | None:
    text = read_text("/sys/kernel/security/lockdown", 256)
    if text is None or "[" not in text:
        return None
    return text.split("[", 1)[1].split("]", 1)[0]


def selinux_mode() -> str | None:
    value = read_int("/sys/fs/selinux/enforce")
    return None if value is None else "enforcing" if value == 1 else "permissive"


def local_group_names(text: str | None) -> set[str]:
    return {line.split(":", 1)[0] for line in (text or "").splitlines() if ":" in line}


def group_facts(name: str) -> GroupFacts:
    try:
        entry = grp.getgrnam(name)
    except KeyError:
        return GroupFacts(name=name, gid=None)
    local = name in local_group_names(read_text("/etc/group", 16 << 20))
    return GroupFacts(name=name, gid=entry.gr_gid, members=tuple(entry.gr_mem), local=local)


def gid_owner(gid: int | None) -> str | None:
    if gid is None:
        return None
    try:
        return grp.getgrgid(gid).gr_name
    except KeyError:
        return None


def user_exists(name: str) -> bool:
    try:
        pwd.getpwnam(name)
    except KeyError:
        return False
    return True


def source_facts(
    desired: Desired, state: State | None, kernel_release: str, os_release: str, known: SourceFacts | None = None,
) -> SourceFacts:
    requested = desired.source or (state.source if state else None)

    def trusted(path: str, info: os.stat_result) -> bool:
        if known is not None and known.path == path and known.key == key_of(info):
            return True
        return state is not None and state.source == path and state.source_stat == key_of(info)

    try:
        if requested:
            resolved = perfsource.resolve(requested, kernel_release, trusted=trusted, path_problem=trust.path_problem)
        else:
            resolved = perfsource.find_system_perf(kernel_release, os_release, trusted=trusted,
                                                   path_problem=trust.path_problem)
    except perfsource.PerfNotInstalled as missing:
        return SourceFacts(error=str(missing), install_command=missing.install_command)
    except RefusedError as refused:
        return SourceFacts(requested=requested, error=str(refused))
    info = path_facts(resolved.path)
    if known is not None and known.path == resolved.path and known.key == info.key and known.sha256:
        return SourceFacts(requested=resolved.requested, path=resolved.path, sha256=known.sha256, key=info.key)
    same = state is not None and state.source == resolved.path
    if same and state is not None and info.key is not None and info.key == state.source_stat and state.source_sha256:
        return SourceFacts(requested=resolved.requested, path=resolved.path, sha256=state.source_sha256, key=info.key)
    try:
        sha = hash_checked(resolved.path, info.key)
    except RefusedError as refused:
        return SourceFacts(requested=requested, error=str(refused))
    return SourceFacts(requested=resolved.requested, path=resolved.path, sha256=sha, key=info.key)


def hash_checked(path: str, key: StatKey | None) -> str | None:
    """sha256 of the checked source, read through one descriptor that is the very inode the check
    saw (same device, inode, size and times as `key`); None when this user may not read it."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK)
    except OSError:
        return None
    try:
        if key_of(os.fstat(fd)) != key:
            raise RefusedError(f"source perf {path} changed while it was checked; run setup again")
        return sha256_fd(fd)
    finally:
        os.close(fd)


def perf_restrict_config(release: str, paranoid: int | None) -> bool | None:
    """Whether the running kernel was built with CONFIG_SECURITY_PERF_EVENTS_RESTRICT (only asked
    when paranoid >= 3, where it decides whether CAP_PERFMON still works)."""
    if paranoid is None or paranoid < 3:
        return None
    text = read_text(f"/boot/config-{release}", 16 << 20)
    if text is None:
        text = _proc_config()
    if text is None:
        return None
    return "CONFIG_SECURITY_PERF_EVENTS_RESTRICT=y" in text


def _proc_config() -> str | None:
    import gzip  # rarely needed: only without /boot/config-*

    try:
        with gzip.open("/proc/config.gz", "rt", encoding="utf-8", errors="replace") as handle:
            return str(handle.read())
    except OSError:
        return None


def recorded_files(state: State | None) -> tuple[tuple[str, str | None], ...]:
    """Current sha256 of every file the record says setup wrote (None: missing or unreadable);
    a file whose stat is still what setup recorded with that same sha256 is not read again."""
    if state is None:
        return ()
    known = {(path, sha): key for path, sha, key in state.file_stats}
    out: list[tuple[str, str | None]] = []
    for path, sha in state.files:
        key = known.get((path, sha))
        if key is not None:
            try:
                if key_of(os.stat(path)) == key:
                    out.append((path, sha))
                    continue
            except OSError:
                pass
        text = read_text(path)
        out.append((path, sha256_text(text) if text is not None else None))
    return tuple(out)


def file_stats(files: tuple[tuple[str, str], ...]) -> tuple[tuple[str, str, StatKey], ...]:
    """For the record: the stat of each recorded file whose content has its recorded sha256 now
    (stat and content from one open file, so a change in between cannot be recorded as trusted)."""
    out = []
    for path, sha in files:
        try:  # read as read_text reads, so the sha256 is sha256_text's
            with open(path, encoding="utf-8", errors="replace") as handle:
                info = os.fstat(handle.fileno())
                text = handle.read(1 << 20)
        except OSError:
            continue
        if sha256_text(text) == sha:
            out.append((path, sha, key_of(info)))
    return tuple(out)


def persisted_paranoid() -> tuple[int | None, str | None]:
    listing: dict[str, list[str]] = {}
    for directory in sysctl.CONFIG_DIRS:
        try:
            listing[directory] = os.listdir(directory)
        except OSError:
            continue
    files = sysctl.boot_order(listing)
    if sysctl.LEGACY_CONF not in {os.path.realpath(f) for f in files}:
        files.append(sysctl.LEGACY_CONF)
    return sysctl.persisted_value([(path, read_text(path) or "") for path in files])


def leftovers(directories: list[str]) -> tuple[str, ...]:
    found = []
    for directory in directories:
        try:
            found += [f"{directory}/{n}" for n in os.listdir(directory) if n.startswith(TMP_PREFIX)]
        except OSError:
            continue
    return tuple(sorted(found))


def other_groups(group: str) -> tuple[str, ...]:
    """The groups other setup records on this node are for (GROUP.json, or a run's GROUP.pending,
    root's alone): a node has one perfgroup group, so these make `group` a second one, or a typo."""
    try:
        names = os.listdir(STATE_DIR)
    except OSError:
        return ()
    found = set()
    for name in names:
        stem, dot, suffix = name.rpartition(".")
        ours = dot and suffix in ("json", "pending") and stem != group and not name.startswith(".")
        if ours and trust.path_problem(f"{STATE_DIR}/{name}") is None:
            found.add(stem)
    return tuple(sorted(found))


def audit_target(group: str, dest: str | None) -> Desired:
    """What a read command (audit, verify) looks at: any existing group, privileged ones too,
    and the copy where the setup record says it is unless dest is given."""
    check_group(group, allow_privileged=True)
    if dest is None:
        state, _ = load_state(state_path(group))
        dest = state.dest if state is not None else default_dest(group)
    check_abs_path("--dest", dest)
    return Desired(group=group, dest=dest, allow_privileged_group=True)


def packaged_realpaths(source: SourceFacts) -> tuple[str, ...]:
    names = {f"{d}/perf" for d in perfsource.SYSTEM_DIRS} | {p for p in (source.path, source.requested) if p}
    return tuple(sorted({os.path.realpath(name) for name in names}))


# An image without a kernel under /lib/modules: assume a kernel with CAP_PERFMON (5.8+, as every
# supported distribution ships); the boot unit re-plans on the kernel the node actually boots.
IMAGE_ASSUMED_CAP_LAST_CAP = 40
MODULE_DIRS = ("/lib/modules", "/usr/lib/modules")


def image_kernel_release() -> str:
    """The newest kernel an image carries (its /lib/modules entries), "" if none."""

    found: set[str] = set()
    for directory in MODULE_DIRS:
        try:
            found.update(name for name in os.listdir(directory) if kernel_version(name) != (0, 0))
        except OSError:
            continue
    return max(found, key=kernel_version) if found else ""


def read(desired: Desired, known_source: SourceFacts | None = None) -> NodeFacts:
    """Everything about this node that setup and audit decide from. `known_source` is this run's
    earlier reading of the source perf: unchanged (same stat identity), it is not hashed again.
    In an image (desired.image) the running kernel is not the nodes': nothing of it is read."""
    image = desired.image
    state, state_error = load_state(desired.state_path)
    state, record_untrusted = trust.sanitize(state) if state is not None else (None, ())
    release = image_kernel_release() if image else os.uname().release
    os_release = read_text("/etc/os-release") or ""
    value, where = persisted_paranoid()
    source = source_facts(desired, state, release, os_release, known_source)
    paranoid = None if image else read_int(sysctl.PROC_PATH)
    group = group_facts(desired.group)
    dirs = parent_chain(desired.dest)
    journal, journal_untrusted = trust.fstab_journal(desired.group, group.gid)
    return NodeFacts(
        kernel_release=release,
        cap_last_cap=(None if release else IMAGE_ASSUMED_CAP_LAST_CAP) if image
        else read_int("/proc/sys/kernel/cap_last_cap"),
        paranoid=paranoid,
        kptr_restrict=None if image else read_int("/proc/sys/kernel/kptr_restrict"),
        lockdown=None if image else lockdown_mode(),
        selinux=None if image else selinux_mode(),
        group=group,
        copy=copy_facts(desired.dest, state),
        dirs=dirs,
        # The build host's mount flags say nothing about how nodes mount the image.
        nosuid=None if image else nosuid_at(desired.dest_dir),
        fstype="" if image else fstype_at(os.path.realpath(desired.dest_dir), read_text(MOUNTINFO) or ""),
        source=source,
        profile=TextFacts(desired.profile_path, read_text(desired.profile_path)),
        sysctl_dropin=TextFacts(desired.sysctl_path, read_text(desired.sysctl_path)),
        persisted_paranoid=value,
        persisted_in=where,
        state=state,
        state_error=state_error,
        leftovers=leftovers([desired.dest_dir, os.path.dirname(desired.profile_path),
                             os.path.dirname(desired.sysctl_path), STATE_DIR]),
        dest_realpath=os.path.realpath(desired.dest),
        packaged_realpaths=packaged_realpaths(source),
        gid_owner=gid_owner(desired.gid),
        users={name: user_exists(name) for name in desired.members},
        os_release=os_release,
        perf_restrict_config=perf_restrict_config(release, paranoid),
        recorded_files=recorded_files(state),
        node_files=node_files_facts.read(desired.artifacts, desired.node_entry, desired.group),
        access=access_facts.read(desired, state, group.gid, tuple(d.path for d in dirs if d.kind == "dir")),
        reach=reach_facts.read_facts(desired.image),
        fstab_journal=journal,
        record_untrusted=record_untrusted + journal_untrusted,
        unsafe_files=trust.files_problems(installed_files(state)) + trust.foreign_entries(),
        unsafe_targets=unsafe_targets(desired),
        pending=intent_facts.read(desired.state_path, group.gid, group.members),
        other_groups=other_groups(desired.group),
        # An audit (nothing rendered) of a recorded shell also asks whether sudoers still parses.
        shell=shell_facts.read(desired.shell or (state is not None and state.shell),
                               check_sudoers=state is not None and state.shell and not desired.artifacts,
                               group=desired.group),
        jobs=job_facts.JobFacts() if image else job_facts.read(desired.group),
    )


def installed_files(state: State | None) -> tuple[str, ...]:
    """Every file perfgroup installed that root or members run or source: what the record lists,
    and the node entry point (shared by every group's record, so looked at by each)."""
    recorded = tuple(path for path, _ in state.files) if state is not None else ()
    try:
        engine = tuple(f"{ENGINE_DIR}/{name}" for name in sorted(os.listdir(ENGINE_DIR)) if name.endswith(".py"))
    except OSError:
        engine = ()
    try:  # noqa: SIM105 - contextlib stays off the audit path. Python loads bytecode from here.
        engine += tuple(f"{ENGINE_DIR}/__pycache__/{name}" for name in sorted(os.listdir(f"{ENGINE_DIR}/__pycache__")))
    except OSError:
        pass
    return tuple(dict.fromkeys((*recorded, LAUNCHER, *engine)))


def unsafe_targets(desired: Desired) -> tuple[tuple[str, str], ...]:
    """Where setup would write a file root or members then run or read, a directory above it that
    someone other than root could change (the record's own directory: access_plan). Asked only
    when setup or heal would write them: an audit reports the installed files (files_problems)."""
    if not desired.artifacts and not desired.node_entry:
        return ()
    paths = (desired.profile_path, desired.sysctl_path, DROPIN_PATH, *(a.path for a in desired.artifacts),
             *((LAUNCHER, f"{ENGINE_DIR}/__init__.py") if desired.node_entry else ()))
    found = ((path, trust.nearest_dir_problem(path)) for path in dict.fromkeys(paths))
    unsafe = tuple((path, problem) for path, problem in found if problem is not None)
    return unsafe + (trust.foreign_entries() if desired.node_entry else ())


def fingerprint(desired: Desired) -> tuple[object, ...]:
    """Cheap identity of everything another perfgroup run could have changed: compared after
    taking the node lock, so facts read before it are re-read only when someone else acted."""
    # GRANTS_DIR: a prolog's or epilog's record (the copy's ACL follows the live ones, plan_copy)
    paths = (desired.state_path, desired.dest, desired.profile_path, desired.sysctl_path, "/etc/group", "/etc/gshadow",
             GRANTS_DIR)
    return (*tuple(path_facts(path).key for path in paths), read_text(sysctl.PROC_PATH, 64))
