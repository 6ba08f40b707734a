"""One node, for real: setup, audit, verify, drift and repair, remove, inside throwaway nodes."""

from __future__ import annotations

import json
from typing import Any

import pytest
from conftest import PERFGROUP, PYTHON
from node import Node

pytestmark = pytest.mark.integration

DEST = "/usr/local/libexec/perfgroup/perf_users/perf"
PROFILE = "/etc/profile.d/perfgroup-perf_users.sh"
SYSCTL = "/etc/sysctl.d/90-perfgroup-perf_users.conf"
STATE = "/var/lib/perfgroup/perf_users.json"
PERF_A = ["stat", "-a", "-e", "cpu-clock", "--", "true"]


def perfgroup(node: Node, *args: str) -> Any:
    return node.run([PERFGROUP, *args])


def audit_json(node: Node) -> tuple[int, dict[str, Any]]:
    result = perfgroup(node, "audit", "--json")
    return result.returncode, json.loads(result.stdout)


def ids(report: dict[str, Any], severity: str | None = None) -> set[str]:
    return {f["id"] for f in report["findings"] if severity is None or f["severity"] == severity}


def users(node: Node) -> None:
    node.ok("useradd -M -s /bin/sh alice && useradd -M -s /bin/sh bob")


def converged(node: Node, *extra: str) -> Any:
    users(node)
    result = perfgroup(node, "setup", "--group", "perf_users", "--member", "alice", *extra)
    assert result.returncode == 0, result.stdout + result.stderr
    return result


def test_setup_converges_verifies_and_audits_clean(node: Node) -> None:
    result = converged(node)
    assert "verified" in result.stdout
    assert "cap_perfmon" in result.stdout
    # The plan opens with what changes for everyone on the node.
    top = result.stdout.splitlines()[:5]
    assert top[0] == "machine-wide (for everyone on this node, not only members):", top
    assert any(line.startswith("  - /usr/local/bin/perf in front of every user's perf") for line in top), top
    code, report = audit_json(node)
    assert code == 0, report
    assert report["status"] == "ok"
    assert {"group.present", "copy.ok", "caps.ok", "path.ok", "paranoid.ok", "copy.current"} <= ids(report, "ok")
    getcap = node.ok(f"getcap {DEST}")
    assert "cap_ipc_lock,cap_syslog,cap_perfmon=ep" in getcap
    assert node.ok(f"stat -c '%U %G %a %h' {DEST}").split() == ["root", "perf_users", "750", "1"]
    assert "kernel.perf_event_paranoid = 2" in node.ok(f"cat {SYSCTL}")
    state = json.loads(node.ok(f"cat {STATE}"))
    assert state["group_created"] is True and state["caps"] == ["cap_ipc_lock", "cap_perfmon", "cap_syslog"]


def test_member_profiles_non_member_cannot_stock_perf_still_refuses(node: Node) -> None:
    converged(node)
    member = node.run([DEST, *PERF_A], user="alice")
    assert member.returncode == 0, member.stderr
    assert "cpu-clock" in member.stderr
    outsider = node.run([DEST, *PERF_A], user="bob")
    assert outsider.returncode != 0
    assert "Permission denied" in outsider.stderr
    stock = node.run(["/usr/bin/perf", *PERF_A], user="alice")
    assert stock.returncode != 0
    assert "perf_event_paranoid" in stock.stderr
    # The profile.d snippet puts the privileged perf first on PATH for members only.
    which = f". {PROFILE}; command -v perf"
    assert node.sh(which, user="alice").stdout.strip() == DEST
    # Everyone else finds the wrapper, which hands them the stock perf and its usual error.
    assert node.sh(which, user="bob").stdout.strip() == "/usr/local/bin/perf"
    wrapped = node.sh(f"perf {' '.join(PERF_A)}", user="bob")
    assert wrapped.returncode != 0 and "perf_event_paranoid" in wrapped.stderr, wrapped.stderr
    first = wrapped.stderr.splitlines()[0]
    assert first.startswith("perf: system-wide and kernel profiling is for members of group perf_users; ask"), first
    assert "Permission denied" not in wrapped.stderr
    # Members get the privileged perf from the wrapper in a non-login shell (no profile.d).
    assert node.sh(f"perf {' '.join(PERF_A)}", user="alice").returncode == 0


