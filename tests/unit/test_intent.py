"""intent_facts.py and intent_plan.py: what a setup run writes down before its first change, and how the next record or
remove takes it in (tables of plain data)."""

from __future__ import annotations

import pytest

from perfgroup.engine import intent_facts, intent_plan
from perfgroup.engine.actions import AddMember, CreateDir, CreateGroup, InstallCopy, RemountTracefs, SetParanoid
from perfgroup.engine.intent_facts import Intent
from perfgroup.engine.paths import intent_path
from perfgroup.engine.state import State

GROUP = CreateGroup("perf_users", "why", gid=995)
DIR = CreateDir("/usr/local/libexec/perfgroup", "why")
MEMBER = AddMember("alice", "why", group="perf_users")
COPY = InstallCopy("/usr/local/libexec/perfgroup/perf_users/perf", "why")
TRACEFS = RemountTracefs("/sys/kernel/tracing", "why", gid=995, mode=0o750, was_mode=0o700, was_gid=0)


RECORD = State("perf_users", 995, COPY.target, "/usr/bin/perf", "", "", ("cap_perfmon",))
KNOWN = RECORD._replace(created_dirs=(DIR.target,), members_added=("alice",), copies=(COPY.target,),
                        tracefs_before=(("/sys/kernel/tracing", 0o700, 0),))


@pytest.mark.parametrize(("actions", "paranoid", "recorded", "expected"), [
    ((), 3, RECORD, Intent()),
    ((), 3, None, Intent(paranoid_before=3)),
    ((GROUP, DIR, MEMBER, COPY), 2, RECORD,
     Intent(True, (DIR.target,), ("alice",), (COPY.target,), group_gid=995)),
    ((TRACEFS,), None, None, Intent(tracefs_before=(("/sys/kernel/tracing", 0o700, 0),))),
    # What the record already holds is not written down again (a reinstall, a re-added member).
    ((DIR, MEMBER, COPY, TRACEFS), 2, KNOWN, Intent()),
])
def test_of_plan_keeps_only_what_a_record_alone_remembers(actions: tuple, paranoid: int | None,
                                                          recorded: State | None, expected: Intent) -> None:
    assert intent_plan.of_plan(actions, paranoid, recorded) == expected


def test_paranoid_alone_is_not_a_change_worth_writing_down() -> None:
    intent = intent_plan.of_plan((SetParanoid("kernel.perf_event_paranoid", "why", value=2),), 3, RECORD)
    assert intent.empty()


@pytest.mark.parametrize(("text", "expected"), [
    (None, Intent()),
    ("", Intent()),
    ("not json", Intent()),
    ("[1, 2]", Intent()),
    ('{"group_created": "yes", "members_added": ["alice", 3], "paranoid_before": "3"}', Intent(members_added=("alice",))),
    ('{"tracefs_before": [["/sys/kernel/tracing", "x", 0]]}', Intent()),
    (intent_plan.to_json(Intent(True, ("/d",), ("a",), ("/c",), 3, (("/t", 448, 0),), 995)),
     Intent(True, ("/d",), ("a",), ("/c",), 3, (("/t", 448, 0),), 995)),
    # Written before the gid was recorded: the claim stays, without a gid (still_true then drops it).
    ('{"group_created": true, "members_added": ["alice"]}', Intent(True, members_added=("alice",))),
    ('{"group_created": true, "group_gid": "995"}', Intent(True)),
])
def test_a_damaged_intent_counts_as_none(text: str | None, expected: Intent) -> None:
    assert intent_facts.parse(text) == expected


def test_two_failed_runs_keep_the_first_value_from_before() -> None:
    first = Intent(members_added=("alice",), paranoid_before=3, tracefs_before=(("/t", 0o700, 0),))
    second = Intent(True, ("/d",), ("bob", "alice"), (), 2, (("/t", 0o750, 995), ("/u", 0o700, 0)))
    assert intent_plan.union(first, second) == Intent(
        True, ("/d",), ("alice", "bob"), (), 3, (("/t", 0o700, 0), ("/u", 0o700, 0)))
    assert intent_plan.union(None, second) == second


def test_remove_folds_the_intent_into_the_record() -> None:
    state = State("perf_users", 995, "/c", "/usr/bin/perf", "", "", ("cap_perfmon",), members_added=("alice",),
                  created_dirs=("/a",), copies=("/c",), paranoid_before=None)
    folded = intent_plan.fold(state, Intent(True, ("/b",), ("bob",), ("/old",), 4, (("/t", 0o700, 0),)))
    assert folded.group_created and folded.created_dirs == ("/a", "/b") and folded.members_added == ("alice", "bob")
    assert folded.copies == ("/c", "/old") and folded.paranoid_before == 4 and folded.tracefs_before == (("/t", 448, 0),)
    assert intent_plan.fold(state, None) == state
    assert intent_plan.fold(state._replace(paranoid_before=3), Intent(paranoid_before=4)).paranoid_before == 3


def test_the_intent_lies_beside_the_record() -> None:
    assert intent_path("/var/lib/perfgroup/perf_users.json") == "/var/lib/perfgroup/perf_users.pending"


@pytest.mark.parametrize(("intent", "gid_now", "claimed"), [
    (Intent(True, group_gid=995), 995, True),  # the group the failed run created
    (Intent(True, group_gid=995), 996, False),  # someone created it by hand later, with another gid
    (Intent(True, group_gid=995), None, False),  # deleted since
    (Intent(True), 995, False),  # an intent from before gids were written down: not claimed
])
def test_group_created_only_if_it_still_has_the_planned_gid(intent: Intent, gid_now: int | None, claimed: bool) -> None:
    kept = intent_facts.still_true(intent, gid_now, ())
    assert kept.group_created is claimed
    assert kept.group_gid == (995 if claimed else None)


def test_a_claim_keeps_its_gid_through_union_and_the_record() -> None:
    assert intent_plan.union(Intent(True, group_gid=995), Intent(members_added=("bob",))).group_gid == 995
    assert intent_plan.union(Intent(members_added=("bob",)), Intent(True, group_gid=990)).group_gid == 990
    assert intent_plan.recorded(RECORD._replace(group_created=True)).group_gid == 995
    assert intent_plan.recorded(RECORD._replace(group_created=False)).group_gid is None
