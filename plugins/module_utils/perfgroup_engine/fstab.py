"""tracefs mounted from /etc/fstab: the group's access at boot lives in that entry's options.

Where fstab mounts tracefs, systemd's fstab generator makes sys-kernel-tracing.mount from the
entry (overriding the distribution's unit), and a non-systemd boot runs `mount -a`: a drop-in is
not what the node uses, the entry is. Setup edits exactly that entry's options field (its other
options kept, gid=/mode= replaced by the group's gid and mode=0750) and records the line it found
and the line it wrote, so `remove` puts the original line back byte for byte. Every other byte of
the file (comments, spacing, other entries) is kept.

Refused (nothing changed): two tracefs entries for one mount point (which one the node uses
depends on the boot path; perfgroup will not guess). Not touched: debugfs entries. perf looks in
/sys/kernel/tracing first; /sys/kernel/debug/tracing is the same tracefs superblock (the kernel
automounts it there), and debugfs itself stays 0700 root: opening debugfs would open far more
than tracepoints.

Pure functions on text; standard library only (host.read_text(path, exact=True) reads it).
"""

from __future__ import annotations

from .paths import FSTAB
from .tuples import NamedTuple

TYPE_CHECKING = False  # as typing.TYPE_CHECKING, without importing typing on the audit path
if TYPE_CHECKING:
    from typing import Tuple

    # (line setup found, line setup wrote): what remove puts back.
    Edit = Tuple[str, str]

# tracefs root mode for the group: group read and search, nothing for others (never 0755).
TRACEFS_MODE = 0o750
# How systemd's sys-kernel-tracing.mount leaves tracefs: (mode, gid) = 0700 root.
SYSTEMD_TRACEFS = (0o700, 0)


class Entry(NamedTuple):
    line: str  # without its line ending
    point: str
    options: str  # "" when the entry has no options field


class _Field(NamedTuple):
    """One whitespace-separated field of an fstab line and where it is (as a regex match would)."""

    text: str
    begin: int
    finish: int

    def group(self) -> str:
        return self.text

    def start(self) -> int:
        return self.begin

    def end(self) -> int:
        return self.finish


def _fields(line: str) -> list[_Field]:
    """The fields before any comment, as re.finditer(r"\\S+") finds them, without re (audit path)."""
    body = line.split("#", 1)[0]
    fields, index = [], 0
    while index < len(body):
        if body[index].isspace():
            index += 1
            continue
        stop = index
        while stop < len(body) and not body[stop].isspace():
            stop += 1
        fields.append(_Field(body[index:stop], index, stop))
        index = stop
    return fields


def entry(line: str) -> Entry | None:
    """The tracefs entry on this line, or None (a comment, another filesystem, a short line)."""
    fields = _fields(line)
    if len(fields) < 3 or fields[2].group() != "tracefs":
        return None
    return Entry(line, fields[1].group().replace("\\040", " "), fields[3].group() if len(fields) > 3 else "")


def tracefs_lines(text: str) -> tuple[str, ...]:
    """The uncommented lines of fstab text that mount tracefs, as they are."""
    return tuple(line for line in text.splitlines() if entry(line) is not None)


def _option(options: str, name: str) -> str | None:
    found = [o.split("=", 1)[1] for o in options.split(",") if o.startswith(name + "=")]
    return found[-1] if found else None  # mount(8): the last one wins


def access_before(options: str) -> tuple[int, int | None, bool]:
    """(gid, mode or None, a uid= given) the options give tracefs' root: what remove restores."""
    gid, mode = _option(options, "gid"), _option(options, "mode")
    try:
        return int(gid or "0"), int(mode, 8) if mode is not None else None, _option(options, "uid") not in (None, "0")
    except ValueError:
        return -1, None, True


def carries(options: str, gid: int) -> bool:
    """The options already give the group tracefs: gid=<gid>, mode 0750."""
    mode = _option(options, "mode")
    try:
        return _option(options, "gid") == str(gid) and mode is not None and int(mode, 8) == TRACEFS_MODE
    except ValueError:
        return False