def test_audit_needs_no_root(node: Node) -> None:
    converged(node)
    # The test interpreter may live under /root (pyenv): let users reach it, inside this node only.
    node.ok("chmod o+x /root")
    result = node.run([PERFGROUP, "audit", "--json"], user="bob")  # e.g. the monitoring account
    report = json.loads(result.stdout)
    # Nodes share this machine's PID namespace, and bob may not read another user's /proc/PID/root:
    # a privileged perf that another test (another node) runs at this moment is, to bob, a process
    # that holds the capabilities, and a process of another node holding that node's group may hold
    # this node's gid number. Those findings are honest; everything else must be OK.
    others = [f for f in report["findings"] if f["severity"] != "ok"
              and f["id"] not in ("process.lingering", "process.holds_group")]
    assert others == [], result.stdout + result.stderr
    assert result.returncode == {"ok": 0, "warning": 1, "critical": 2}[report["status"]], result.stdout + result.stderr
    refused = node.run([PERFGROUP, "setup"], user="bob")
    assert refused.returncode == 2 and "run it as root" in refused.stderr
    node.ok(f"cat /bin/ls > {DEST}")  # tampered: bob may not read it, but sees that it changed
    tampered = json.loads(node.run([PERFGROUP, "audit", "--json"], user="bob").stdout)
    assert "copy.unverifiable" in ids(tampered, "warning") and "caps.missing" in ids(tampered, "critical")


def test_second_setup_changes_nothing(node: Node) -> None:
    converged(node)
    before = node.snapshot()
    again = perfgroup(node, "setup", "--group", "perf_users", "--member", "alice")
    assert again.returncode == 0, again.stderr
    assert "nothing to change" in again.stdout
    assert "unchanged" in again.stdout
    assert node.snapshot() == before


def test_dry_run_changes_nothing(node: Node) -> None:
    users(node)
    before = node.snapshot()
    result = perfgroup(node, "setup", "--member", "alice", "--dry-run")
    assert result.returncode == 0, result.stderr
    assert "would change" in result.stdout and "create group perf_users" in result.stdout
    assert node.snapshot() == before
    report = json.loads(perfgroup(node, "setup", "--dry-run", "--json").stdout)
    assert report["dry_run"] is True and report["changed"] is False and report["plan"]
    assert node.snapshot() == before


