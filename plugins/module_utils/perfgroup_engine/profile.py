"""The /etc/profile.d snippet that puts the privileged perf first on PATH for members only. Pure."""

from __future__ import annotations

import re
import shlex

_SAFE = re.compile(r"[A-Za-z0-9_./-]+\Z")


def _quote(text: str) -> str:
    if _SAFE.match(text):
        return text
    return shlex.quote(text)


def render(group: str, directory: str) -> str:
    # `id -Gn` asks NSS, so directory (LDAP/SSSD) memberships count too; the case test keeps the
    # snippet POSIX sh, and the PATH check keeps re-sourcing idempotent.
    quoted_dir = _quote(directory)
    return (
        f"# Managed by perfgroup for group {group}: do not edit, run `perfgroup setup` instead.\n"
        f"# Members of {group} get the privileged perf ({directory}/perf) first on PATH;\n"
        "# everyone else keeps the distribution's perf.\n"
        f'case " $(id -Gn 2>/dev/null) " in\n'
        f'    *" {group} "*)\n'
        f'        case ":$PATH:" in\n'
        f"            *:{quoted_dir}:*) ;;\n"
        f'            *) PATH={quoted_dir}:"$PATH"; export PATH ;;\n'
        "        esac\n"
        "        ;;\n"
        "esac\n"
    )
