"""perf-shell judged (rules layer): audit findings from shell_facts, and whom the drop-in and the
helper let in (verify on a node without a copy: findings.shell_only_problems). The drop-in's and
the helper's content (sudoers.*, shell.* missing/modified, against the record's sha256) and their
ownership (file.unsafe, trust.py) are judged with every recorded file in findings.py.
"""

from __future__ import annotations

import stat

from .finding import CRITICAL, OK, Finding
from .paths import shell_helper_path, sudoers_path
from .shell_facts import ShellFacts

TYPE_CHECKING = False  # as typing.TYPE_CHECKING (mypy knows the name), without importing typing at run time
if TYPE_CHECKING:
    from typing import Iterator


def findings(shell: ShellFacts, group: str) -> Iterator[Finding]:
    if not shell.asked:
        return
    fix = f"perfgroup setup --group {group} --shell"
    if not shell.sudo:
        yield Finding("shell.no_sudo", CRITICAL, "perf-shell is installed but sudo (or visudo) is missing: "
                      "members cannot start it", "install sudo")
    if not shell.capsh:
        yield Finding("shell.no_capsh", CRITICAL, "perf-shell is installed but capsh is missing: members cannot "
                      "start it", "install libcap2-bin (Debian) or libcap (RHEL)")
    elif not shell.capsh_iab:
        yield Finding("shell.capsh_no_iab", CRITICAL, f"{shell.capsh} has no --iab (libcap older than 2.4x): "
                      "perf-shell cannot give sessions an ambient cap_perfmon", "upgrade libcap")
    if shell.sudoers_error is not None:
        yield Finding("sudoers.invalid", CRITICAL, f"sudoers does not parse ({shell.sudoers_error}): sudo refuses "
                      "everyone, perf-shell included", f"visudo -c; fix the file it names, then {fix}")
    if shell.sudo and shell.capsh_iab and shell.sudoers_error is None:
        yield Finding("shell.ok", OK, f"perf-shell: sudo, {shell.capsh} with --iab, sudoers parses "
                      f"({sudoers_path(group)})")


def dropin_rules(text: str) -> list[str]:
    """The drop-in's sudoers entries, one per logical line (a trailing backslash continues it),
    whitespace collapsed: every line but blanks and comments. `#include` and `#includedir` are
    sudo's directives, not comments (they read another file), so they count."""
    entries, pending = [], ""
    for raw in text.splitlines():
        line = pending + raw
        if line.endswith("\\"):
            pending = line[:-1] + " "
            continue
        pending = ""
        words = line.split()
        if words and (not words[0].startswith("#") or words[0] in ("#include", "#includedir")):
            entries.append(" ".join(words))
    if pending.split():
        entries.append(" ".join(pending.split()))
    return entries


def dropin_grants(group: str) -> tuple[str, str]:
    """What setup's drop-in (templates/sudoers.j2) holds: env_reset for the helper, and the helper
    as root for the group's members, nothing else (a unit test renders the template)."""
    helper = shell_helper_path(group)
    return (f"Defaults!{helper} env_reset", f"%{group} ALL=(root) NOPASSWD: {helper}")


def dropin_problem(text: str | None, group: str) -> str | None:
    """Why the drop-in may let someone outside the group run something as root, or None when it
    holds no entry but setup's own (a missing drop-in lets no one in: members' problem, not this)."""
    if text is None:
        return None
    allowed = dropin_grants(group)
    extra = [entry for entry in dropin_rules(text) if entry not in allowed]
    if not extra:
        return None
    more = f" (and {len(extra) - 1} more)" if len(extra) > 1 else ""
    return f"{sudoers_path(group)} holds more than the rule for %{group}: {extra[0][:120]}{more}"


def helper_problem(mode: int | None, group: str) -> str | None:
    """Why the helper itself may give its caller more than the caller has (None: missing, or a
    plain file without set-id bits). Its owner and who may write it are trust.py's file.unsafe."""
    if mode is None:
        return None
    helper = shell_helper_path(group)
    if not stat.S_ISREG(mode):
        return f"{helper} is not a regular file"
    if mode & (stat.S_ISUID | stat.S_ISGID):
        return f"{helper} is set-user-ID or set-group-ID (mode {stat.S_IMODE(mode):04o})"
    return None