GROUP_HASH = "$6$perfgrouptest$MdgUd1ygSb5WnvXObVF6m7Nb87wfSKQQCvQin9T99fR3TcWUvk4y6bq8fdOGTmw7bJnDhOvg09opUyzfnr1Eq0"  # "secret"
DRIFTS = [
    # (label for the README, what is done to a converged node, finding id, its severity, audit exit code)
    ("copy o+x", f"chmod o+x {DEST}", "copy.world_access", "critical", 2),
    ("copy g+w", f"chmod g+w {DEST}", "copy.group_writable", "critical", 2),
    ("copy setuid", f"chmod u+s {DEST}", "copy.setid", "critical", 2),
    ("extra cap_sys_admin", f"setcap cap_perfmon,cap_sys_admin=ep {DEST}", "caps.excessive", "critical", 2),
    ("extra cap_sys_ptrace", f"setcap cap_perfmon,cap_syslog,cap_ipc_lock,cap_sys_ptrace=ep {DEST}", "caps.excessive", "critical", 2),
    ("cap_syslog removed", f"setcap cap_perfmon,cap_ipc_lock=ep {DEST}", "kptr_restrict.no_syslog", "warning", 1),
    ("capabilities removed", f"setcap -r {DEST}", "caps.missing", "critical", 2),
    ("capabilities without the effective bit", f"setcap cap_perfmon=p {DEST}", "caps.not_effective", "critical", 2),
    ("binary rewritten in place", f"cat /bin/ls > {DEST}", "copy.modified", "critical", 2),
    ("binary replaced by rename", f"cp /bin/ls {DEST}.new && chgrp perf_users {DEST}.new && chmod 0750 {DEST}.new && mv {DEST}.new {DEST}",
     "copy.modified", "critical", 2),
    ("copy's directory o+w", "chmod o+w /usr/local/libexec/perfgroup/perf_users", "path.unsafe", "critical", 2),
    ("install root user-owned", "chown nobody /usr/local/libexec/perfgroup", "path.unsafe", "critical", 2),
    ("hard link elsewhere", f"ln {DEST} /usr/local/libexec/perfgroup/other-name", "copy.hardlinked", "warning", 1),
    ("copy's group changed", f"chgrp root {DEST}", "copy.group", "critical", 2),
    ("profile.d snippet deleted", f"rm {PROFILE}", "profile.missing", "warning", 1),
    ("profile.d snippet edited", f"echo 'PATH=/tmp:$PATH' >> {PROFILE}", "profile.modified", "critical", 2),
    ("sysctl drop-in edited", f"sed -i 's/= 2/= 0/' {SYSCTL}", "sysctl.modified", "critical", 2),
    ("copy deleted", f"rm {DEST}", "copy.missing", "critical", 2),
    ("v3 namespaced capabilities", "/usr/bin/python3 -c \"import os, struct; os.setxattr('" + DEST + "', 'security.capability', "
     "struct.pack('<6I', 0x03000001, 0, 0, 1 << 6, 0, 100000))\"", "caps.namespaced", "critical", 2),
    ("group's gid changed", "groupmod -g 4444 perf_users", "copy.group", "critical", 2),
    ("group renamed", "groupmod -n perf_old perf_users", "group.missing", "critical", 2),
    ("source perf upgraded", "printf x >> /usr/bin/perf", "copy.stale", "warning", 1),
    ("copy setgid", f"chmod g+s {DEST}", "copy.setid", "critical", 2),
    # Access the mode bits do not show (issue 10): setup strips the ACL, the copy keeps mode 0750.
    ("ACL on the copy (named user)", f"setfacl -m u:bob:rx {DEST}", "copy.acl", "critical", 2),
    ("ACL on the copy (named group)", f"setfacl -m g:users:rx {DEST}", "copy.acl", "critical", 2),
    ("write ACL on the copy's directory", "setfacl -m u:bob:rwx /usr/local/libexec/perfgroup/perf_users", "path.acl", "critical", 2),
    ("default ACL on the copy's directory", "setfacl -d -m u:bob:rwx /usr/local/libexec/perfgroup/perf_users", "path.acl_default", "warning", 1),
    ("read-only named-user ACL on the copy's directory", "setfacl -m u:bob:rx /usr/local/libexec/perfgroup/perf_users", "path.acl_other", "warning", 1),
    ("group password in /etc/gshadow", "echo 'perf_users:secret' | chgpasswd", "group.password", "critical", 2),
    # No gshadow line (or no /etc/gshadow): newgrp/sg take the password from field 2 of /etc/group.
    ("group password in /etc/group (no gshadow line)", f"sed -i '/^perf_users:/d' /etc/gshadow && sed -i 's#^perf_users:x:#perf_users:{GROUP_HASH}:#' /etc/group",
     "group.password", "critical", 2),
    ("group password in /etc/group (no /etc/gshadow)", f"mv /etc/gshadow /etc/gshadow.gone && sed -i 's#^perf_users:x:#perf_users:{GROUP_HASH}:#' /etc/group",
     "group.password", "critical", 2),
    ("stray copy with capabilities beside the copy", f"cp {DEST} /usr/local/libexec/perfgroup/perf_users/perf.old && setcap cap_perfmon=ep "
     "/usr/local/libexec/perfgroup/perf_users/perf.old", "copy.orphan", "critical", 2),
    ("stray file with capabilities under the install root", "cp /bin/true /usr/local/libexec/perfgroup/stray && setcap cap_sys_admin=ep /usr/local/libexec/perfgroup/stray",
     "copy.orphan", "critical", 2),
    ("state directory o+w", "chmod o+w /var/lib/perfgroup", "state.unsafe", "critical", 2),
    ("record g+w", f"chmod g+w {STATE}", "state.unsafe", "critical", 2),
]


