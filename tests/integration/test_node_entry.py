"""The node-side entry point (/usr/local/sbin/perfgroup-node) and what setup installs with it
(boot unit and its enablement, APT hook), for real in throwaway nodes: same audit as the CLI in
every format, heal from the record, the APT hook refreshing the copy after a perf upgrade."""

from __future__ import annotations

import hashlib
import json
import os
import shlex
from pathlib import Path
from typing import Any

import pytest
from conftest import PERFGROUP
from node import Node

pytestmark = pytest.mark.integration

NODE = "/usr/local/sbin/perfgroup-node"
DEST = "/usr/local/libexec/perfgroup/perf_users/perf"
STATE = "/var/lib/perfgroup/perf_users.json"
UNIT = "/etc/systemd/system/perfgroup-heal-perf_users.service"
WANTS = "/etc/systemd/system/multi-user.target.wants/perfgroup-heal-perf_users.service"
APT_HOOK = "/etc/apt/apt.conf.d/80perfgroup-perf_users"
PY38 = "/root/.pyenv/versions/3.8.18/bin/python"


def setup_node(node: Node) -> None:
    node.ok("useradd -M -s /bin/sh alice && useradd -M -s /bin/sh bob")
    result = node.run([PERFGROUP, "setup", "--group", "perf_users", "--member", "alice"])
    assert result.returncode == 0, result.stdout + result.stderr


def node_cli(node: Node, *args: str, python: str | None = None) -> Any:
    argv = [python, "-I", NODE] if python else [NODE]
    return node.run([*argv, *args])


def ids(report: dict[str, Any], severity: str | None = None) -> set[str]:
    return {f["id"] for f in report["findings"] if severity is None or f["severity"] == severity}


def test_setup_installs_entry_point_boot_unit_and_apt_hook_and_records_them(node: Node) -> None:
    setup_node(node)
    assert node_cli(node, "audit", "--group", "perf_users").returncode == 0  # python writes its bytecode cache
    state = json.loads(node.ok(f"cat {STATE}"))
    for path in (NODE, UNIT, WANTS, APT_HOOK, "/usr/local/lib/perfgroup/perfgroup_engine/node_main.py"):
        assert path in state["files"], path
    assert node.ok(f"readlink {WANTS}").strip() == UNIT
    assert node.ok(f"stat -c '%U %a' {NODE}").split() == ["root", "755"]
    assert f"ExecStart={NODE} heal --group perf_users" in node.ok(f"cat {UNIT}")
    assert node.ok(f"head -1 {NODE}").strip() == "#!/usr/bin/python3 -IS"
    # The unit as systemd reads it (syntax, ExecStart exists and is executable).
    check = node.sh(f"systemd-analyze verify --man=no {UNIT} 2>&1 | grep -v -e 'Cannot add dependency' -e slurmd -e nhc"
                    " -e 'sys-kernel-tracing' -e 'Failed to' || true")
    assert "perfgroup-heal" not in check.stdout, check.stdout
    again = node.run([PERFGROUP, "setup", "--group", "perf_users", "--member", "alice", "--json"])
    assert again.returncode == 0 and json.loads(again.stdout)["changed"] is False, again.stdout
    removed = node.run([PERFGROUP, "remove", "--group", "perf_users"])
    assert removed.returncode == 0, removed.stderr
    for path in (NODE, UNIT, WANTS, APT_HOOK, "/usr/local/lib/perfgroup/perfgroup_engine/node_main.py"):
        assert node.sh(f"test -e {path} || test -L {path}").returncode != 0, path
    assert node.sh("test -e /usr/local/lib/perfgroup").returncode != 0, node.ok("find /usr/local/lib/perfgroup")


