"""What the setup record is trusted with (issue 10), for real in throwaway nodes: remove and setup
delete only recorded copies setup could have made, and the root-equivalent opt-in is the set
setup granted, decided by each run, never a flag that sticks."""

from __future__ import annotations

import json
from typing import Any

import pytest
from conftest import PERFGROUP
from node import Node

pytestmark = pytest.mark.integration

DEST = "/usr/local/libexec/perfgroup/perf_users/perf"
STATE = "/var/lib/perfgroup/perf_users.json"
PERF_A = ["stat", "-a", "-e", "cpu-clock", "--", "true"]
LEGACY = "cap_sys_ptrace,cap_sys_admin,cap_syslog=ep"


def perfgroup(node: Node, *args: str) -> Any:
    return node.run([PERFGROUP, *args])


def setup(node: Node, *args: str) -> Any:
    result = perfgroup(node, "setup", "--member", "alice", *args)
    assert result.returncode == 0, result.stdout + result.stderr
    return result


def audit(node: Node) -> tuple[int, dict[str, str], dict[str, str]]:
    """(exit code, {id: severity}, {id: message}) of the non-ok findings."""
    result = perfgroup(node, "audit", "--json")
    findings = [f for f in json.loads(result.stdout)["findings"] if f["severity"] != "ok"]
    return result.returncode, {f["id"]: f["severity"] for f in findings}, {f["id"]: f["message"] for f in findings}


def forge(node: Node, **changes: list[str]) -> None:
    """Rewrite the record as root would (root-owned, 0644: remove trusts its owner, not its word)."""
    record = json.loads(node.ok(f"cat {STATE}"))
    for key, values in changes.items():
        record[key] = [*values, *record[key]]
    node.path(STATE).write_text(json.dumps(record))
    node.ok(f"chown root:root {STATE} && chmod 0644 {STATE}")


def entries(node: Node, paths: tuple[str, ...]) -> dict[str, tuple[object, ...]]:
    """The snapshot entries at and below these paths (a deletion leaves a whiteout: it shows)."""
    snap = node.snapshot()
    return {k: v for k, v in snap.items() if any(k == p.lstrip("/") or k.startswith(p.lstrip("/") + "/") for p in paths)}


# Paths a forged record names that setup could never have installed a copy at.
FOREIGN = ("/etc/localtime", "/lib64", "/etc/r10-link", "/opt/tools/perf", "/usr/lib/linux-tools/6.1.0-99/perf",
           "/opt/site-bin/perf")


def plant_foreign(node: Node) -> None:
    # Touch each so it sits in the node's upper layer, where the snapshot sees it (and its deletion).
    node.ok("ln -sfn \"$(readlink /etc/localtime)\" /etc/localtime && ln -sfn \"$(readlink /lib64)\" /lib64 "
            "&& ln -s /etc/hostname /etc/r10-link "
            "&& mkdir -p /opt/tools /usr/lib/linux-tools/6.1.0-99 "
            "&& cp /usr/bin/perf /opt/tools/perf && cp /usr/bin/perf /usr/lib/linux-tools/6.1.0-99/perf "
            "&& mkdir /opt/site-bin && cp /usr/bin/perf /opt/site-bin/perf && chgrp perf_users /opt/site-bin/perf")


def test_a_forged_record_naming_symlinks_and_foreign_perfs_deletes_none(users: Node) -> None:
    node = users
    setup(node)
    plant_foreign(node)
    # Even with /opt/tools and /usr/lib claimed as created by setup: a root:root perf without
    # file capabilities is no copy of ours; /opt/site-bin/perf has our gid but no capabilities.
    forge(node, copies=list(FOREIGN), created_dirs=["/opt/tools", "/usr/lib"])
    before = entries(node, FOREIGN)
    assert len(before) == len(FOREIGN)
    again = perfgroup(node, "setup", "--member", "alice")  # setup neutralises recorded old copies: not these
    assert again.returncode == 0, again.stdout + again.stderr
    assert entries(node, FOREIGN) == before
    code, found, _ = audit(node)
    assert code == 0 and "copy.orphan" not in found, found
    result = perfgroup(node, "remove")
    assert result.returncode == 0, result.stderr
    assert entries(node, FOREIGN) == before
    for path in FOREIGN:
        assert f"record names {path}, which setup could not have created; left in place" in result.stdout
        assert f"delete {path}" not in result.stdout
    assert node.sh(f"test -e {DEST}").returncode != 0  # the real copy went
    assert node.ok("readlink /lib64").strip() and node.ok("cat /etc/hostname")