@pytest.mark.parametrize(("drift", "finding", "severity", "code"), [d[1:] for d in DRIFTS], ids=[d[0] for d in DRIFTS])
def test_drift_is_found_and_repaired(node: Node, drift: str, finding: str, severity: str, code: int) -> None:
    converged(node)
    node.ok(drift)
    got, report = audit_json(node)
    assert finding in ids(report, severity), report
    assert got == code, report
    # --member: after a rename the re-created group starts empty; everywhere else it is a no-op.
    repair = perfgroup(node, "setup", "--group", "perf_users", "--member", "alice")
    assert repair.returncode == 0, repair.stdout + repair.stderr
    got, report = audit_json(node)
    assert got == 0, [f for f in report["findings"] if f["severity"] != "ok"]
    assert node.run([DEST, *PERF_A], user="alice").returncode == 0


def test_paranoid_lowered_at_runtime_is_found_and_raised(make_node: Any) -> None:
    node = make_node(sysctls={"kernel/perf_event_paranoid": "2"})
    converged(node)
    (node.fake / "kernel_perf_event_paranoid").write_text("-1\n")  # someone ran sysctl -w ...=-1
    code, report = audit_json(node)
    assert "paranoid.low" in ids(report, "critical") and code == 2
    assert perfgroup(node, "setup").returncode == 0
    assert node.ok("cat /proc/sys/kernel/perf_event_paranoid").strip() == "2"
    assert audit_json(node)[0] == 0


def test_hard_link_left_behind_loses_its_privilege(node: Node) -> None:
    converged(node)
    node.ok(f"ln {DEST} /usr/local/libexec/perfgroup/stray")
    assert perfgroup(node, "setup").returncode == 0
    # The old inode lives on under the stray name, but without capabilities or exec bits.
    assert node.ok("getcap /usr/local/libexec/perfgroup/stray").strip() == ""
    assert node.ok("stat -c %a /usr/local/libexec/perfgroup/stray").strip() == "600"


def test_remove_leaves_no_trace(node: Node) -> None:
    users(node)
    group_before = node.ok("cat /etc/group")
    converged_result = perfgroup(node, "setup", "--member", "alice")
    assert converged_result.returncode == 0
    result = perfgroup(node, "remove", "--group", "perf_users")
    assert result.returncode == 0, result.stderr
    for path in (DEST, "/usr/local/libexec/perfgroup", PROFILE, SYSCTL, STATE):
        assert node.sh(f"test -e {path}").returncode != 0, f"{path} survived remove"
    assert node.sh("getent group perf_users").returncode != 0
    assert node.ok("cat /etc/group") == group_before
    again = perfgroup(node, "remove", "--group", "perf_users")
    assert again.returncode == 0, again.stderr  # nothing left to remove is success, as --help says
    assert "nothing to remove" in again.stdout


def test_remove_keeps_an_adopted_group_and_its_other_members(node: Node) -> None:
    users(node)
    node.ok("groupadd --gid 4242 perf_users && gpasswd -a bob perf_users")
    assert perfgroup(node, "setup", "--member", "alice").returncode == 0
    assert perfgroup(node, "remove").returncode == 0
    entry = node.ok("getent group perf_users").strip()
    assert entry == "perf_users:x:4242:bob"


def test_remove_undoes_members_added_later_to_an_adopted_group(node: Node) -> None:
    users(node)
    node.ok("groupadd --gid 4242 perf_users")
    assert perfgroup(node, "setup").returncode == 0
    assert perfgroup(node, "members", "add", "alice", "bob").returncode == 0
    assert perfgroup(node, "members", "remove", "bob").returncode == 0
    assert json.loads(node.ok(f"cat {STATE}"))["members_added"] == ["alice"]
    assert perfgroup(node, "remove").returncode == 0
    assert node.ok("getent group perf_users").strip() == "perf_users:x:4242:"


def test_kernel_without_perfmon_gets_the_sys_admin_fallback(make_node: Any) -> None:
    node = make_node(sysctls={"kernel/cap_last_cap": "37"})
    before = node.snapshot()
    refused = perfgroup(node, "setup")
    assert refused.returncode == 2 and "per-job access" in refused.stderr and "--allow-root-equivalent" in refused.stderr
    assert "lowering perf_event_paranoid" in refused.stderr and len(refused.stderr.strip().splitlines()) == 1
    assert node.snapshot() == before
    result = converged(node, "--allow-root-equivalent")
    assert "kernel has no CAP_PERFMON" in result.stdout and "MEMBERS CAN BECOME ROOT" in result.stdout
    caps = node.ok(f"getcap {DEST}")
    assert "cap_sys_ptrace,cap_sys_admin,cap_syslog=ep" in caps
    code, report = audit_json(node)
    assert code == 1, report  # opted in, and still said: every member can become root
    assert "caps.root_equivalent" in ids(report, "warning") and "caps.ok" in ids(report, "ok")