@pytest.mark.parametrize("python", [None, PY38])
def test_node_audit_is_the_cli_audit_in_every_format_without_click_or_jinja2(node: Node, python: str | None) -> None:
    if python and not os.path.exists(python):
        pytest.skip(f"{python} missing")
    setup_node(node)
    cli = node.run([PERFGROUP, "audit", "--json"])
    mine = node_cli(node, "audit", "--group", "perf_users", "--format", "json", python=python)
    assert (mine.returncode, cli.returncode) == (0, 0), mine.stderr
    assert json.loads(mine.stdout) == json.loads(cli.stdout)
    nagios = node_cli(node, "audit", "--group", "perf_users", "--format", "nagios", python=python)
    assert nagios.returncode == 0 and nagios.stdout.startswith("PERFGROUP OK"), nagios.stdout
    prom = node_cli(node, "audit", "--group", "perf_users", "--format", "prometheus", python=python)
    from prometheus_client.parser import text_string_to_metric_families

    names = {family.name for family in text_string_to_metric_families(prom.stdout)}
    assert {"perfgroup_status", "perfgroup_check"} <= names, names
    # What the audit imports: the standard library and the engine copy, never click or jinja2.
    py = python or "/usr/bin/python3"
    flags = "-I" if python else "-IS"  # the launcher's own shebang flags
    trace = node.sh(f"{py} {flags} -X importtime {NODE} audit --group perf_users --format nagios >/dev/null")
    imported = {line.rsplit("|", 1)[-1].strip().split(".")[0] for line in trace.stderr.splitlines() if "|" in line}
    assert "perfgroup_engine" in imported
    assert not imported & {"click", "jinja2", "perfgroup", "ansible"}, imported
    # NHC and the timer run it every few minutes: no argparse (with gettext, locale and shutil),
    # no hashlib (OpenSSL), and no process started, the interpreter's own execve being the only one.
    assert not imported & {"argparse", "hashlib", "subprocess", "dataclasses"}, imported
    if python is None:  # the launcher as installed (-IS: no site): not even typing, re, json or contextlib
        assert not imported & {"typing", "re", "json", "contextlib", "site", "enum"}, imported
    argv = [python, "-I", NODE] if python else [NODE]
    for fmt in (["--format", "nagios"], ["--format", "prometheus", "--textfile-dir", "/run"]):
        trace = node.run(["strace", "-f", "-qq", "-e", "trace=execve,clone,clone3,fork,vfork", "-o", "/dev/stderr",
                          *argv, "audit", "--group", "perf_users", *fmt])
        assert trace.returncode == 0, trace.stderr
        calls = [line for line in trace.stderr.splitlines() if "(" in line]
        assert len(calls) == 1 and "execve(" in calls[0], calls


def test_textfile_dir_written_atomically(node: Node) -> None:
    setup_node(node)
    node.ok("mkdir -p /run/textfile")
    result = node_cli(node, "audit", "--group", "perf_users", "--format", "prometheus", "--textfile-dir", "/run/textfile")
    assert result.returncode == 0 and result.stdout == "", result.stderr
    listing = node.ok("ls -A /run/textfile").split()
    assert listing == ["perfgroup_perf_users.prom"], listing
    assert 'perfgroup_status{group="perf_users"} 0' in node.ok("cat /run/textfile/perfgroup_perf_users.prom")


def test_heal_repairs_drift_and_nagios_sees_it_before(node: Node) -> None:
    setup_node(node)
    node.ok(f"chmod o+x {DEST} && setcap -r {DEST}")
    drifted = node_cli(node, "audit", "--group", "perf_users", "--format", "nagios")
    assert drifted.returncode == 2 and drifted.stdout.startswith("PERFGROUP CRITICAL"), drifted.stdout
    healed = node_cli(node, "heal", "--group", "perf_users")
    assert healed.returncode == 0, healed.stdout + healed.stderr
    assert "cap_perfmon" in node.ok(f"getcap {DEST}")
    assert node.ok(f"stat -c %a {DEST}").strip() == "750"
    assert node_cli(node, "audit", "--group", "perf_users").returncode == 0
    member = node.run(["/usr/local/libexec/perfgroup/perf_users/perf", "stat", "-a", "-e", "cpu-clock", "--", "true"],
                      user="alice")
    assert member.returncode == 0, member.stderr
    # Removed group (a stateless image without it): heal recreates it with the recorded gid.
    gid = node.ok("getent group perf_users | cut -d: -f3").strip()
    node.ok("groupdel perf_users")
    assert node_cli(node, "heal", "--group", "perf_users").returncode == 0
    assert node.ok("getent group perf_users | cut -d: -f3").strip() == gid
    quiet = node_cli(node, "heal", "--group", "perf_users", "--if-source-changed")
    assert quiet.returncode == 0 and quiet.stdout == "", quiet.stdout


