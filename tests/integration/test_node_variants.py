"""Node variants: a directory (non-/etc/group) group, a node without perf, the cost of audit."""

from __future__ import annotations

import json
from typing import Any

import pytest
from conftest import PERFGROUP, PYTHON
from node import Node

pytestmark = pytest.mark.integration

DEST = "/usr/local/libexec/perfgroup/perf_users/perf"
PERF_A = ["stat", "-a", "-e", "cpu-clock", "--", "true"]

# libnss-extrausers is a real NSS source outside /etc/group: it stands in for LDAP/SSSD.
DIRECTORY_GROUP = (
    "sed -i 's/^group:.*/group: files extrausers/' $R/etc/nsswitch.conf && "
    "mkdir -p $R/var/lib/extrausers && echo 'perf_users:x:5000:alice' > $R/var/lib/extrausers/group && "
    "touch $R/var/lib/extrausers/passwd $R/var/lib/extrausers/shadow"
)


def test_directory_group_is_adopted_never_shadowed(make_node: Any) -> None:
    node: Node = make_node(extra_setup=DIRECTORY_GROUP)
    node.ok("useradd -M -s /bin/sh alice && useradd -M -s /bin/sh bob")
    assert node.ok("getent group perf_users").strip() == "perf_users:x:5000:alice"
    result = node.run([PERFGROUP, "setup", "--member", "alice"])
    assert result.returncode == 0, result.stdout + result.stderr
    assert "comes from the directory" in result.stdout
    assert "perf_users" not in node.ok("cat /etc/group")  # no local shadow copy
    assert node.ok(f"stat -c %g {DEST}").strip() == "5000"
    assert node.run([DEST, *PERF_A], user="alice").returncode == 0
    refused = node.run([PERFGROUP, "setup", "--member", "bob"])
    assert refused.returncode == 2 and "managed by the directory" in refused.stderr
    assert node.run([PERFGROUP, "remove"]).returncode == 0
    assert node.ok("getent group perf_users").strip() == "perf_users:x:5000:alice"


def test_install_perf_installs_the_distribution_package(make_node: Any) -> None:
    node: Node = make_node(extra_setup="chroot $R dpkg --purge --force-depends linux-perf >/dev/null")
    assert node.sh("test -e /usr/bin/perf").returncode != 0
    before = node.snapshot()
    for bad in (["--member", "ghost"], ["--group", "wheel"], ["--dest", "/tmp/perf"]):
        refused = node.run([PERFGROUP, "setup", "--install-perf", *bad])
        assert refused.returncode == 2, refused.stderr
    assert node.snapshot() == before  # refused before any package was installed
    dry = node.run([PERFGROUP, "setup", "--install-perf", "--dry-run"])
    assert dry.returncode == 0 and "would install perf with: apt-get install -y linux-perf" in dry.stdout
    result = node.run([PERFGROUP, "setup", "--install-perf", "--json"], timeout=300)
    report = json.loads(result.stdout)
    assert result.returncode == 0, result.stderr
    assert report["verify"]["ok"] is True
    assert node.sh("dpkg -s linux-perf").returncode == 0


AUDIT_PROBE = """
import sys
spawned = []
def hook(event, args):
    if event in ("subprocess.Popen", "os.exec", "os.posix_spawn", "os.spawn", "os.system", "os.fork"):
        spawned.append(event)
sys.addaudithook(hook)
from perfgroup.cli import main
try:
    main(["audit", "--json"])
except SystemExit as exit:
    code = exit.code
heavy = sorted(m for m in sys.modules if m.split(".")[0] in ("jinja2", "ansible", "ansible_runner"))
sys.stderr.write(repr((code, spawned, heavy)) + "\\n")
"""


