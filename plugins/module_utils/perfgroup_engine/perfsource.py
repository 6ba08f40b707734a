"""Finding the real perf executable to copy, and deciding whether a file is one.

Distributions ship `/usr/bin/perf` either as the ELF itself or as a shell wrapper that execs a
per-kernel ELF (Ubuntu: /usr/lib/linux-tools/<release>/perf; older Debian: perf_<version>).
Capabilities on a script do nothing, so wrappers are followed to the ELF they run.
"""

from __future__ import annotations

import os
import stat

from .errors import RefusedError
from .tuples import NamedTuple

TYPE_CHECKING = False  # as typing.TYPE_CHECKING (mypy knows the name), without importing typing at run time
if TYPE_CHECKING:
    from typing import Callable

ELF_MAGIC = b"\x7fELF"
# perf's own version banner format string: present in every perf build, absent from other ELFs.
PERF_MARKER = b"perf version %s"
SYSTEM_DIRS = ("/usr/bin", "/usr/sbin", "/bin", "/sbin")
MAX_WRAPPER_DEPTH = 3
MAX_SCRIPT_BYTES = 64 * 1024

# Package that provides perf, by /etc/os-release ID or ID_LIKE.
INSTALL_HINTS: dict[str, tuple[str, ...]] = {
    "debian": ("apt-get", "install", "-y", "linux-perf"),
    # Ubuntu's /usr/bin/perf is a wrapper that runs the tools of the *running* kernel.
    "ubuntu": ("apt-get", "install", "-y", "linux-tools-common", "linux-tools-{release}"),
    "fedora": ("dnf", "install", "-y", "perf"),
    "rhel": ("dnf", "install", "-y", "perf"),
    "centos": ("dnf", "install", "-y", "perf"),
    "rocky": ("dnf", "install", "-y", "perf"),
    "almalinux": ("dnf", "install", "-y", "perf"),
    "suse": ("zypper", "--non-interactive", "install", "perf"),
    "opensuse": ("zypper", "--non-interactive", "install", "perf"),
    "sles": ("zypper", "--non-interactive", "install", "perf"),
    "arch": ("pacman", "-S", "--noconfirm", "perf"),
    "alpine": ("apk", "add", "perf"),
}


class PerfNotInstalled(RefusedError):
    """No perf on the node; carries the command that would install it."""

    def __init__(self, message: str, install_command: tuple[str, ...] | None) -> None:
        super().__init__(message)
        self.install_command = install_command


class ResolvedSource(NamedTuple):
    requested: str  # what was asked for or found on PATH
    path: str  # the ELF that will be copied
    via_wrapper: bool


def os_release_values(os_release_text: str) -> dict[str, str]:
    values: dict[str, str] = {}
    for line in os_release_text.splitlines():
        key, sep, value = line.partition("=")
        if sep:
            values[key.strip()] = value.strip().strip('"').strip("'")
    return values


def os_ids(os_release_text: str) -> list[str]:
    """ID then ID_LIKE entries from /etc/os-release text."""
    values = os_release_values(os_release_text)
    return [values.get("ID", ""), *values.get("ID_LIKE", "").split()]


def os_label(os_release_text: str) -> str:
    """e.g. `debian-12`: nodes with the same label should carry the same perf build."""
    values = os_release_values(os_release_text)
    return f"{values.get('ID', '')}-{values.get('VERSION_ID', '')}"


def install_command(os_release_text: str, kernel_release: str = "") -> tuple[str, ...] | None:
    """The command that installs perf for this distribution (and, on Ubuntu, this kernel)."""
    for distro in os_ids(os_release_text):
        if distro in INSTALL_HINTS:
            return tuple(word.format(release=kernel_release) for word in INSTALL_HINTS[distro])
    return None


def read_head(path: str, size: int) -> bytes:
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        return os.read(fd, size)
    finally:
        os.close(fd)


def is_elf(path: str) -> bool | None:
    """True or False; None when this user may not read the file (a non-root audit)."""
    try:
        return read_head(path, 4) == ELF_MAGIC
    except PermissionError:
        return None
    except OSError:
        return False


def is_perf_elf(path: str) -> bool:
    """ELF and carries perf's version banner (so /bin/sh can never be mistaken for perf)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        return False
    try:
        with os.fdopen(fd, "rb", closefd=False) as handle:
            if handle.read(4) != ELF_MAGIC:
                return False
            tail = b""
            for chunk in iter(lambda: handle.read(1 << 20), b""):
                if PERF_MARKER in tail + chunk:
                    return True
                tail = chunk[-len(PERF_MARKER):]
        return False
    finally:
        os.close(fd)


_EXEC_PATTERN = r"""\bexec\s+(?:-a\s+\S+\s+)?("[^"]+"|'[^']+'|\S+)"""
_VAR_PATTERN = r"\$\([^)]*\)|`[^`]*`|\$\{[^}]*\}|\$\w+"