@pytest.mark.parametrize(("argv", "code", "user"), [
    (["heal", "--group", "nosuch"], 2, None),  # no record
    (["heal", "--group", "perf_users"], 2, "bob"),  # not root
    (["heal", "--group", "Bad;name"], 2, None),
    (["heal", "--group"], 2, None),  # (without --group: perf_users, as for the perfgroup command)
    (["audit", "--group", "perf_users", "--format", "yaml"], 3, None),
    (["audit", "--group", "perf_users", "--textfile-dir", "/tmp"], 3, None),
    (["audit", "--group", "Bad;name"], 3, None),
])
def test_bad_input_one_line_documented_code_node_unchanged(node: Node, argv: list[str], code: int,
                                                           user: str | None) -> None:
    setup_node(node)
    before = node.snapshot()
    result = node.run([NODE, *argv], user=user)
    assert result.returncode == code, (result.stdout, result.stderr)
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    # python's bytecode cache beside the engine copy is no node state (remove deletes it too)
    after = {k: v for k, v in node.snapshot().items() if "__pycache__" not in k}
    assert after == {k: v for k, v in before.items() if "__pycache__" not in k}


def fake_perf_upgrade(node: Node) -> str:
    """A newer linux-perf whose /usr/bin/perf is the real one plus one byte (still a perf ELF),
    built with dpkg-deb inside the node. Returns the new binary's sha256."""
    real = Path("/usr/bin/perf").read_bytes() + b"\0"
    build = node.path("/root/fakeperf")
    (build / "DEBIAN").mkdir(parents=True)
    (build / "usr/bin").mkdir(parents=True)
    (build / "usr/bin/perf").write_bytes(real)
    (build / "usr/bin/perf").chmod(0o755)
    version = node.ok("dpkg-query -W -f '${Version}' linux-perf").strip()
    (build / "DEBIAN/control").write_text(
        f"Package: linux-perf\nVersion: {version}+perfgrouptest1\nArchitecture: {node.ok('dpkg --print-architecture').strip()}\n"
        "Maintainer: perfgroup tests <root@localhost>\nDescription: fake newer perf for the APT hook test\n"
    )
    node.ok("dpkg-deb --build --root-owner-group /root/fakeperf /root/linux-perf-new.deb >/dev/null")
    return hashlib.sha256(real).hexdigest()


def test_apt_hook_refreshes_the_copy_after_a_perf_upgrade(node: Node) -> None:
    if node.sh("dpkg-query -W linux-perf").returncode != 0:
        pytest.skip("linux-perf is not installed on this host")
    setup_node(node)
    new_sha = fake_perf_upgrade(node)
    apt = ("apt-get install -y -q -o Debug::NoLocking=1 -o APT::Sandbox::User=root "
           "/root/linux-perf-new.deb")
    # Without the hook: the upgrade leaves the copy stale, and audit says so.
    node.ok(f"mv {APT_HOOK} /root/hook")
    upgraded = node.sh(apt)
    assert upgraded.returncode == 0, upgraded.stdout + upgraded.stderr
    stale = json.loads(node.run([PERFGROUP, "audit", "--json"]).stdout)
    assert "copy.stale" in ids(stale, "warning"), stale
    # With the hook: reinstalling through apt runs heal, which refreshes the copy.
    node.ok(f"mv /root/hook {APT_HOOK}")
    again = node.sh(apt.replace("install", "install --reinstall"))
    assert again.returncode == 0, again.stdout + again.stderr
    assert node.ok(f"sha256sum {DEST}").split()[0] == new_sha
    report = json.loads(node.run([PERFGROUP, "audit", "--json"]).stdout)
    assert report["status"] == "ok" and "copy.stale" not in ids(report), report
    state = json.loads(node.ok(f"cat {STATE}"))
    assert state["source_sha256"] == new_sha and state["copy_sha256"] == new_sha
    assert "cap_perfmon" in node.ok(f"getcap {DEST}")
    assert shlex.split(node.ok(f"stat -c '%U %G %a' {DEST}")) == ["root", "perf_users", "750"]
