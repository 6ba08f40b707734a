"""perf-shell judged (rules layer): audit findings from shell_facts. The drop-in's and the
helper's content (sudoers.*, shell.* missing/modified, against the record's sha256) and their
ownership (file.unsafe, trust.py) are judged with every recorded file in findings.py.
"""

from __future__ import annotations

from .finding import CRITICAL, OK, Finding
from .paths import sudoers_path
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
