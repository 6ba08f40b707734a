"""Image mode (`setup/audit --root`) as plain data: nothing live is planned or judged, what nodes
boot with is; the request that crosses into the image chroot round-trips."""

from __future__ import annotations

import json

import pytest
from factsdata import converged, desired, fresh, replace

from perfgroup.engine import reach_facts
from perfgroup.engine.desired import NodeArtifact
from perfgroup.engine.facts import TextFacts
from perfgroup.engine.findings import audit
from perfgroup.engine.image import desired_from_dict, desired_to_dict
from perfgroup.engine.plan import make

# An image: no kernel facts (facts.read leaves them None), systemd's tracefs unit shipped, nothing mounted.
IMAGE_REACH = reach_facts.ReachFacts(tracefs=(), systemd=True, dropin=None, mlock_kb=None)


def image_facts(**changes: object) -> object:
    base = replace(fresh(), paranoid=None, kptr_restrict=None, cap_last_cap=None, kernel_release="6.1.0-50-cloud-amd64",
                   reach=IMAGE_REACH)
    return replace(base, **changes)


@pytest.mark.parametrize(("paranoid_in_image_facts"), [None, 3, 1])
def test_image_plan_writes_boot_time_files_and_changes_nothing_live(paranoid_in_image_facts: int | None) -> None:
    plan = make(image_facts(paranoid=paranoid_in_image_facts), desired(image=True))
    kinds = [a.kind for a in plan.actions]
    assert "set_paranoid" not in kinds and "remount_tracefs" not in kinds
    assert "persist_tracefs" in kinds  # the drop-in, though tracefs is not mounted in the image
    assert any(a.target == desired().sysctl_path for a in plan.actions)
    assert any("cpio-packed images" in note for note in plan.notes)
    assert "cap_perfmon" in plan.caps.caps


def test_the_same_facts_on_a_live_node_would_change_the_kernel() -> None:
    kinds = [a.kind for a in make(image_facts(paranoid=1, reach=replace(IMAGE_REACH, tracefs=(
        ("/sys/kernel/tracing", 0o700, 0),))), desired()).actions]
    assert "set_paranoid" in kinds and "remount_tracefs" in kinds


def test_image_without_a_kernel_assumes_perfmon_and_says_so() -> None:
    plan = make(image_facts(kernel_release="", cap_last_cap=40), desired(image=True))
    assert plan.caps.core == "cap_perfmon"
    assert any("no kernel under /lib/modules" in note for note in plan.notes)


def test_keep_paranoid_in_an_image_is_a_note_not_a_refusal() -> None:
    plan = make(image_facts(), desired(image=True, keep_paranoid=True))
    assert not any(a.target == desired().sysctl_path for a in plan.actions)
    assert any("--keep-paranoid in an image" in note for note in plan.notes)


def test_image_audit_judges_files_not_the_build_hosts_kernel() -> None:
    facts = replace(converged(), paranoid=None, kptr_restrict=None, reach=IMAGE_REACH)
    ids = {f.id: f.severity for f in audit(facts, desired(image=True))}
    assert ids.get("image.live_state") == "ok"
    assert not any(i.startswith(("paranoid.unknown", "paranoid.ok", "tracefs.", "mlock.")) for i in ids)
    live = {f.id for f in audit(facts, desired())}
    assert "paranoid.unknown" in live  # the same facts on a live node are a warning


def test_image_audit_still_reports_persistence() -> None:
    facts = replace(converged(), paranoid=None, reach=IMAGE_REACH, persisted_paranoid=None,
                    sysctl_dropin=TextFacts("s", None))
    ids = {f.id for f in audit(facts, desired(image=True))}
    assert "paranoid.not_persisted" in ids


def test_request_round_trips_into_the_image() -> None:
    want = desired(members=("alice",), gid=4242, caps_override=frozenset({"cap_perfmon"}), tracefs=False, shell=True,
                   shell_extra_caps=frozenset({"cap_syslog"}),
                   artifacts=(NodeArtifact("/usr/local/bin/perf", "#!/bin/sh\n", 0o755, "wrapper"),))
    back = desired_from_dict(json.loads(json.dumps(desired_to_dict(want))))
    assert back == want._replace(image=True)


def test_image_that_mounts_tracefs_from_fstab_gets_the_entry_edited_not_a_drop_in() -> None:
    line = "tracefs /sys/kernel/tracing tracefs defaults 0 0"
    facts = image_facts(reach=replace(IMAGE_REACH, fstab_tracefs=True, fstab_lines=(line,)))
    kinds = [a.kind for a in make(facts, desired(image=True)).actions]
    assert "edit_fstab" in kinds and "persist_tracefs" not in kinds and "remount_tracefs" not in kinds
