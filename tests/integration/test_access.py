"""Access the mode bits do not show, and what setup leaves behind (issue 10), for real in
throwaway nodes: each case shown open first, then refused, repaired or reported."""

from __future__ import annotations

import json
import subprocess
import time
from typing import Any

import pytest
from conftest import PERFGROUP
from node import ENV, Node

pytestmark = pytest.mark.integration

DEST = "/usr/local/libexec/perfgroup/perf_users/perf"
STATE = "/var/lib/perfgroup/perf_users.json"
PERF_A = ["stat", "-a", "-e", "cpu-clock", "--", "true"]


def perfgroup(node: Node, *args: str) -> Any:
    return node.run([PERFGROUP, *args])


def audit(node: Node, *args: str) -> tuple[int, dict[str, Any]]:
    result = perfgroup(node, "audit", "--json", *args)
    return result.returncode, json.loads(result.stdout)


def found(report: dict[str, Any]) -> dict[str, str]:
    return {f["id"]: f["severity"] for f in report["findings"]}


def setup(node: Node, *args: str) -> Any:
    result = perfgroup(node, "setup", "--member", "alice", *args)
    assert result.returncode == 0, result.stdout + result.stderr
    return result


def test_acl_on_the_copy_opens_it_until_setup_strips_it(users: Node) -> None:
    node = users
    setup(node)
    node.ok(f"setfacl -m u:bob:rx {DEST}")
    assert node.ok(f"stat -c %a {DEST}").strip() == "750"  # the mode bits do not show it
    assert node.run([DEST, *PERF_A], user="bob").returncode == 0  # bob profiles system-wide
    code, report = audit(node)
    assert found(report)["copy.acl"] == "critical" and code == 2
    assert "user:bob:r-x" in next(f["message"] for f in report["findings"] if f["id"] == "copy.acl")
    repair = setup(node)
    assert "ACL" in repair.stdout
    assert "user:bob" not in node.ok(f"getfacl -c {DEST}")
    refused = node.run([DEST, *PERF_A], user="bob")
    assert refused.returncode != 0 and "Permission denied" in refused.stderr
    assert node.run([DEST, *PERF_A], user="alice").returncode == 0
    assert audit(node)[0] == 0


def test_inherited_default_acl_does_not_open_the_copy(users: Node) -> None:
    node = users
    node.ok("mkdir -p /usr/local/libexec && setfacl -d -m u:bob:rwx /usr/local/libexec "
            "&& setfacl -d -m g:users:rwx /usr/local")
    setup(node)
    for path in ("/usr/local/libexec/perfgroup", "/usr/local/libexec/perfgroup/perf_users", DEST):
        acl = node.ok(f"getfacl -c {path}")
        assert "bob" not in acl and "users" not in acl, (path, acl)
    assert node.run([DEST, *PERF_A], user="bob").returncode != 0
    # The copy is clean, but the default ACLs above it (not perfgroup's to strip) are reported.
    code, report = audit(node)
    problems = {(f["id"], f["severity"], f["message"].split()[0]) for f in report["findings"] if f["severity"] != "ok"}
    assert problems == {("path.acl_other", "warning", "/usr/local"), ("path.acl_other", "warning", "/usr/local/libexec")}
    assert code == 1
    messages = " ".join(f["message"] for f in report["findings"] if f["id"] == "path.acl_other")
    assert "user:bob:rwx" in messages and "group:users:rwx" in messages
    node.ok("setfacl -k /usr/local/libexec && setfacl -k /usr/local")  # the fix the finding gives
    assert audit(node)[0] == 0


def test_hidden_holders_are_listed_and_the_password_locked(users: Node) -> None:
    node = users
    node.ok("useradd -M -s /bin/sh carol && useradd -M -s /bin/sh dave && useradd -M -s /bin/sh erin")
    setup(node)
    gid = node.ok("getent group perf_users").split(":")[2]
    node.ok(f"usermod -g {gid} erin")  # primary group
    node.ok("gpasswd -A dave perf_users")  # administrator: may add himself
    node.ok("sed -i 's/^\\(perf_users:[^:]*:[^:]*:\\).*/\\1alice,carol/' /etc/gshadow")  # member in gshadow only
    node.ok("echo 'perf_users:secret' | chgpasswd")
    code, report = audit(node)
    severities = found(report)
    assert severities["group.password"] == "critical" and code == 2
    assert severities["group.gshadow_members"] == "critical"  # newgrp lets carol in without a password
    assert severities["group.gshadow_admins"] == "critical"
    assert severities["group.primary_members"] == "warning"
    holders = {(h["user"], h["via"]) for h in report["holders"]}
    assert holders == {("alice", "member"), ("carol", "gshadow_member"), ("dave", "gshadow_admin"),
                       ("erin", "primary_gid")}
    repair = setup(node)
    assert "lock the group password" in repair.stdout
    assert node.ok("grep ^perf_users: /etc/gshadow").split(":")[1] == "!"
    assert "group.password" not in found(audit(node)[1])


