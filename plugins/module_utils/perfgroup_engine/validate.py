"""Rules for administrator input: names, paths and capability lists. Pure functions."""

from __future__ import annotations

import os

from .capabilities import (
    PROFILING_CAPS,
    ROOT_EQUIVALENT_CAPS,
    ROOT_EQUIVALENT_FLAG,
    CapabilityError,
    parse_cap_list,
    root_equivalent_refusal,
    sort_caps,
    ungranted_root_equivalent,
)
from .desired import Desired
from .errors import RefusedError
from .options import BY_NAME, JOB_FEATURE_CHARS, JOB_FEATURE_MAX, JOB_PARANOID_VALUES, OPTIONS
from .paths import default_dest

TYPE_CHECKING = False  # as typing.TYPE_CHECKING (mypy knows the name), without importing typing at run time
if TYPE_CHECKING:
    from typing import Any, Callable

# shadow-utils accepts at most 32 characters; the portable set keeps names safe in
# /etc/group, sudoers, shell snippets and file names alike.
# [a-z_][a-z0-9_-]{0,31}, written out: every audit checks the group name, and re (with enum) is
# the biggest import on the node audit path.
NAME_FIRST = frozenset("abcdefghijklmnopqrstuvwxyz_")
NAME_REST = NAME_FIRST | frozenset("0123456789-")


def name_ok(value: str) -> bool:
    return 0 < len(value) <= 32 and value[0] in NAME_FIRST and all(c in NAME_REST for c in value[1:])


# Groups whose members already hold root-equivalent or broad system powers: turning one of them
# into the perf group silently widens who can profile the kernel.
PRIVILEGED_GROUPS: frozenset[str] = frozenset(
    {
        "root", "wheel", "sudo", "admin", "adm", "shadow", "disk", "docker", "lxd", "libvirt",
        "kvm", "staff", "systemd-journal", "video", "kmem", "tty", "lp", "dialout", "audio",
        "operator", "sys", "bin", "daemon", "users", "nogroup", "nobody", "utmp", "src",
    }
)


def _describe(value: str) -> str:
    return repr(value) if value else "an empty name"


def check_name(kind: str, value: str) -> str:
    """Return value if it is a safe user or group name, else raise RefusedError."""
    if not value:
        raise RefusedError(f"{kind} name is empty")
    if len(value) > 32:
        raise RefusedError(f"{kind} name {value[:40]!r}... is longer than 32 characters")
    if value.startswith("-"):
        raise RefusedError(f"{kind} name {value!r} starts with '-' (it would be read as an option)")
    if not name_ok(value):
        raise RefusedError(
            f"{kind} name {_describe(value)} has characters outside a-z, 0-9, '_' and '-' "
            "(or does not start with a letter or '_')"
        )
    return value


def check_group(name: str, allow_privileged: bool) -> str:
    check_name("group", name)
    if name in PRIVILEGED_GROUPS and not allow_privileged:
        raise RefusedError(
            f"group {name!r} already grants system powers; refusing to make it the perf group "
            "(use --allow-privileged-group, role: perf_users_allow_privileged_group, to give every member of it "
            "kernel profiling rights)"
        )
    return name


def check_member(name: str) -> str:
    check_name("member", name)
    if name == "root":
        raise RefusedError("member 'root' is pointless: root can already profile everything")
    return name


def check_gid(gid: int | None) -> int | None:
    if gid is not None and not 1 <= gid < 2**32 - 1:
        raise RefusedError(f"gid {gid} is out of range (1 to 4294967294)")
    return gid


# Characters that change what a PATH entry or the shell snippet means: ':' splits PATH, the rest
# are quoting, expansion or line structure in sh/csh.
UNSAFE_PATH_CHARS = frozenset(':\n\r\t\0$`"\'\\!*?[]{}()<>|;&~# ')


def check_dest_path(path: str) -> str:
    """--dest ends up in members' PATH and in shell snippets: only plain path characters."""
    check_abs_path("--dest", path)
    bad = sorted(set(path) & UNSAFE_PATH_CHARS)
    if bad:
        raise RefusedError(f"--dest {path!r} contains {''.join(bad)!r}, which would change the meaning of PATH "
                           "or of the shell snippet; use letters, digits, '/', '.', '_', '-', '+', '@', ',', '='")
    return path


def check_abs_path(kind: str, path: str) -> str:
    if not path or not os.path.isabs(path):
        raise RefusedError(f"{kind} {path!r} must be an absolute path")
    if "\n" in path or "\0" in path:
        raise RefusedError(f"{kind} {path!r} contains a newline or NUL")
    if os.path.normpath(path) != path:
        raise RefusedError(f"{kind} {path!r} is not normalised (use {os.path.normpath(path)!r})")
    return path


