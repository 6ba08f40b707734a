"""remove's undo decisions, as tables: perf_event_paranoid and tracefs back as setup found them,
never below 2, and the units stopped before their files go."""

from __future__ import annotations

import pytest
from factsdata import GID, state

from perfgroup.engine.actions import RemountTracefs, SetParanoid, Systemctl
from perfgroup.engine.remove import RemoveFacts, is_unit, plan, restore_paranoid, restore_tracefs

# (case, recorded before, kept, live now, the value set or None, words in the note)
PARANOID = [
    ("Debian's 3 back from setup's 2", 3, False, 2, 3, ""),
    ("Ubuntu's 4 back", 4, False, 2, 4, ""),
    ("already 2 before: nothing", 2, False, 2, None, ""),
    ("1 before: never below 2, said", 1, False, 2, None, "below 2 every user"),
    ("-1 before: never below 2", -1, False, 2, None, "sysctl -w kernel.perf_event_paranoid=-1"),
    ("changed since setup: left", 3, False, 1, None, "changed since"),
    ("--keep-paranoid: setup did not touch it", 3, True, 3, None, ""),
    ("an image: no live value", None, False, None, None, "boot applies the distribution default"),
]


@pytest.mark.parametrize(("before", "kept", "now", "value", "words"), [c[1:] for c in PARANOID], ids=[c[0] for c in PARANOID])
def test_paranoid_goes_back_only_from_setups_2_and_never_below_2(before: int | None, kept: bool, now: int | None,
                                                                   value: int | None, words: str) -> None:
    actions, note = restore_paranoid(state(paranoid_before=before, keep_paranoid=kept), now)
    assert [a.value for a in actions if isinstance(a, SetParanoid)] == ([value] if value is not None else [])
    assert words in note
    assert bool(note) == bool(words)


T = "/sys/kernel/tracing"
# (case, recorded before, --no-tracefs, mounts now, (mode, gid) remounted to, or None)
TRACEFS = [
    ("recorded: back to it", ((T, 0o700, 0),), False, ((T, 0o750, GID),), (0o700, 0)),
    ("recorded and already so: nothing", ((T, 0o700, 0),), False, ((T, 0o700, 0),), None),
    ("booted from an image (no record of it), the group's gid: systemd's 0700 root", (), False, ((T, 0o750, GID),),
     (0o700, 0)),
    ("not the group's gid: not ours", (), False, ((T, 0o750, 4242),), None),
    ("--no-tracefs: never ours", (), True, ((T, 0o750, GID),), None),
]


@pytest.mark.parametrize(("before", "kept", "mounts", "want"), [c[1:] for c in TRACEFS], ids=[c[0] for c in TRACEFS])
def test_tracefs_goes_back_as_found_or_to_systemds_default(before: tuple[tuple[str, int, int], ...], kept: bool,
                                                           mounts: tuple[tuple[str, int, int], ...],
                                                           want: tuple[int, int] | None) -> None:
    actions = restore_tracefs(state(tracefs_before=before, tracefs_kept=kept), mounts)
    assert [(a.mode, a.gid) for a in actions if isinstance(a, RemountTracefs)] == ([want] if want else [])


def test_units_are_stopped_before_their_files_go_and_systemd_reloaded_after() -> None:
    units = ("/etc/systemd/system/perfgroup-heal-perf_users.service",
             "/etc/systemd/system/perfgroup-textfile-perf_users.timer")
    wants = "/etc/systemd/system/multi-user.target.wants/perfgroup-heal-perf_users.service"
    recorded = state(files=tuple((p, "0" * 64) for p in (*units, wants)))
    steps = plan(RemoveFacts("perf_users", recorded, None, files=tuple((p, True) for p in (*units, wants))))
    kinds = [type(s).__name__ + (f":{s.verb}" if isinstance(s, Systemctl) else "") for s in steps]
    stop, reload = kinds.index("Systemctl:stop"), kinds.index("Systemctl:daemon-reload")
    deletes = [i for i, k in enumerate(kinds) if k == "DeleteFile"]
    assert stop < min(deletes) and reload > max(deletes[:-1])  # the last delete is the record
    assert steps[stop].units == ("perfgroup-heal-perf_users.service", "perfgroup-textfile-perf_users.timer")
    assert is_unit(units[0]) and not is_unit(wants)