def test_low_paranoid_is_raised_live_and_persisted(make_node: Any) -> None:
    node = make_node(sysctls={"kernel/perf_event_paranoid": "1"})
    users(node)
    _code, report = audit_json(node)
    assert "paranoid.low" in ids(report, "critical")
    result = perfgroup(node, "setup", "--member", "alice")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "raise kernel.perf_event_paranoid 1 -> 2" in result.stdout
    assert node.ok("cat /proc/sys/kernel/perf_event_paranoid").strip() == "2"
    assert audit_json(node)[0] == 0


def test_keep_paranoid_leaves_it_alone(make_node: Any) -> None:
    node = make_node(sysctls={"kernel/perf_event_paranoid": "1"})
    users(node)
    result = perfgroup(node, "setup", "--member", "alice", "--keep-paranoid")
    assert result.returncode == 0, result.stdout + result.stderr
    assert node.ok("cat /proc/sys/kernel/perf_event_paranoid").strip() == "1"
    assert node.sh(f"test -e {SYSCTL}").returncode != 0
    code, report = audit_json(node)
    assert code == 1 and "paranoid.low" in ids(report, "warning")


def test_nosuid_destination_is_refused_and_nothing_changes(make_node: Any) -> None:
    node = make_node(nosuid_dirs=("/opt/nosuid",))
    users(node)
    before = node.snapshot()
    result = perfgroup(node, "setup", "--dest", "/opt/nosuid/perf")
    assert result.returncode == 2
    assert "nosuid" in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert node.snapshot() == before


def test_nosuid_is_a_critical_audit_finding(make_node: Any) -> None:
    node = make_node(nosuid_dirs=("/usr/local/libexec/perfgroup",))
    converged_result = perfgroup(node, "setup", "--dest", "/usr/local/libexec/perfgroup/perf_users/perf")
    assert converged_result.returncode == 2  # refused: caps would be ignored
    code, report = audit_json(node)
    assert "mount.nosuid" in ids(report, "critical") and code == 2


def test_missing_perf_names_the_package(make_node: Any) -> None:
    node = make_node(without_perf=True)
    before = node.snapshot()
    result = perfgroup(node, "setup")
    assert result.returncode == 2
    assert "apt-get install -y linux-perf" in result.stderr
    assert node.snapshot() == before


def test_explicit_caps_override_is_kept_until_auto(node: Node) -> None:
    converged(node, "--caps", "cap_perfmon,cap_syslog")
    assert node.ok(f"getcap {DEST}").split()[-1] == "cap_syslog,cap_perfmon=ep"
    # Without cap_ipc_lock members are held to the mlock budget: audit says so, nothing else.
    code, report = audit_json(node)
    assert code == 1 and [f["id"] for f in report["findings"] if f["severity"] != "ok"] == ["mlock.budget"]
    assert perfgroup(node, "setup").returncode == 0  # no --caps: the recorded override stays
    assert node.ok(f"getcap {DEST}").split()[-1] == "cap_syslog,cap_perfmon=ep"
    assert perfgroup(node, "setup", "--caps", "auto").returncode == 0
    assert node.ok(f"getcap {DEST}").split()[-1] == "cap_ipc_lock,cap_syslog,cap_perfmon=ep"


def test_bad_input_is_refused_with_one_line_and_no_change(node: Node) -> None:
    before = node.snapshot()
    cases = [
        (["setup", "--group", "root"], 2),
        (["setup", "--group", "bad:name"], 2),
        (["setup", "--member", "nosuchuser"], 2),
        (["setup", "--caps", "all"], 2),
        (["setup", "--caps", "cap_setuid"], 2),
        (["setup", "--dest", "/tmp/perf"], 2),
        (["setup", "--dest", "/usr/bin/perf"], 2),
        (["setup", "--perf", "/bin/sh"], 2),
        (["audit", "--nonsense"], 3),
        (["audit", "--group", "bad/name"], 3),
    ]
    for args, code in cases:
        result = perfgroup(node, *args)
        assert result.returncode == code, (args, result.stderr)
        assert len(result.stderr.strip().splitlines()) >= 1
        assert node.snapshot() == before, args