def with_group(options: str, gid: int) -> str:
    kept = [o for o in options.split(",") if o and not o.startswith(("gid=", "mode="))]
    return ",".join([*kept, f"gid={gid}", f"mode={TRACEFS_MODE:04o}"])


def edit_line(line: str, gid: int) -> str:
    """The line with only its options field changed (spacing and the other fields kept)."""
    fields = _fields(line)
    if len(fields) > 3:
        span = fields[3]
        return line[: span.start()] + with_group(span.group(), gid) + line[span.end():]
    end = fields[2].end()  # no options field: the kernel's defaults; add one after the type
    return line[:end] + " " + with_group("", gid) + line[end:]


def edited(line: str, gid: int) -> str | None:
    """The line setup writes, or None when it already gives the group tracefs."""
    found = entry(line)
    return None if found is not None and carries(found.options, gid) else edit_line(line, gid)


def replace_line(text: str, old: str, new: str) -> str | None:
    """text with the one line equal to old replaced by new (its line ending kept); None when old
    is not there exactly once (fstab changed since it was read)."""
    lines = text.splitlines(keepends=True)
    hits = [i for i, line in enumerate(lines) if line.rstrip("\r\n") == old]
    if len(hits) != 1:
        return None
    line = lines[hits[0]]
    lines[hits[0]] = new + line[len(line.rstrip("\r\n")):]
    return "".join(lines)


def refusal(lines: tuple[str, ...]) -> str | None:
    """Why perfgroup cannot safely edit these tracefs entries, or None."""
    points: dict[str, int] = {}
    for line in lines:
        found = entry(line)
        if found is not None:
            points[found.point] = points.get(found.point, 0) + 1
    doubled = sorted(point for point, count in points.items() if count > 1)
    if doubled:
        return (f"{FSTAB} has several tracefs entries for {', '.join(doubled)}: perfgroup will not guess which one "
                "the node uses; keep one (or set up with --no-tracefs)")
    return None


def missing(lines: tuple[str, ...], gid: int | None) -> tuple[Entry, ...]:
    """Entries that do not give the group tracefs (gid None: the group does not exist yet: all)."""
    found = (entry(line) for line in lines)
    return tuple(e for e in found if e is not None and (gid is None or not carries(e.options, gid)))


def _point(line: str) -> str | None:
    found = entry(line)
    return found.point if found is not None else None


def recorded(previous: tuple[Edit, ...], done: tuple[Edit, ...]) -> tuple[Edit, ...]:
    """The record's edits after this run, one per mount point: the line setup first found there is
    kept across runs (a later run that rewrites the entry, because the gid changed or someone
    edited it, still restores the line as it was before perfgroup)."""
    out = {_point(written): (before, written) for before, written in previous}
    for found, written in done:
        point = _point(found)
        out[point] = (out[point][0] if point in out else found, written)
    return tuple(sorted(out.values()))


def restores(edits: tuple[Edit, ...], lines: tuple[str, ...]) -> tuple[Edit, ...]:
    """(line now, line to put back) for each recorded edit whose line is still as setup wrote it.
    A line someone changed since is theirs now: left alone."""
    return tuple((written, before) for before, written in edits if written != before and lines.count(written) == 1)


# -- the journal: an edit is written down before fstab changes --------------------------------
# A run killed after fstab was renamed into place but before the setup record was written would
# otherwise leave an edited line nobody remembers: the next setup sees nothing to do and records
# nothing, so remove could not put the line back. The journal holds (line before, line written)
# until a record carries them; setup merges it into the record and then deletes it.


def journal_text(edits: tuple[Edit, ...]) -> str:
    """Two lines per edit ("- " the line found, "+ " the line written): fstab lines hold no newline."""
    return "".join(f"- {before}\n+ {written}\n" for before, written in edits)


def parse_journal(text: str) -> tuple[Edit, ...]:
    lines = text.split("\n")
    pairs = zip(lines[0::2], lines[1::2])
    return tuple((before[2:], written[2:]) for before, written in pairs
                 if before.startswith("- ") and written.startswith("+ "))