GROUP_HASH = "$6$perfgrouptest$MdgUd1ygSb5WnvXObVF6m7Nb87wfSKQQCvQin9T99fR3TcWUvk4y6bq8fdOGTmw7bJnDhOvg09opUyzfnr1Eq0"  # "secret"


@pytest.mark.parametrize("gshadow", ["no line", "no file"])
def test_a_password_in_etc_group_is_found_and_locked(users: Node, gshadow: str) -> None:
    """Without a gshadow line for the group, newgrp/sg take the password from field 2 of /etc/group."""
    node = users
    setup(node)
    node.ok("sed -i '/^perf_users:/d' /etc/gshadow" if gshadow == "no line" else "mv /etc/gshadow /etc/gshadow.gone")
    node.ok(f"sed -i 's#^perf_users:x:#perf_users:{GROUP_HASH}:#' /etc/group")
    opened = node.sh(f"echo secret | sg perf_users -c '{DEST} {' '.join(PERF_A)}'", user="bob")
    assert opened.returncode == 0, opened.stderr  # non-member bob profiles system-wide with the password
    code, report = audit(node)
    assert found(report)["group.password"] == "critical" and code == 2
    assert "password in /etc/group" in next(f["message"] for f in report["findings"] if f["id"] == "group.password")
    repair = setup(node)
    assert "lock the group password" in repair.stdout
    # gpasswd -R: "!" in a new gshadow line and "x" in /etc/group, or "!" in /etc/group without gshadow.
    assert node.ok("grep ^perf_users: /etc/group").split(":")[1] == ("x" if gshadow == "no line" else "!")
    if gshadow == "no line":
        assert node.ok("grep ^perf_users: /etc/gshadow").split(":")[1] == "!"
    refused = node.sh(f"echo secret | sg perf_users -c '{DEST} {' '.join(PERF_A)}'", user="bob")
    assert refused.returncode != 0
    code, report = audit(node)
    assert "group.password" not in found(report) and code == 0, [f for f in report["findings"] if f["severity"] != "ok"]


def test_a_second_name_on_the_gid_is_critical_and_setup_refuses(users: Node) -> None:
    node = users
    setup(node)
    gid = node.ok("getent group perf_users").split(":")[2]
    node.ok(f"groupadd -o -g {gid} perf_twin && gpasswd -a bob perf_twin")
    assert node.run([DEST, *PERF_A], user="bob").returncode == 0  # bob holds the gid by another name
    code, report = audit(node)
    assert found(report)["group.duplicate_gid"] == "critical" and code == 2
    assert {"user": "bob", "via": "same_gid_group"} in report["holders"]
    before = node.snapshot()
    refused = perfgroup(node, "setup")
    assert refused.returncode == 2 and "shares gid" in refused.stderr
    assert len(refused.stderr.strip().splitlines()) == 1
    assert node.snapshot() == before


def test_processes_that_kept_the_capabilities_are_reported(users: Node) -> None:
    node = users
    setup(node, "--member", "bob")
    # bob's shell raised cap_perfmon as ambient (what `perf script` code of a member can do), then
    # left the group: the process keeps the capability.
    node.sh("capsh --caps='cap_perfmon+eip cap_setuid,cap_setgid+ep' --keep=1 --user=bob "
            "--addamb=cap_perfmon -- -c 'exec sleep 60' >/dev/null 2>&1 &")
    deadline = time.monotonic() + 10
    while node.sh("pgrep -u bob sleep").returncode != 0 and time.monotonic() < deadline:
        time.sleep(0.1)
    pid = node.ok("pgrep -u bob sleep").split()[0]
    assert "process.lingering" not in found(audit(node)[1])  # still a member: not reported
    removed = perfgroup(node, "members", "remove", "bob")
    assert removed.returncode == 0
    assert f"pid {pid} (bob: cap_perfmon)" in removed.stdout
    code, report = audit(node)
    # bob's sleep also kept the group's gid (capsh --user: his groups): that is critical on its own.
    assert found(report)["process.lingering"] == "warning"
    assert found(report)["process.holds_group"] == "critical" and code == 2
    gone = perfgroup(node, "remove")
    assert gone.returncode == 0 and f"pid {pid} (bob: cap_perfmon)" in gone.stdout
    node.ok(f"kill {pid}")