def test_static_audit_spawns_nothing_and_stays_light(node: Node) -> None:
    node.ok("useradd -M alice")
    assert node.run([PERFGROUP, "setup", "--member", "alice"]).returncode == 0
    result = node.run([PYTHON, "-c", AUDIT_PROBE])
    code, spawned, heavy = eval(result.stderr.strip().splitlines()[-1])
    assert code == 0, result.stdout
    assert spawned == [] and heavy == []


def test_static_audit_execs_nothing_under_strace(node: Node) -> None:
    """The same claim measured from outside the interpreter: one execve, the interpreter's own."""
    trace = node.run(["strace", "-f", "-qq", "-e", "trace=execve,fork,vfork", "-o", "/dev/stderr",
                      PERFGROUP, "audit", "--json"])
    calls = [line for line in trace.stderr.splitlines() if "execve(" in line or "fork(" in line]
    assert len(calls) == 1, calls


CLICK_PATH = "import sys\nfrom perfgroup.cli import main\nmain(sys.argv[1:])\n"
QUICK_PATH = ("import sys\nfrom perfgroup import quick\ncode = quick.audit(sys.argv[1:])\n"
              "sys.stderr.write(repr(('click' in sys.modules, code)))\nsys.exit(code)\n")


def test_plain_audit_skips_click_and_prints_what_click_prints(node: Node) -> None:
    """The console script answers plain audits without click (perfgroup/quick.py): same bytes,
    same exit code as the click command, on a node with findings that carry fixes."""
    node.ok("useradd -M alice")
    assert node.run([PERFGROUP, "setup", "--member", "alice"]).returncode == 0
    node.ok("rm /etc/profile.d/perfgroup-perf_users.sh && chmod 0755 /usr/local/libexec/perfgroup/perf_users/perf")
    for argv in (["audit"], ["audit", "--json"], ["audit", "--group", "perf_users", "--format", "nagios"],
                 ["audit", "--format", "json", "--dest", DEST], ["audit", "--group", "Bad!"]):
        quick = node.run([PYTHON, "-c", QUICK_PATH, *argv])
        click = node.run([PYTHON, "-c", CLICK_PATH, *argv])
        imported_click, code = eval(quick.stderr.strip().splitlines()[-1])
        if argv[-1] == "Bad!":  # an error: quick prints nothing and leaves it to click
            assert (code, quick.stdout, click.returncode) == (None, "", 3), click.stderr
            continue
        assert (quick.stdout, code) == (click.stdout, click.returncode) and code == 2, argv
        assert not imported_click, argv
        if argv == ["audit"]:
            assert "fix: " in quick.stdout and "WARNING " in quick.stdout, quick.stdout


# Ubuntu's layout: /usr/bin/perf is a shell script that execs the per-kernel ELF.
UBUNTU_WRAPPER = (
    'mkdir -p "$R/usr/lib/linux-tools/$(uname -r)" && mv $R/usr/bin/perf "$R/usr/lib/linux-tools/$(uname -r)/perf" && '
    "printf '#!/bin/bash\\nfull_version=`uname -r`\\nexec \"/usr/lib/linux-tools/$full_version/perf\" \"$@\"\\n' "
    "> $R/usr/bin/perf && chmod 755 $R/usr/bin/perf"
)


def test_wrapper_script_is_followed_to_the_elf(make_node: Any) -> None:
    node: Node = make_node(extra_setup=UBUNTU_WRAPPER)
    assert node.ok("head -c 2 /usr/bin/perf") == "#!"
    node.ok("useradd -M alice")
    result = node.run([PERFGROUP, "setup", "--member", "alice"])
    assert result.returncode == 0, result.stdout + result.stderr
    release = node.ok("uname -r").strip()
    assert f"/usr/bin/perf is a wrapper; the ELF it runs is /usr/lib/linux-tools/{release}/perf" in result.stdout
    assert node.ok(f"head -c 4 {DEST} | od -An -c").split()[1:4] == ["E", "L", "F"]
    assert node.run([DEST, *PERF_A], user="alice").returncode == 0
