"""tracefs mounted from /etc/fstab: the entry's options carry the group's gid and mode 0750, and
remove puts the line back byte for byte. Tables of fstab text in -> text out."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from factsdata import converged, desired, replace, state

from perfgroup.engine import actions as act
from perfgroup.engine import apply, converge, fstab, reach_plan
from perfgroup.engine.errors import ConvergeError, RefusedError
from perfgroup.engine.findings import audit
from perfgroup.engine.plan import make
from perfgroup.engine.reach_facts import ReachFacts
from perfgroup.engine.remove import RemoveFacts
from perfgroup.engine.remove import notes as remove_notes
from perfgroup.engine.remove import plan as remove_plan
from perfgroup.engine.state import parse

GID = 995
TRACING = "/sys/kernel/tracing"
HEAD = "# /etc/fstab: static file system information.\n#\n# <fs>  <mount point>  <type>  <options>  <dump> <pass>\n"
ROOT = "UUID=1234-abcd\t/\text4\terrors=remount-ro\t0\t1\n"

# (fstab text, fstab text after setup for gid 995); every byte but the entry's options is kept.
EDITS = [
    (HEAD + ROOT + "tracefs /sys/kernel/tracing tracefs defaults 0 0\n",
     HEAD + ROOT + "tracefs /sys/kernel/tracing tracefs defaults,gid=995,mode=0750 0 0\n"),
    # tabs and odd spacing, other options kept in order, old gid=/mode= replaced (mode=0755 never kept)
    ("tracefs\t/sys/kernel/tracing  \ttracefs\tnosuid,mode=0755,nodev,gid=0,noexec\t0 0\n" + ROOT,
     "tracefs\t/sys/kernel/tracing  \ttracefs\tnosuid,nodev,noexec,gid=995,mode=0750\t0 0\n" + ROOT),
    # no dump/pass fields, no trailing newline, CRLF elsewhere
    (ROOT.replace("\n", "\r\n") + "none /sys/kernel/tracing tracefs rw",
     ROOT.replace("\n", "\r\n") + "none /sys/kernel/tracing tracefs rw,gid=995,mode=0750"),
    # no options field at all: one is added after the type
    ("  tracefs /sys/kernel/tracing tracefs\n", "  tracefs /sys/kernel/tracing tracefs gid=995,mode=0750\n"),
    # the commented-out entry and the debugfs entry are not touched; a CRLF line keeps its CRLF
    ("#tracefs /sys/kernel/tracing tracefs defaults 0 0\ndebugfs /sys/kernel/debug debugfs defaults 0 0\n"
     "tracefs /sys/kernel/debug/tracing tracefs mode=700 0 0\r\n",
     "#tracefs /sys/kernel/tracing tracefs defaults 0 0\ndebugfs /sys/kernel/debug debugfs defaults 0 0\n"
     "tracefs /sys/kernel/debug/tracing tracefs gid=995,mode=0750 0 0\r\n"),
    # two tracefs entries at two mount points (one superblock): both carry the options
    ("tracefs /sys/kernel/tracing tracefs defaults 0 0\ntracefs /sys/kernel/debug/tracing tracefs defaults 0 0\n",
     "tracefs /sys/kernel/tracing tracefs defaults,gid=995,mode=0750 0 0\n"
     "tracefs /sys/kernel/debug/tracing tracefs defaults,gid=995,mode=0750 0 0\n"),
    # already right (mode written 750): nothing to do
    ("tracefs /sys/kernel/tracing tracefs mode=750,gid=995 0 0\n", "tracefs /sys/kernel/tracing tracefs mode=750,gid=995 0 0\n"),
]


def run_setup(text: str, gid: int | None = GID) -> tuple[str, tuple[tuple[str, str], ...]]:
    """What setup's edits do to the text, and what it records (gid None: group made by the plan)."""
    facts = ReachFacts(fstab_lines=fstab.tracefs_lines(text))
    planned, _ = reach_plan.plan_tracefs(facts, "perf_users", gid, True)
    edits = tuple(a for a in planned if isinstance(a, act.EditFstab))
    done = []
    for action in edits:  # as apply.edit_fstab does, with the gid known by then
        new = action.new_line or fstab.edited(action.line, GID)
        if new is None:
            continue
        edited = fstab.replace_line(text, action.line, new)
        assert edited is not None
        text = edited
        done.append(action)
    return text, converge.fstab_edits(None, done, GID)


