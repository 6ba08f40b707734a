"""state.py: the setup record, its round trip, migrations of older schemas and what it refuses."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from factsdata import replace

from perfgroup.engine.state import REQUIRED, SCHEMA, State, StateError, StatKey, parse

DATA = Path(__file__).parent / "data"


def sample_state() -> State:
    key = StatKey(1, 2, 3, 4, 5)
    return State(
        group="g", gid=1000, group_created=True, dest="/d/perf", copies=("/d/perf",), created_dirs=("/d",),
        source="/usr/bin/perf", source_sha256="a" * 64, source_stat=key, copy_sha256="a" * 64, copy_stat=key,
        caps=("cap_perfmon",), caps_override=False, keep_paranoid=False, paranoid_before=2,
        files=(("/etc/profile.d/p.sh", "b" * 64), ("/etc/sysctl.d/s.conf", "c" * 64)),
        members_added=("alice",), updated_at="now",
    )


def test_state_round_trip() -> None:
    state = sample_state()
    assert parse(state.to_json()) == state
    assert state.same_as(replace(state, updated_at="later"))
    assert not state.same_as(replace(state, gid=7))


@pytest.mark.parametrize("text", [
    "", "{", "[]", '{"schema": 99}', '{"schema": 1}', '{"schema": "2"}', sample_state().to_json()[:200],
    '{"schema": 2, "group": "g", "gid": 1, "dest": "/d", "source": "s", "source_sha256": "", "copy_sha256": "",'
    ' "caps": [], "files": []}',
])
def test_garbage_state_is_rejected(text: str) -> None:
    with pytest.raises(StateError):
        parse(text)


def test_schema_1_record_from_perfgroup_0_1_still_loads() -> None:
    """A frozen record written by perfgroup 0.1 (schema 1): migrated, never rejected."""
    state = parse((DATA / "state_schema1.json").read_text())
    assert state.schema == SCHEMA and state.group == "perf_users" and state.gid == 995
    assert state.copies == ("/usr/local/libexec/perfgroup/perf_users/perf",)
    assert state.file_sha("/etc/profile.d/perfgroup-perf_users.sh") == "b" * 64
    assert state.file_sha("/etc/sysctl.d/90-perfgroup-perf_users.conf") == "c" * 64
    assert state.members_added == ("alice",) and state.paranoid_before == 3
    assert state.root_equivalent_caps == ()
    assert parse(state.to_json()) == state  # and it is written back as the current schema


LEGACY = ["cap_sys_admin", "cap_sys_ptrace", "cap_syslog"]


def test_schema_1_legacy_caps_were_never_opted_in() -> None:
    """perfgroup 0.1 chose the pre-5.8 set silently: migrated, the record grants nothing, so audit
    reports those capabilities as critical rather than as an opt-in."""
    raw = json.loads((DATA / "state_schema1.json").read_text())
    raw["caps"] = LEGACY
    assert parse(json.dumps(raw)).root_equivalent_caps == ()


@pytest.mark.parametrize(("flag", "granted"), [
    (True, ("cap_sys_ptrace", "cap_sys_admin")), (False, ()), (None, ()),
])
def test_the_old_opt_in_flag_reads_as_the_set_it_granted(flag: bool | None, granted: tuple[str, ...]) -> None:
    raw = json.loads(sample_state()._replace(caps=tuple(LEGACY)).to_json())
    del raw["root_equivalent_caps"]
    if flag is not None:
        raw["root_equivalent_allowed"] = flag
    state = parse(json.dumps(raw))
    assert state.root_equivalent_caps == granted
    assert "root_equivalent_allowed" not in state.as_dict() and parse(state.to_json()) == state


def test_optional_fields_take_their_defaults() -> None:
    minimal = {k: v for k, v in sample_state().as_dict().items() if k in REQUIRED or k == "schema"}
    state = parse(json.dumps(minimal))
    assert state.members_added == () and state.files == () and state.copy_stat is None