def test_an_old_copy_outside_the_install_root_is_neutralised_and_removed(users: Node) -> None:
    """The legitimate cases: a recorded dest in a directory setup created (state.copies branch of
    find_orphans, not the install-root walk), and a copy in a directory that existed before."""
    node = users
    old = "/opt/pg/perf"
    setup(node, "--dest", old)
    assert "/opt/pg" in json.loads(node.ok(f"cat {STATE}"))["created_dirs"]
    setup(node)
    assert node.sh(f"test -e {old}").returncode != 0, "the old copy outside the install root survived the move"
    # The directory setup created for it goes with it: kept empty, it would look like the site's.
    assert node.sh("test -e /opt/pg").returncode != 0 and "/opt/pg" not in json.loads(node.ok(f"cat {STATE}"))["created_dirs"]
    assert audit(node)[0] == 0
    # Planted back by hand (a restored backup): reported, and remove deletes it (not the directory
    # made by hand for it).
    node.ok(f"mkdir -p /opt/pg && cp {DEST} {old} && chgrp perf_users {old} && chmod 0750 {old} && setcap cap_perfmon=ep {old}")
    code, found, _ = audit(node)
    assert found.get("copy.orphan") == "critical" and code == 2
    result = perfgroup(node, "remove")
    assert result.returncode == 0, result.stderr
    assert "could not have created" not in result.stdout
    assert node.sh(f"test -e {old} || test -e {DEST}").returncode != 0 and node.sh("test -d /opt/pg").returncode == 0


def test_a_copy_in_a_directory_that_existed_before_is_removed(users: Node) -> None:
    node = users
    node.ok("mkdir -p /opt/site && chmod 0755 /opt/site")
    setup(node, "--dest", "/opt/site/perf")
    result = perfgroup(node, "remove")
    assert result.returncode == 0 and "could not have created" not in result.stdout, result.stdout
    assert node.sh("test -e /opt/site/perf").returncode != 0 and node.sh("test -d /opt/site").returncode == 0


# -- the root-equivalent opt-in ----------------------------------------------------------------

def caps_only(found: dict[str, str]) -> dict[str, str]:
    return {k: v for k, v in found.items() if k.startswith("caps.")}


def test_old_kernel_opted_in_then_a_hand_added_cap_is_critical_and_the_opt_in_does_not_stick(make_node: Any) -> None:
    node = make_node(sysctls={"kernel/cap_last_cap": "37"})
    node.ok("useradd -M -s /bin/sh alice")
    setup(node, "--allow-root-equivalent")
    assert json.loads(node.ok(f"cat {STATE}"))["root_equivalent_caps"] == ["cap_sys_ptrace", "cap_sys_admin"]
    code, found, _ = audit(node)
    assert caps_only(found) == {"caps.root_equivalent": "warning"} and code == 1  # (and mlock.budget: no cap_ipc_lock)
    node.ok(f"setcap cap_sys_ptrace,cap_sys_admin,cap_syslog,cap_setuid=ep {DEST}")
    code, found, messages = audit(node)
    assert caps_only(found) == {"caps.root_equivalent": "warning", "caps.excessive": "critical"} and code == 2, found
    assert "carries cap_setuid:" in messages["caps.excessive"]
    setup(node, "--allow-root-equivalent")  # repaired to what was granted
    assert LEGACY in node.ok(f"getcap {DEST}")
    # Without the flag this run is refused as on a fresh node: the opt-in is not inherited.
    before = node.snapshot()
    refused = perfgroup(node, "setup")
    assert refused.returncode == 2 and len(refused.stderr.strip().splitlines()) == 1, refused.stderr
    assert "lowering perf_event_paranoid" in refused.stderr and "per-job access" in refused.stderr
    assert node.snapshot() == before


def test_explicit_root_equivalent_caps_with_the_opt_in(users: Node) -> None:
    node = users
    result = setup(node, "--caps", "cap_perfmon,cap_syslog,cap_ipc_lock,cap_sys_ptrace", "--allow-root-equivalent")
    assert "MEMBERS CAN BECOME ROOT" in result.stdout and "cap_sys_ptrace" in result.stdout
    assert json.loads(node.ok(f"cat {STATE}"))["root_equivalent_caps"] == ["cap_sys_ptrace"]
    code, found, messages = audit(node)
    assert found == {"caps.root_equivalent": "warning"} and code == 1, found
    assert "cap_sys_ptrace" in messages["caps.root_equivalent"] and "become root" in messages["caps.root_equivalent"]
    assert node.run([DEST, *PERF_A], user="alice").returncode == 0
    # The recorded override keeps cap_sys_ptrace only while each run opts in again.
    before = node.snapshot()
    refused = perfgroup(node, "setup")
    assert refused.returncode == 2 and "not remembered" in refused.stderr, refused.stderr
    assert node.snapshot() == before
    setup(node, "--caps", "auto")
    assert json.loads(node.ok(f"cat {STATE}"))["root_equivalent_caps"] == []
    assert "cap_sys_ptrace" not in node.ok(f"getcap {DEST}") and audit(node)[0] == 0