def run_remove(text: str, edits: tuple[tuple[str, str], ...]) -> str:
    facts = RemoveFacts("perf_users", state(fstab_edits=edits), None, fstab_lines=fstab.tracefs_lines(text))
    for action in remove_plan(facts):
        if isinstance(action, act.EditFstab):
            assert action.step == "restore_fstab"
            edited = fstab.replace_line(text, action.line, action.new_line)
            assert edited is not None
            text = edited
    return text


@pytest.mark.parametrize(("before", "after"), EDITS)
@pytest.mark.parametrize("gid", [GID, None])
def test_setup_edits_only_the_options_field_and_remove_restores_every_byte(before: str, after: str,
                                                                          gid: int | None) -> None:
    edited, edits = run_setup(before, gid)
    assert edited == after
    assert not [line for line in fstab.tracefs_lines(edited) if "mode=0755" in line]
    assert run_setup(edited)[1] == ()  # converged: a second run changes nothing
    assert run_remove(edited, edits) == before


def test_the_record_round_trips_through_json_and_keeps_the_first_original() -> None:
    edits = (("tracefs /t tracefs defaults 0 0", "tracefs /t tracefs defaults,gid=995,mode=0750 0 0"),)
    again = fstab.recorded(edits, (("tracefs /t tracefs defaults,gid=995,mode=0750 0 0",
                                    "tracefs /t tracefs defaults,gid=7,mode=0750 0 0"),))
    assert again == (("tracefs /t tracefs defaults 0 0", "tracefs /t tracefs defaults,gid=7,mode=0750 0 0"),)
    assert parse(state(fstab_edits=again).to_json()).fstab_edits == again
    opened = fstab.recorded(again, (("tracefs /t tracefs mode=0755 0 0", "tracefs /t tracefs gid=7,mode=0750 0 0"),))
    assert opened == (("tracefs /t tracefs defaults 0 0", "tracefs /t tracefs gid=7,mode=0750 0 0"),)  # someone's edit
    assert parse(state().to_json()).fstab_edits == ()


@pytest.mark.parametrize(("text", "message"), [
    ("tracefs /sys/kernel/tracing tracefs defaults 0 0\nnone /sys/kernel/tracing tracefs mode=700 0 0\n",
     "several tracefs entries for /sys/kernel/tracing"),
])
def test_refused_where_perfgroup_cannot_tell_which_entry_counts(text: str, message: str) -> None:
    facts = replace(converged(), reach=ReachFacts(fstab_lines=fstab.tracefs_lines(text)))
    with pytest.raises(RefusedError, match=message):
        make(facts, desired())
    make(facts, desired(tracefs=False))  # --no-tracefs: fstab is none of perfgroup's business


FSTAB_LINE = "tracefs /sys/kernel/tracing tracefs defaults 0 0"
MOUNTED = ReachFacts(tracefs=((TRACING, 0o700, 0),), systemd=True, fstab_tracefs=True, fstab_lines=(FSTAB_LINE,))


@pytest.mark.parametrize(("facts", "want", "expected"), [
    (MOUNTED, True, ["remount_tracefs", "edit_fstab"]),  # fstab, not the drop-in, is what boots use
    (MOUNTED, False, []),
    (MOUNTED._replace(tracefs=()), True, ["edit_fstab"]),  # not mounted now: the next boot still uses it
    (MOUNTED._replace(tracefs=((TRACING, 0o750, GID),), fstab_lines=(fstab.edit_line(FSTAB_LINE, GID),)), True, []),
])
def test_plan(facts: ReachFacts, want: bool, expected: list[str]) -> None:
    planned = make(replace(converged(), reach=facts), desired(tracefs=want))
    assert [a.kind for a in planned.actions] == expected
    if expected:
        assert any("fstab" in note for note in planned.notes)


