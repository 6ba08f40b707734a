"""Planning perf-shell (plan layer): refusals before anything changes, and the plan's notes.
The files themselves are rendered artifacts (perfgroup/artifacts.py) written by node_files_plan.
"""

from __future__ import annotations

from .capabilities import CAP_PERFMON, ROOT_EQUIVALENT_CAPS, ROOT_EQUIVALENT_FLAG, sort_caps
from .desired import Desired
from .errors import RefusedError
from .shell_facts import ShellFacts

# CAP_PERFMON (38) exists since 5.8; CAP_CHECKPOINT_RESTORE (40) came with 5.9, the first kernel
# where CAP_PERFMON alone watches other users' processes (before, perf also asks CAP_SYS_PTRACE).
FIRST_CAP_OF_5_9 = 40


def plan(shell: ShellFacts, desired: Desired, cap_last_cap: int | None) -> list[str]:
    """Notes for the plan, or RefusedError (one line) when perf-shell cannot work here."""
    if not desired.shell:
        return []
    if not shell.sudo:
        raise RefusedError("--shell: sudo is not installed here (no /usr/bin/sudo or /usr/sbin/visudo); "
                           "install sudo or drop --shell")
    if not shell.capsh:
        raise RefusedError("--shell: capsh is not installed here; install libcap2-bin (Debian) or libcap (RHEL)")
    if not shell.capsh_iab:
        raise RefusedError(f"--shell: {shell.capsh} has no --iab (libcap too old for ambient capabilities)")
    caps = sort_caps(desired.shell_extra_caps | {"cap_perfmon"})
    perfmon = CAP_PERFMON
    if cap_last_cap is not None and cap_last_cap < perfmon and "cap_sys_admin" not in desired.shell_extra_caps:
        raise RefusedError("--shell: this kernel has no CAP_PERFMON (before 5.8): sessions would need cap_sys_admin, "
                           f"which makes every member root (--shell-caps cap_sys_admin {ROOT_EQUIVALENT_FLAG})")
    notes = [f"perf-shell: members' sessions hold {','.join(caps)} ambient: they profile every process and the "
             "kernel, for the whole session and everything started from it"]
    if cap_last_cap is not None and perfmon <= cap_last_cap < FIRST_CAP_OF_5_9 \
            and "cap_sys_ptrace" not in desired.shell_extra_caps:
        notes.append("perf-shell: this kernel is older than 5.9: watching other users' processes also needs "
                     f"cap_sys_ptrace (--shell-caps cap_sys_ptrace {ROOT_EQUIVALENT_FLAG}: root-equivalent)")
    dangerous = sort_caps(desired.shell_extra_caps & ROOT_EQUIVALENT_CAPS)
    if dangerous:
        notes.append(f"MEMBERS CAN BECOME ROOT: perf-shell sessions hold {','.join(dangerous)} "
                     f"(allowed with {ROOT_EQUIVALENT_FLAG})")
    return notes
