"""trust.py's record rules as tables: which recorded tracefs modes and fstab edits setup could
have made (anything else would have remove write it back as root)."""

from __future__ import annotations

import pytest

from perfgroup.engine import fstab, trust

LINE = "tracefs /sys/kernel/tracing tracefs defaults 0 0"


@pytest.mark.parametrize(("entry", "trusted"), [
    (("/sys/kernel/tracing", 0o700, 0), True),
    (("/sys/kernel/debug/tracing", 0o755, 0), True),
    (("/sys/kernel/tracing", 0o777, 0), False),  # others could write: never put back
    (("/sys/kernel/tracing", 0o720, 0), False),
    (("/etc", 0o700, 0), False),  # not a tracefs mount point
    (("/sys/kernel/tracing", -1, 0), False),
    (("/sys/kernel/tracing", 0o700, -5), False),
])
def test_tracefs_before(entry: tuple[str, int, int], trusted: bool) -> None:
    assert trust.tracefs_before_trusted(entry) is trusted


@pytest.mark.parametrize(("edit", "gid", "trusted"), [
    ((LINE, fstab.edit_line(LINE, 995)), 995, True),
    ((LINE, fstab.edit_line(LINE, 996)), 995, False),  # another gid than the group's
    ((LINE, "/dev/evil / ext4 defaults 0 0"), 995, False),  # not setup's edit of the line
    (("proc /proc proc defaults 0 0", "proc /proc proc defaults 0 0"), 995, False),  # not a tracefs entry
    ((LINE, fstab.edit_line(LINE, 0)), 0, False),  # gid 0 is no group of ours
])
def test_fstab_edit(edit: tuple[str, str], gid: int, trusted: bool) -> None:
    assert trust.fstab_edit_trusted(edit, gid) is trusted


def test_sanitize_names_what_it_drops() -> None:
    from factsdata import state

    record = state()._replace(tracefs_before=(("/sys/kernel/tracing", 0o777, 0),), created_dirs=("/home/alice",),
                              fstab_edits=((LINE, "/dev/evil / ext4 defaults 0 0"),))
    clean, dropped = trust.sanitize(record)
    assert (clean.tracefs_before, clean.created_dirs, clean.fstab_edits) == ((), (), ())
    assert len(dropped) == 3 and all("not trusted" in line for line in dropped)
