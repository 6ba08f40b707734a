"""Errors the engine raises, and the one table that turns them into each command's exit code.

Commands never pick an exit number themselves: they raise (or return an outcome), and the CLI's
command class, the node entry point and the Ansible modules look the code up here. The `--help`
epilogs and the README's exit-code table are generated from the same table.
"""

from __future__ import annotations

import os
import sys

from .finding import CRITICAL, OK, UNKNOWN, WARNING

TYPE_CHECKING = False  # as typing.TYPE_CHECKING (mypy knows the name), without importing typing at run time
if TYPE_CHECKING:
    from typing import NoReturn, Sequence, Tuple

# Outcome names: what happened, independent of which number a command uses for it. An audit's
# outcome is its worst finding's severity (finding.py).
FAILED, REFUSED, BUSY = "failed", "refused", "busy"


class PerfgroupError(Exception):
    """Base class: the message is a complete one-line explanation for an administrator."""

    outcome = FAILED


class RefusedError(PerfgroupError):
    """Bad input or an unsafe situation, detected before anything was changed."""

    outcome = REFUSED


class ConvergeError(PerfgroupError):
    """A step that changes the host failed; `step` names it."""

    outcome = FAILED

    def __init__(self, step: str, message: str) -> None:
        super().__init__(f"{step}: {message}")
        self.step = step


class VerifyError(PerfgroupError):
    """Verification itself could not run safely (no unused identity, a process that outlived it)."""

    outcome = FAILED


def converge_failure(error: object, applied: Sequence[str]) -> str:
    """The one line a run that failed part-way ends with: the failed step ("step: why", a
    ConvergeError or its text) and what it applied before (the next run finishes the job; the
    intent it wrote makes sure of that)."""
    done = f" (applied before it: {'; '.join(applied)}; run it again to finish)" if applied else ""
    return f"could not converge at step {error}{done}"


class LockedError(PerfgroupError):
    """Another perfgroup run holds the node lock."""

    outcome = BUSY


# command -> ((outcome, exit code, meaning), ...). Order is the order --help prints.
if TYPE_CHECKING:
    ExitTable = Tuple[Tuple[str, int, str], ...]
EXIT_TABLES: dict[str, ExitTable] = {
    "setup": (
        (OK, 0, "converged and verified (a member profiled system-wide, a non-member was refused)"),
        (FAILED, 1, "could not converge or verify (the failed step and what was applied are named)"),
        (REFUSED, 2, "refused bad input or an unsafe situation; nothing was changed"),
        (BUSY, 3, "another perfgroup run holds the node lock"),
    ),
    "remove": (
        (OK, 0, "removed, or nothing left to remove"),
        (FAILED, 1, "a removal step failed (named); run remove again to finish"),
        (REFUSED, 2, "refused: no usable setup record while perfgroup files exist, or bad input; nothing changed"),
        (BUSY, 3, "another perfgroup run holds the node lock"),
    ),
    "members": (
        (OK, 0, "done (or nothing to change)"),
        (FAILED, 1, "gpasswd or the record update failed"),
        (REFUSED, 2, "refused: unknown user, directory group, bad name; nothing changed"),
        (BUSY, 3, "another perfgroup run holds the node lock"),
    ),
    "verify": (
        (OK, 0, "verified: the member profiled, the non-member was refused"),
        (FAILED, 1, "verification failed"),
        (REFUSED, 2, "refused (bad input, not root)"),
    ),
    "audit": (
        (OK, 0, "OK: every check passed"),
        (WARNING, 1, "WARNING: the worst finding is a warning"),
        (CRITICAL, 2, "CRITICAL: the worst finding is critical"),
        (UNKNOWN, 3, "UNKNOWN, including bad arguments (Nagios plugin convention)"),
    ),
    "heal": (
        (OK, 0, "converged from the setup record (or, with --if-source-changed, nothing to do)"),
        (FAILED, 1, "could not converge (the failed step is named); a boot unit stays failed, visibly"),
        (REFUSED, 2, "refused: no usable setup record, not root, bad input or an unsafe situation"),
        (BUSY, 3, "another perfgroup run holds the node lock"),
    ),
    "job-grant": (
        (OK, 0, "granted, or nothing to grant (not asked, not exclusive, a member: a syslog line says why)"),
        (FAILED, 1, "a grant was started and could not be completed (undone): Slurm drains the node, holds the job"),
        (REFUSED, 2, "refused: not run by slurmd's prolog, bad input or an unsafe copy; nothing changed"),
        (BUSY, 3, "another perfgroup run holds the node lock"),
    ),
    "job-revoke": (
        (OK, 0, "revoked what the job's grant record lists (or there was none)"),
        (FAILED, 1, "could not restore (named): the record stays, Slurm drains the node"),
        (REFUSED, 2, "bad input; nothing changed"),
        (BUSY, 3, "another perfgroup run holds the node lock"),
    ),
    "deploy": (
        (OK, 0, "every targeted host converged and verified (or, with --check, would converge)"),
        (FAILED, 1, "a host failed, was unreachable or did not verify"),
        (REFUSED, 2, "bad arguments, no matching host, inventory or ansible-playbook missing"),
    ),
}
# A refusal of a read command's arguments is UNKNOWN for monitoring, not CRITICAL.
_ALIASES: dict[str, dict[str, str]] = {"audit": {REFUSED: UNKNOWN, FAILED: UNKNOWN, BUSY: UNKNOWN}}


def exit_code(command: str, outcome: str) -> int:
    """The exit code `command` documents for `outcome`."""
    outcome = _ALIASES.get(command, {}).get(outcome, outcome)
    for name, code, _ in EXIT_TABLES[command]:
        if name == outcome:
            return code
    raise KeyError(f"{command} has no exit code for {outcome}")


def epilog(command: str) -> str:
    """The 'Exit codes' block of a command's --help (click's \\b keeps the lines as they are)."""
    lines = [f"  {code}  {meaning}" for _, code, meaning in EXIT_TABLES[command]]
    return "\b\nExit codes:\n" + "\n".join(lines) + "\n"


def exit_now(code: int) -> NoReturn:
    """Exit after a read-only audit without the interpreter's teardown (freeing every module and
    object: ~3 ms of a ~25 ms audit, which NHC and the timers run every few minutes). Nothing is
    left to clean up: output is flushed here, files were closed where written. A failed flush
    exits 120, as Python's own exit does."""
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except (OSError, ValueError):
        code = 120
    os._exit(code)