def test_forged_created_dirs_are_neither_deleted_nor_repaired(users: Node) -> None:
    """Review item 7: a forged record's created_dirs made remove delete an empty /srv/data-mount,
    and setup/heal chown a user's home on a forged destination's path. One rule (trust.sanitize):
    a recorded directory counts only if setup could have made it and it still looks that way."""
    setup(users)
    users.ok("mkdir -p /srv/data-mount /home/alice/pg && chown alice /home/alice /home/alice/pg && chmod 0700 /home/alice")
    forge(users, created_dirs=["/srv/data-mount", "/home/alice", "/home/alice/pg"],
          copies=["/srv/data-mount/perf", "/home/alice/pg/perf"])
    _, severities, messages = audit(users)
    assert severities.get("state.untrusted") == "warning" and "/home/alice" in messages["state.untrusted"], severities
    removed = perfgroup(users, "remove", "--group", "perf_users", "--dry-run")
    assert "record item not trusted" in removed.stdout and "/srv/data-mount" in removed.stdout, removed.stdout
    healed = users.run(["/usr/local/sbin/perfgroup-node", "heal", "--group", "perf_users"])
    assert healed.returncode == 0, healed.stdout + healed.stderr
    assert users.ok("stat -c %U:%a /home/alice /home/alice/pg").split() == ["alice:700", "alice:755"]
    assert "state.untrusted" not in audit(users)[1]  # the healed record no longer names them
    removed = perfgroup(users, "remove", "--group", "perf_users")
    assert removed.returncode == 0, removed.stdout + removed.stderr
    assert users.ok("test -d /srv/data-mount && test -d /home/alice/pg && echo kept").strip() == "kept"


def test_a_forged_dest_in_a_users_home_is_refused_not_repaired(users: Node) -> None:
    """heal with a record whose destination and created dirs lie in alice's home: nothing there
    becomes root's, no privileged copy lands in it."""
    setup(users)
    users.ok("mkdir -p /home/alice/pg && chown -R alice /home/alice")
    record = json.loads(users.ok(f"cat {STATE}"))
    record.update(dest="/home/alice/pg/perf", created_dirs=["/home/alice", "/home/alice/pg"])
    users.path(STATE).write_text(json.dumps(record))
    healed = users.run(["/usr/local/sbin/perfgroup-node", "heal", "--group", "perf_users"])
    assert healed.returncode != 0 and len(healed.stderr.strip().splitlines()) == 1, healed.stdout + healed.stderr
    assert users.ok("stat -c %U /home/alice /home/alice/pg").split() == ["alice", "alice"]
    assert not users.path("/home/alice/pg/perf").exists()


def test_forged_tracefs_and_fstab_items_are_not_restored(users: Node) -> None:
    """remove restores only what setup could have recorded: never a tracefs mode others may
    write, never an fstab line that is not setup's edit of a tracefs entry."""
    setup(users)
    fstab_before = users.ok("cat /etc/fstab")
    record = json.loads(users.ok(f"cat {STATE}"))
    record["tracefs_before"] = [["/sys/kernel/tracing", 0o777, 0]]
    record["fstab_edits"] = [["proc /proc proc defaults 0 0", "/dev/evil / ext4 defaults 0 0"]]
    users.path(STATE).write_text(json.dumps(record))
    _, severities, messages = audit(users)
    assert "fstab edit" in messages.get("state.untrusted", "") or severities.get("state.untrusted"), severities
    removed = perfgroup(users, "remove", "--group", "perf_users")
    assert removed.returncode == 0, removed.stdout + removed.stderr
    assert users.ok("cat /etc/fstab") == fstab_before


def test_a_planted_fstab_journal_is_ignored(users: Node) -> None:
    """Review item 2: GROUP.fstab-edits was read with no owner check; a journal someone else
    owns (or an edit setup could not have made) never reaches the record or /etc/fstab."""
    users.ok("printf 'tracefs /sys/kernel/tracing tracefs defaults 0 0\\n' >> /etc/fstab")
    setup(users)
    fstab_after_setup = users.ok("cat /etc/fstab")
    journal = "/var/lib/perfgroup/perf_users.fstab-edits"
    users.path(journal).write_text("- tracefs /sys/kernel/tracing tracefs defaults 0 0\n+ /dev/evil / ext4 defaults 0 0\n")
    users.ok(f"chown bob {journal}")
    _, severities, messages = audit(users)
    assert "fstab-edits" in messages.get("state.untrusted", ""), severities
    setup(users)
    assert "/dev/evil" not in users.ok(f"cat {STATE}")
    users.ok(f"chown root {journal} && chmod 0600 {journal}")
    _, _, messages = audit(users)
    assert "setup could not have made" in messages.get("state.untrusted", ""), messages
    assert perfgroup(users, "remove", "--group", "perf_users").returncode == 0
    assert "/dev/evil" not in users.ok("cat /etc/fstab") and users.ok("cat /etc/fstab") != fstab_after_setup