def test_members_add_list_remove(node: Node) -> None:
    converged(node)
    assert perfgroup(node, "members", "add", "bob").returncode == 0
    listing = json.loads(perfgroup(node, "members", "list", "--json").stdout)
    assert listing["members"] == ["alice", "bob"]
    assert perfgroup(node, "members", "remove", "alice").returncode == 0
    assert json.loads(perfgroup(node, "members", "list", "--json").stdout)["members"] == ["bob"]
    assert perfgroup(node, "members", "add", "ghost").returncode == 2


def test_members_sync_and_members_exclusive_make_the_list_authoritative(node: Node) -> None:
    converged(node)  # alice, added by setup
    node.ok("useradd -M -s /bin/sh carol && gpasswd -a bob perf_users >/dev/null")  # bob: added by hand
    before = node.snapshot()
    dry = perfgroup(node, "members", "sync", "carol", "--dry-run")
    assert "would remove bob from perf_users" in dry.stdout and "would add carol" in dry.stdout, dry.stdout
    assert node.snapshot() == before
    synced = perfgroup(node, "members", "sync", "carol")
    assert synced.returncode == 0, synced.stderr
    assert "added: carol" in synced.stdout and "removed: alice, bob" in synced.stdout, synced.stdout
    assert json.loads(perfgroup(node, "members", "list", "--json").stdout)["members"] == ["carol"]
    record = json.loads(node.ok("cat /var/lib/perfgroup/perf_users.json"))
    assert record["members_added"] == ["carol"]  # so remove takes carol out, and only carol
    refused = perfgroup(node, "members", "sync")
    assert refused.returncode == 2  # click: USERS required; the engine refuses an empty list too
    # The same through setup (the role's perf_users_members_exclusive): the default only adds.
    added = perfgroup(node, "setup", "--member", "alice", "--no-verify")
    assert added.returncode == 0
    assert json.loads(perfgroup(node, "members", "list", "--json").stdout)["members"] == ["alice", "carol"]
    exclusive = perfgroup(node, "setup", "--member", "alice", "--members-exclusive", "--no-verify")
    assert exclusive.returncode == 0 and "remove carol from perf_users" in exclusive.stdout, exclusive.stdout
    assert json.loads(perfgroup(node, "members", "list", "--json").stdout)["members"] == ["alice"]
    none = perfgroup(node, "setup", "--members-exclusive", "--no-verify")
    assert none.returncode == 2 and "would remove every member" in none.stderr


def test_functional_audit_and_verify(node: Node) -> None:
    converged(node)
    result = perfgroup(node, "audit", "--functional", "--json")
    report = json.loads(result.stdout)
    assert {"verify.member", "verify.non_member"} <= ids(report, "ok"), report
    node.ok(f"chmod o+x {DEST}")
    verify = perfgroup(node, "verify")
    assert verify.returncode == 1
    assert "ALLOWED" in verify.stdout