def test_the_action_describes_the_line_it_writes() -> None:
    planned, _ = reach_plan.plan_tracefs(MOUNTED, "perf_users", GID, True)
    edit = planned[-1]
    assert (edit.before, edit.after) == (FSTAB_LINE, "tracefs /sys/kernel/tracing tracefs defaults,gid=995,mode=0750 0 0")
    unknown, _ = reach_plan.plan_tracefs(MOUNTED, "perf_users", None, True)
    assert "gid of perf_users" in unknown[-1].after


@pytest.mark.parametrize(("lines", "kept", "expected"), [
    ((FSTAB_LINE,), False, "warning"),
    ((FSTAB_LINE,), True, "ok"),  # setup --no-tracefs
    ((fstab.edit_line(FSTAB_LINE, GID),), False, None),
    ((fstab.edit_line(FSTAB_LINE, GID + 1),), False, "warning"),  # another group's gid
    ((), False, None),
])
def test_finding(lines: tuple[str, ...], kept: bool, expected: str | None) -> None:
    facts = replace(converged(), reach=MOUNTED._replace(tracefs=((TRACING, 0o750, GID),), fstab_lines=lines),
                    state=state(tracefs_kept=kept))
    found = {f.id: f for f in audit(facts, desired())}
    got = found.get("tracefs.not_persistent")
    assert (got.severity if got else None) == expected
    if got:
        assert got.fix == "perfgroup setup --group perf_users" and "next boot" in got.message


def test_remove_leaves_a_line_someone_changed_since() -> None:
    edits = ((FSTAB_LINE, fstab.edit_line(FSTAB_LINE, GID)),)
    changed = RemoveFacts("perf_users", state(fstab_edits=edits), None, fstab_lines=(FSTAB_LINE + " # mine",))
    assert not [a for a in remove_plan(changed) if a.kind == "edit_fstab"]
    assert any("left as it is" in note for note in remove_notes(changed))


def test_apply_rewrites_atomically_keeping_owner_mode_and_other_bytes(tmp_path: Path) -> None:
    path = tmp_path / "fstab"
    before, after = EDITS[1]
    path.write_bytes(before.encode())
    os.chmod(path, 0o640)
    line = fstab.tracefs_lines(before)[0]
    apply.edit_fstab(act.EditFstab(str(path), "w", line=line, group="perf_users", gid=GID))
    assert path.read_text() == after and stat.S_IMODE(path.stat().st_mode) == 0o640
    assert sorted(os.listdir(tmp_path)) == ["fstab"]  # no temp file left
    with pytest.raises(ConvergeError, match="changed while perfgroup ran"):  # the planned line is gone
        apply.edit_fstab(act.EditFstab(str(path), "w", line=line, group="perf_users", gid=GID))
    assert path.read_text() == after


JOURNAL_EDITS = [
    (),
    (("tracefs /sys/kernel/tracing tracefs defaults 0 0", "tracefs /sys/kernel/tracing tracefs defaults,gid=5,mode=0750 0 0"),),
    (("a\tb  c # - x", "a\tb  c,gid=1 # + y"), ("- tricky", "+ tricky")),
]


@pytest.mark.parametrize("edits", JOURNAL_EDITS)
def test_journal_round_trips(edits: tuple[tuple[str, str], ...]) -> None:
    assert fstab.parse_journal(fstab.journal_text(edits)) == edits


def test_a_killed_runs_journaled_edit_is_recorded_with_the_line_before_perfgroup() -> None:
    from perfgroup.engine.converge import fstab_edits

    original = "tracefs /sys/kernel/tracing tracefs defaults 0 0"
    edited = "tracefs /sys/kernel/tracing tracefs defaults,gid=5,mode=0750 0 0"
    # The killed run renamed fstab but wrote no record; this run has nothing left to edit.
    assert fstab_edits(None, [], 5, ((original, edited),)) == ((original, edited),)
    # The same edit also made by this run (journaled, then applied) is recorded once.
    assert fstab_edits(None, [], 5, ((original, edited), (original, edited))) == ((original, edited),)