def test_changing_dest_leaves_no_privileged_copy_behind(users: Node) -> None:
    node = users
    old = "/usr/local/libexec/perfgroup/perf_users/perf"
    new = "/usr/local/libexec/perfgroup/tools/perf"
    setup(node, "--dest", old)
    gid = node.ok("getent group perf_users").split(":")[2]
    setup(node, "--dest", new)
    assert node.sh(f"test -e {old}").returncode != 0, "the old copy survived the move"
    assert json.loads(node.ok(f"cat {STATE}"))["copies"] == [old, new]
    code, report = audit(node)
    assert code == 0, [f for f in report["findings"] if f["severity"] != "ok"]
    # A later group reusing the gid finds nothing to run at the old path.
    assert perfgroup(node, "remove").returncode == 0
    assert node.sh(f"test -e {old} || test -e {new}").returncode != 0
    node.ok(f"groupadd -g {gid} later && gpasswd -a bob later")
    assert node.run([old, *PERF_A], user="bob").returncode != 0


def test_an_old_copy_planted_back_is_an_orphan_and_remove_deletes_it(users: Node) -> None:
    node = users
    setup(node)
    stray = "/usr/local/libexec/perfgroup/old/perf"
    node.ok(f"mkdir -p /usr/local/libexec/perfgroup/old && cp {DEST} {stray} && chgrp perf_users {stray} "
            f"&& chmod 0750 {stray} && setcap cap_perfmon=ep {stray}")
    code, report = audit(node)
    assert found(report)["copy.orphan"] == "critical" and code == 2
    assert perfgroup(node, "remove").returncode == 0
    assert node.sh(f"test -e {stray}").returncode != 0


def test_remove_with_a_forged_record_deletes_nothing_it_names(users: Node) -> None:
    node = users
    setup(node)
    record = json.loads(node.ok(f"cat {STATE}"))
    record["copies"] = ["/etc/hostname", "/usr/bin/perf", *record["copies"]]
    record["files"]["/etc/passwd"] = "0" * 64
    node.path(STATE).write_text(json.dumps(record))
    node.ok(f"chmod 0644 {STATE}")
    result = perfgroup(node, "remove")
    assert result.returncode == 0, result.stderr
    for path in ("/etc/hostname", "/etc/passwd", "/usr/bin/perf"):
        assert node.sh(f"test -s {path}").returncode == 0, f"remove deleted {path}"
    assert node.sh(f"test -e {DEST}").returncode != 0


def test_a_record_owned_by_a_user_is_refused_reported_and_not_trusted(users: Node) -> None:
    node = users
    setup(node)
    node.ok(f"chown bob {STATE}")
    code, report = audit(node)
    assert found(report)["state.unsafe"] == "critical" and code == 2
    before = node.snapshot()
    for command in ("setup", "remove"):
        refused = perfgroup(node, command)
        assert refused.returncode == 2 and "cannot be trusted" in refused.stderr, refused.stderr
        assert len(refused.stderr.strip().splitlines()) == 1
    assert node.snapshot() == before


def test_names_from_the_group_database_are_printed_escaped(users: Node) -> None:
    """A member name with a terminal escape sequence and a carriage return (written straight into
    /etc/group and /etc/gshadow, as any tool or hand edit can), and a planted copy whose file name
    carries one: every text output shows them escaped, none prints a raw control byte."""
    node = users
    setup(node)
    esc = "$(printf '\\033')"
    node.ok(f"sed -i \"s/^perf_users:.*/&,{esc}[31mmallory/\" /etc/group")
    node.ok(f"sed -i \"s/^\\(perf_users:[^:]*:[^:]*:\\).*/\\1alice,{esc}[31mmallory,$(printf '\\r')carol/\" /etc/gshadow")
    planted = f"/usr/local/libexec/perfgroup/{esc}[2Jold"
    node.ok(f"cp {DEST} \"{planted}\" && setcap cap_perfmon=ep \"{planted}\"")
    outputs = {}
    for what in ("audit", "members list", "setup --dry-run"):
        # Bytes, as a terminal gets them (text mode would turn a raw CR into a newline).
        result = subprocess.run(node.argv([PERFGROUP, *what.split()]), env=ENV, capture_output=True, check=False)
        for stream in (result.stdout, result.stderr):
            assert b"\x1b" not in stream and b"\r" not in stream and b"\x9b" not in stream, (what, stream)
        outputs[what] = result.stdout.decode()
    audit_text = outputs["audit"]
    assert "\\rcarol" in audit_text and "\\x1b[2Jold" in audit_text
    assert "  \\x1b[31mmallory" in outputs["members list"].splitlines()
    assert "\\x1b[2Jold" in outputs["setup --dry-run"]
