"""Errors the engine raises, each mapped to a documented exit code by its callers."""

from __future__ import annotations


class PerfgroupError(Exception):
    """Base class: the message is a complete one-line explanation for an administrator."""


class RefusedError(PerfgroupError):
    """Bad input or an unsafe situation, detected before anything was changed (setup exit 2)."""


class ConvergeError(PerfgroupError):
    """A step that changes the host failed (setup exit 1); `step` names it."""

    def __init__(self, step: str, message: str) -> None:
        super().__init__(f"{step}: {message}")
        self.step = step


class LockedError(PerfgroupError):
    """Another perfgroup run holds the node lock."""