def check_caps(text: str, allow_root_equivalent: bool) -> frozenset[str]:
    """Parse an explicit --caps list. Members run their own code inside perf (perf script), so any
    capability on the copy is theirs: beyond profiling needs the loud opt-in."""
    try:
        caps = parse_cap_list(text)
    except CapabilityError as error:
        raise RefusedError(f"--caps: {error}") from None
    if allow_root_equivalent:
        return caps
    dangerous = ungranted_root_equivalent(caps, frozenset())
    if dangerous:
        raise RefusedError(root_equivalent_refusal("--caps", dangerous))
    beyond = sort_caps(caps - PROFILING_CAPS)
    if beyond:
        raise RefusedError(
            f"--caps: {','.join(beyond)} is not needed for profiling and every member could use it for "
            f"anything (perf script runs their code); refusing ({ROOT_EQUIVALENT_FLAG} overrides)"
        )
    return caps


def _feature_name(name: str) -> bool:
    # no re: validate is on the node's audit path, which imports no more than it needs
    return len(name) <= JOB_FEATURE_MAX and name[0] not in ".-" and set(name) <= JOB_FEATURE_CHARS


def check_job_options(job_feature: str | None, job_paranoid: int | None) -> None:
    """--job-feature and --job-paranoid (role: perf_users_job_*), which choose the Slurm scripts
    rather than what the node looks like, so are not desired_from_input's: the CLI and the module
    call this before rendering or using them."""
    if job_feature and not _feature_name(job_feature):
        raise RefusedError(f"--job-feature {job_feature!r} is not a Slurm feature name the prolog can match: a letter, "
                           "digit or _, then also . or -, at most 64 characters")
    if job_paranoid is None:
        return
    if isinstance(job_paranoid, bool) or job_paranoid not in JOB_PARANOID_VALUES:
        allowed = " or ".join(str(value) for value in JOB_PARANOID_VALUES)
        raise RefusedError(f"--job-paranoid must be {allowed}, not {job_paranoid!r}: the perf_event_paranoid an "
                           f"exclusive job gets (role: {BY_NAME['job_paranoid'].role_var})")
    if not job_feature:
        raise RefusedError("--job-paranoid goes with --job-feature")


def desired_from_input(**given: Any) -> Desired:
    """Every check of what an administrator typed, in one place for the CLI, the Ansible module
    and heal (which types what the record remembers); nothing here looks at the host, so a bad
    input is refused before anything else. The keywords are the options table's desired rows."""
    rows = [option for option in OPTIONS if option.desired]
    unknown = set(given) - {option.name for option in rows}
    if unknown:
        raise TypeError(f"not desired options: {', '.join(sorted(unknown))}")
    values = {option.name: given.get(option.name, option.default) for option in rows}
    fields: dict[str, Any] = {}
    for name, value in values.items():
        fields.update(_AS_DESIRED[name](value, values) if name in _AS_DESIRED else {name: value})
    return check_desired(Desired(**fields, node_entry=True))


def _caps_fields(text: str | None, values: dict[str, Any]) -> dict[str, Any]:
    auto = text is not None and text.strip().lower() == "auto"
    override = check_caps(text, bool(values["allow_root_equivalent"])) if text is not None and not auto else None
    return {"caps_override": override, "caps_auto": auto}


def check_shell_caps(text: str | None, values: dict[str, Any]) -> dict[str, Any]:
    """--shell-caps: what perf-shell sessions hold besides cap_perfmon. Everything in the session
    runs with them (it is the member's own shell), so the copy's rules apply, under its own name."""
    if text is None or not text.strip():
        return {"shell_extra_caps": frozenset()}
    if not values.get("shell"):
        raise RefusedError("--shell-caps is for perf-shell sessions: give --shell too")
    try:
        caps = parse_cap_list(text) - {"cap_perfmon"}
    except CapabilityError as error:
        raise RefusedError(f"--shell-caps: {error}") from None
    dangerous = [] if values["allow_root_equivalent"] else ungranted_root_equivalent(caps, frozenset())
    if dangerous:
        raise RefusedError(root_equivalent_refusal("--shell-caps", dangerous))
    beyond = sort_caps(caps - PROFILING_CAPS - ROOT_EQUIVALENT_CAPS)
    if beyond and not values["allow_root_equivalent"]:
        raise RefusedError(f"--shell-caps: {','.join(beyond)} is not needed for profiling and every process of "
                           f"the session would hold it; refusing ({ROOT_EQUIVALENT_FLAG} overrides)")
    return {"shell_extra_caps": caps}


# Options whose Desired fields are not the typed value as it is.
_AS_DESIRED: dict[str, Callable[[Any, dict[str, Any]], dict[str, Any]]] = {
    "members": lambda value, _: {"members": tuple(value or ())},
    "dest": lambda value, values: {"dest": value or default_dest(values["group"])},
    "source": lambda value, _: {"source": check_abs_path("--perf", value) if value is not None else None},
    "caps": _caps_fields,
    "shell_caps": check_shell_caps,
}


def check_desired(desired: Desired) -> Desired:
    """The input checks on a Desired however it was made (typed, from a record, from an image
    request): plan.preflight runs them again, so no path past desired_from_input skips them."""
    check_group(desired.group, desired.allow_privileged_group)
    check_gid(desired.gid)
    for member in desired.members:
        check_member(member)
    if desired.members_exclusive and not desired.members:
        raise RefusedError("--members-exclusive without --member would remove every member of the group; "
                           "name the members (to empty the group: perfgroup members remove USER...)")
    check_dest_path(desired.dest)
    return desired