def wrapper_targets(script: str, kernel_release: str) -> list[str]:
    """Candidate paths a wrapper script execs, most likely first (pure)."""
    import glob  # only wrappers need it (and re): keep the audit path light
    import re  # wrappers only (as glob)

    found: list[str] = []
    for match in re.finditer(_EXEC_PATTERN, script):
        target = match.group(1).strip("\"'")
        if "perf" not in target:
            continue
        pattern = re.sub(_VAR_PATTERN, "*", target)
        heads = [pattern] if pattern.startswith("/") else [f"{d}/{pattern}" for d in SYSTEM_DIRS]
        for head in heads:
            found.extend(sorted(glob.glob(head)))
    major_minor = ".".join(kernel_release.split(".")[:2])
    return sorted(
        dict.fromkeys(found),
        key=lambda p: (kernel_release not in p, major_minor not in p, [-ord(c) for c in p]),
    )


def _describe_kind(mode: int) -> str:
    if stat.S_ISDIR(mode):
        return "a directory"
    if stat.S_ISLNK(mode):
        return "a symlink"
    return "not a regular file"


def check_source_file(path: str) -> os.stat_result:
    """Refuse a source that a non-root user could have planted or can change."""
    try:
        info = os.stat(path)
    except OSError as error:
        raise RefusedError(f"source perf {path}: {error.strerror}") from None
    if not stat.S_ISREG(info.st_mode):
        raise RefusedError(f"source perf {path} is {_describe_kind(info.st_mode)}")
    if info.st_mode & (stat.S_ISUID | stat.S_ISGID):
        raise RefusedError(f"source perf {path} is setuid/setgid; refusing to copy a privileged file")
    if info.st_uid != 0 or info.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        raise RefusedError(
            f"source perf {path} can be written by a non-root user (owner uid {info.st_uid}, "
            f"mode {stat.S_IMODE(info.st_mode):04o}); its content cannot be trusted"
        )
    return info


if TYPE_CHECKING:
    Trust = Callable[[str, os.stat_result], bool]
    PathProblem = Callable[[str, str], "str | None"]


def resolve(requested: str, kernel_release: str, depth: int = 0, trusted: Trust | None = None, *,
            path_problem: PathProblem) -> ResolvedSource:
    """Follow symlinks and wrapper scripts from `requested` to a perf ELF, or refuse.

    `path_problem(path, kind)` (trust.path_problem) says why root may not trust a path: the file,
    every directory above it and every symlink on the way must be root's alone, or whoever may
    change one could swap in their own ELF (security review finding 4).
    `trusted(path, stat)` may vouch for a file already proven to be perf (same inode, size and
    times as when setup recorded it), which spares reading the whole binary again."""
    real = os.path.realpath(requested)
    try:
        os.stat(real)  # realpath(strict=True) is 3.10+; a loop or a dangling link fails here
    except OSError as error:
        raise RefusedError(f"source perf {requested}: {error.strerror or error}") from None
    info = check_source_file(real)
    for path in dict.fromkeys((requested, real)):  # the path as given (its links too) and where it leads
        problem = path_problem(path, "file")
        if problem is not None:
            raise RefusedError(f"source perf {requested}: {problem}; a non-root user could swap in another executable")
    head = read_head(real, MAX_SCRIPT_BYTES)
    if head.startswith(ELF_MAGIC):
        if not (trusted is not None and trusted(real, info)) and not is_perf_elf(real):
            raise RefusedError(f"source perf {requested} is an ELF but not perf (no perf version banner)")
        return ResolvedSource(requested=requested, path=real, via_wrapper=depth > 0)
    if head.startswith(b"#!") and depth < MAX_WRAPPER_DEPTH:
        script = head.decode("utf-8", "replace")
        for candidate in wrapper_targets(script, kernel_release):
            if os.path.realpath(candidate) == real:
                continue
            try:
                found = resolve(candidate, kernel_release, depth + 1, trusted, path_problem=path_problem)
            except RefusedError:
                continue
            return ResolvedSource(requested=requested, path=found.path, via_wrapper=True)
        raise RefusedError(
            f"source perf {requested} is a script and no perf ELF it runs was found "
            f"(file capabilities on a script do nothing)"
        )
    raise RefusedError(f"source perf {requested} is neither an ELF executable nor a wrapper script")


def find_system_perf(kernel_release: str, os_release_text: str, trusted: Trust | None = None, *,
                     path_problem: PathProblem) -> ResolvedSource:
    """The distribution's perf, or PerfNotInstalled naming the package for this distribution."""
    for directory in SYSTEM_DIRS:
        candidate = f"{directory}/perf"
        if os.path.lexists(candidate):
            return resolve(candidate, kernel_release, trusted=trusted, path_problem=path_problem)
    command = install_command(os_release_text, kernel_release)
    hint = f" (install it: {' '.join(command)}, or pass --install-perf)" if command else ""
    raise PerfNotInstalled(f"no perf executable found in {', '.join(SYSTEM_DIRS)}{hint}", command)
