"""Audit trail: every change setup or remove makes goes to syslog (authpriv), so an administrator
can answer "who gave perf to whom, and when" from the journal."""

from __future__ import annotations

import os
import pwd
import syslog

_opened = False


def actor() -> str:
    uid = os.getuid()
    try:
        name = pwd.getpwuid(uid).pw_name
    except KeyError:
        name = str(uid)
    sudo = os.environ.get("SUDO_USER")
    return f"{name} (sudo from {sudo})" if sudo else name


def _open() -> None:
    global _opened
    if not _opened:
        syslog.openlog("perfgroup", syslog.LOG_PID, syslog.LOG_AUTHPRIV)
        _opened = True


def change(step: str, target: str, old: str, new: str) -> None:
    _open()
    # One line, no newlines from the data: journal entries stay greppable.
    text = f"{step} {target}: {old or '-'} -> {new or '-'} by {actor()}".replace("\n", " ")
    syslog.syslog(syslog.LOG_NOTICE, text)


def note(text: str) -> None:
    """A line for the journal that is not a change (a job's request perfgroup did not grant)."""
    _open()
    syslog.syslog(syslog.LOG_NOTICE, text.replace("\n", " "))