def test_a_failed_record_step_is_reported_as_a_change_and_the_next_run_finishes(make_node: Any) -> None:
    """Everything applied, then the last step (the record) fails: the run says `changed`, names
    the step and what was applied, and exits 1; the next run finishes the job, and its record
    still knows what the failed run created (group, member, directories, paranoid before), so
    remove undoes all of it."""
    # The state directory is a full disk: one 4 KiB page of tmpfs, enough for the small intent
    # setup writes before its first change, not for the record (root-owned 0755: not unsafe).
    node = make_node(extra_setup='mkdir -p "$R/var/lib/perfgroup" && mount -t tmpfs -o size=4k,mode=0755 pg "$R/var/lib/perfgroup"')
    users(node)
    result = perfgroup(node, "setup", "--member", "alice", "--json")
    assert result.returncode == 1, result.stdout + result.stderr
    report = json.loads(result.stdout)
    assert report["changed"] is True and report["failed_step"] == "write_state"
    assert {"install_copy", "create_group", "add_member"} <= {a["kind"] for a in report["applied"]}
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "write_state" in lines[0] and "applied before it" in lines[0], lines
    assert node.ok("ls /var/lib/perfgroup").split() == ["perf_users.pending"]
    node.ok("mount -o remount,size=1m /var/lib/perfgroup")
    again = perfgroup(node, "setup", "--member", "alice")
    assert again.returncode == 0, again.stdout + again.stderr
    assert "changed: setup record written" in again.stdout
    assert audit_json(node)[0] == 0
    record = json.loads(node.ok("cat /var/lib/perfgroup/perf_users.json"))
    assert record["group_created"] is True and record["members_added"] == ["alice"], record
    assert "/usr/local/libexec/perfgroup" in record["created_dirs"], record
    assert node.ok("ls /var/lib/perfgroup").split() == ["perf_users.json"]  # the intent is gone
    removed = perfgroup(node, "remove", "--group", "perf_users")
    assert removed.returncode == 0, removed.stdout + removed.stderr
    assert node.run(["getent", "group", "perf_users"]).returncode != 0  # the group it created is gone
    assert node.run(["test", "-e", "/usr/local/libexec/perfgroup"]).returncode != 0


def test_remove_after_a_failed_run_undoes_what_the_record_never_heard_of(node: Node) -> None:
    """An adopted group, converged; then a run that adds a member fails before its record: remove
    (without a second setup) still takes that member out, because it folds the intent in."""
    node.ok("groupadd perf_users")
    converged(node)
    record_path = "/var/lib/perfgroup/perf_users.json"
    # The record cannot be replaced (a read-only bind mount of the file: rename onto it fails).
    node.ok(f"mount --bind {record_path} {record_path} && mount -o remount,bind,ro {record_path}")
    try:
        failed = perfgroup(node, "setup", "--member", "alice", "--member", "bob", "--json")
    finally:
        node.ok(f"umount {record_path}")
    assert failed.returncode == 1, failed.stdout + failed.stderr
    assert json.loads(failed.stdout)["failed_step"] == "write_state"
    assert "bob" in node.ok("getent group perf_users")
    assert "bob" not in json.loads(node.ok(f"cat {record_path}"))["members_added"]
    removed = perfgroup(node, "remove", "--group", "perf_users")
    assert removed.returncode == 0, removed.stdout + removed.stderr
    assert node.ok("getent group perf_users").strip() == "perf_users:x:" + node.ok("getent group perf_users").split(":")[2] + ":"
    assert node.run(["test", "-e", "/var/lib/perfgroup/perf_users.pending"]).returncode != 0


# The CLI as installed, with one engine function replaced by a bug: a non-OSError exception after
# every action was applied (the only way to have it: the engine raises none on purpose).
BROKEN_RECORD = """
import sys
from perfgroup.engine import converge
def build_state(*args, **kwargs):
    raise AttributeError("'NoneType' object has no attribute 'gid'")
converge.build_state = build_state
from perfgroup.quick import main
sys.argv[0] = "perfgroup"
main()
"""


@pytest.mark.parametrize("as_json", [False, True])
def test_an_unexpected_error_after_applied_steps_is_reported_as_a_change_and_the_next_run_finishes(
        node: Node, as_json: bool) -> None:
    users(node)
    result = node.run([PYTHON, "-c", BROKEN_RECORD, "setup", "--member", "alice", *(["--json"] if as_json else [])])
    assert result.returncode == 1, result.stdout + result.stderr  # EXIT_TABLES["setup"]: failed
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    assert "at step record: unexpected AttributeError: 'NoneType' object has no attribute 'gid'" in lines[0], lines
    assert "applied before it: " in lines[0] and f"install /usr/bin/perf as {DEST}" in lines[0], lines
    if as_json:
        report = json.loads(result.stdout)
        assert report["changed"] is True and report["failed_step"] == "record", report
        assert "install_copy" in {a["kind"] for a in report["applied"]}
    else:
        assert "changed: " in result.stdout and "steps applied before the failure" in result.stdout, result.stdout
    assert node.run(["test", "-e", STATE]).returncode == 1
    again = perfgroup(node, "setup", "--member", "alice")
    assert again.returncode == 0, again.stdout + again.stderr
    assert "changed: setup record written" in again.stdout
    assert audit_json(node)[0] == 0
