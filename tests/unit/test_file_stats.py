"""Recorded files are re-read and re-hashed by an audit only when their stat changed since setup
recorded it with the same sha256 (the copy's rule, applied to the record's files)."""

from __future__ import annotations

from pathlib import Path

import pytest

from perfgroup.engine import facts, host
from perfgroup.engine.state import State, StatKey, parse

BASE = State(group="g", gid=1, dest="/d", source="/s", source_sha256="", copy_sha256="", caps=())


def test_record_round_trips_file_stats() -> None:
    key = StatKey(1, 2, 3, 4, 5)
    state = BASE._replace(files=(("/etc/x", "ab"),), file_stats=(("/etc/x", "ab", key),))
    assert parse(state.to_json()) == state
    assert parse(BASE.to_json()).file_stats == ()  # records written before keep loading


def test_unchanged_files_are_not_reread_changed_ones_are(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "unit"
    path.write_text("one\n")
    sha = host.sha256_text("one\n")
    state = BASE._replace(files=((str(path), sha),))
    stats = facts.file_stats(state.files)
    assert [(p, s) for p, s, _ in stats] == [(str(path), sha)]
    state = state._replace(file_stats=stats)
    with monkeypatch.context() as patch:
        patch.setattr(facts, "read_text", lambda *a: pytest.fail("an unchanged file was read again"))
        assert facts.recorded_files(state) == ((str(path), sha),)
    path.write_text("two, longer\n")  # an edit changes the stat: re-hashed
    assert facts.recorded_files(state) == ((str(path), host.sha256_text("two, longer\n")),)
    # A stat recorded with another sha256 (a stale entry) is never trusted.
    stale = state._replace(files=((str(path), "0" * 64),),
                           file_stats=facts.file_stats(((str(path), host.sha256_text("two, longer\n")),)))
    assert facts.recorded_files(stale) == ((str(path), host.sha256_text("two, longer\n")),)
    assert facts.file_stats(((str(path), "0" * 64),)) == ()  # content differs: no stat recorded
    path.unlink()
    assert facts.recorded_files(state) == ((str(path), None),)
