from __future__ import annotations

import pytest
from factsdata import replace

from perfgroup.engine import profile, sysctl
from perfgroup.engine.state import State, StateError, StatKey, parse


def test_boot_order_masks_same_names_and_sorts() -> None:
    listing = {
        "/etc/sysctl.d": ["90-perfgroup-x.conf", "10-local.conf", "README"],
        "/usr/lib/sysctl.d": ["10-local.conf", "50-default.conf"],
    }
    assert sysctl.boot_order(listing) == [
        "/etc/sysctl.d/10-local.conf", "/usr/lib/sysctl.d/50-default.conf", "/etc/sysctl.d/90-perfgroup-x.conf",
    ]


@pytest.mark.parametrize(("files", "expected"), [
    ([], (None, None)),
    ([("a", "kernel.perf_event_paranoid = 2\n")], (2, "a")),
    ([("a", "kernel.perf_event_paranoid=2"), ("b", "# kernel.perf_event_paranoid = -1")], (2, "a")),
    ([("a", "kernel.perf_event_paranoid = 2"), ("b", "kernel/perf_event_paranoid = 1")], (1, "b")),
    ([("a", "-kernel.perf_event_paranoid = 3"), ("b", "vm.swappiness=1")], (3, "a")),
    ([("a", "kernel.perf_event_paranoid = x")], (None, "a")),
])
def test_persisted_value(files: list[tuple[str, str]], expected: tuple[int | None, str | None]) -> None:
    assert sysctl.persisted_value(files) == expected


def test_dropin_round_trips() -> None:
    assert list(sysctl.assignments(sysctl.render_dropin("g", 2))) == [2]


def test_profile_snippet_is_posix_and_group_specific() -> None:
    text = profile.render("perf_users", "/usr/local/libexec/perfgroup/perf_users")
    assert '*" perf_users "*)' in text
    assert "PATH=/usr/local/libexec/perfgroup/perf_users:\"$PATH\"" in text


def sample_state() -> State:
    key = StatKey(1, 2, 3, 4, 5)
    return State(
        group="g", gid=1000, group_created=True, group_source="local", dest="/d/perf", created_dirs=("/d",),
        source="/usr/bin/perf", source_sha256="a" * 64, source_stat=key, copy_sha256="a" * 64, copy_stat=key,
        caps=("cap_perfmon",), caps_reason="r", caps_override=False, keep_paranoid=False, paranoid_before=2,
        profile_path="/etc/profile.d/p.sh", profile_sha256="b" * 64, sysctl_path="/etc/sysctl.d/s.conf",
        sysctl_sha256="c" * 64, members_added=("alice",), updated_at="now",
    )


def test_state_round_trip() -> None:
    state = sample_state()
    assert parse(state.to_json()) == state
    assert state.same_as(replace(state, updated_at="later"))
    assert not state.same_as(replace(state, gid=7))


@pytest.mark.parametrize("text", ["", "{", "[]", '{"schema": 99}', '{"schema": 1}', sample_state().to_json()[:200]])
def test_garbage_state_is_rejected(text: str) -> None:
    with pytest.raises(StateError):
        parse(text)
