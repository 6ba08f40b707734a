"""What perf-shell (setup --shell) needs on a node, read (read layer): sudo and visudo, a capsh
that knows --iab, the drop-in's text and the helper's mode (whom they let in, for verify on a
node without a copy), and, for an audit of a node whose record has the shell, whether sudoers
parses. Rules in shell_rules.py, plan in shell_plan.py.

The one process any of this starts is `visudo -c` (read-only), and only for an audit of a node
whose setup record says perf-shell is installed: a drop-in that stopped parsing breaks sudo for
everyone, and only sudo's own parser can tell.
"""

from __future__ import annotations

import os

from .host import read_text
from .paths import VISUDO, shell_helper_path, sudoers_path
from .tuples import NamedTuple

SUDO = "/usr/bin/sudo"
CAPSH_PATHS = ("/usr/sbin/capsh", "/sbin/capsh", "/usr/bin/capsh", "/bin/capsh")


class ShellFacts(NamedTuple):
    asked: bool = False  # setup --shell, or an audit of a record with the shell: the rest was read
    sudo: bool = False  # /usr/bin/sudo and visudo exist
    capsh: str = ""  # capsh's path, "" if none
    capsh_iab: bool = False  # that capsh knows --iab (libcap 2.4x and newer)
    sudoers_error: str | None = None  # visudo -c's complaint (audit only); None: parses, or not checked
    dropin: str | None = None  # /etc/sudoers.d/perfgroup-GROUP's text; None: missing, or not root's to read
    helper_mode: int | None = None  # the helper's st_mode (lstat: type and set-id bits too); None: missing


def capsh_knows_iab(path: str) -> bool:
    """capsh's own usage text names the option: found in the binary without running it."""
    try:
        with open(path, "rb") as handle:
            return b"--iab" in handle.read(8 << 20)
    except OSError:
        return False


def sudoers_error() -> str | None:
    import subprocess  # only audits of a node with perf-shell start a process, and only this one

    try:
        result = subprocess.run([VISUDO, "-c"], capture_output=True, text=True, check=False,
                                stdin=subprocess.DEVNULL, timeout=60)
    except (OSError, subprocess.SubprocessError) as error:
        return f"cannot run {VISUDO} -c: {error}"
    if result.returncode == 0:
        return None
    lines = [line for line in (result.stderr + result.stdout).splitlines() if line.strip() and "parsed OK" not in line]
    return lines[0].strip() if lines else f"{VISUDO} -c exited {result.returncode}"


def mode_of(path: str) -> int | None:
    try:
        return os.lstat(path).st_mode
    except OSError:
        return None


def read(asked: bool, check_sudoers: bool = False, group: str = "") -> ShellFacts:
    if not asked:
        return ShellFacts()
    capsh = next((path for path in CAPSH_PATHS if os.access(path, os.X_OK)), "")
    sudo = os.access(SUDO, os.X_OK) and os.access(VISUDO, os.X_OK)
    return ShellFacts(asked=True, sudo=sudo, capsh=capsh, capsh_iab=bool(capsh) and capsh_knows_iab(capsh),
                      # Only root may read sudoers: a monitoring user's audit cannot tell, and says nothing.
                      sudoers_error=sudoers_error() if check_sudoers and sudo and os.geteuid() == 0 else None,
                      dropin=read_text(sudoers_path(group), 1 << 16) if group else None,
                      helper_mode=mode_of(shell_helper_path(group)) if group else None)
