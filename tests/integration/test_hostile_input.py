"""Hostile or mistaken input: each case is refused with one line naming the problem, a non-zero
exit code, and the node byte-identical afterwards (the overlay upper layer is compared)."""

from __future__ import annotations

from typing import Any

import pytest
from conftest import PERFGROUP, integration_possible
from node import Node, NodeOptions

pytestmark = pytest.mark.integration

FIXTURES = """
set -e
useradd -M -s /bin/sh alice
mkdir -p /opt/hostile/dir /opt/tools /home/alice
chown alice /home/alice
ln -s /opt/hostile/loop /opt/hostile/loop
printf '#!/bin/sh\\necho not perf\\n' > /opt/hostile/script.sh && chmod 755 /opt/hostile/script.sh
cp /usr/bin/perf /opt/hostile/suid-perf && chmod 4755 /opt/hostile/suid-perf
cp /usr/bin/perf /opt/hostile/ww-perf && chmod 0757 /opt/hostile/ww-perf
cp /usr/bin/perf /opt/hostile/user-perf && chown alice /opt/hostile/user-perf
cp /bin/true /opt/tools/perf
ln -s /opt/tools /opt/linkdir
echo '# written by hand, no setup record' > /etc/profile.d/perfgroup-perf_users.sh
groupadd -g 5000 twin_a && groupadd -o -g 5000 twin_b
mkdir -p /opt/aclw && setfacl -m u:alice:rwx /opt/aclw
mkdir -p /opt/alicesrc /opt/gwsrc && cp /usr/bin/perf /opt/alicesrc/perf && cp /usr/bin/perf /opt/gwsrc/perf
chown alice /opt/alicesrc && chmod 775 /opt/gwsrc
ln -s /usr/bin /opt/alicelink && chown -h alice /opt/alicelink
mkdir -p /var/lib/perfgroup
printf '{"schema": 2, "group": "tampered", "gid": 5001, "dest": "/usr/local/libexec/perfgroup/tampered/perf", \
"source": "/usr/bin/perf", "source_sha256": "", "copy_sha256": "", "caps": [], "copies": ["/etc/hostname"], \
"files": {"/etc/passwd": ""}}' > /var/lib/perfgroup/tampered.json
chown alice /var/lib/perfgroup/tampered.json
"""

# (name, arguments, exit code, words the one-line error must contain)
CASES: list[tuple[str, list[str], int, str]] = [
    ("group empty", ["setup", "--group="], 2, "empty"),
    ("group too long", ["setup", "--group", "g" * 33], 2, "longer than 32"),
    ("group leading dash", ["setup", "--group=-rf"], 2, "starts with '-'"),
    ("group colon", ["setup", "--group", "perf:users"], 2, "characters outside"),
    ("group slash", ["setup", "--group", "perf/users"], 2, "characters outside"),
    ("group space", ["setup", "--group", "perf users"], 2, "characters outside"),
    ("group newline", ["setup", "--group", "perf\nusers"], 2, "characters outside"),
    ("group non-ascii", ["setup", "--group", "pérf"], 2, "characters outside"),
    ("group root", ["setup", "--group", "root"], 2, "system powers"),
    ("group wheel", ["setup", "--group", "wheel"], 2, "system powers"),
    ("group sudo", ["setup", "--group", "sudo"], 2, "system powers"),
    ("group adm", ["setup", "--group", "adm"], 2, "system powers"),
    ("group shadow", ["setup", "--group", "shadow"], 2, "system powers"),
    ("group disk", ["setup", "--group", "disk"], 2, "system powers"),
    ("group docker", ["setup", "--group", "docker"], 2, "system powers"),
    ("gid of another group", ["setup", "--gid", "100"], 2, "already belongs to group users"),
    ("member unknown", ["setup", "--member", "ghost"], 2, "no such user"),
    ("verify of a group that does not exist", ["verify", "--group", "nosuch"], 2, "group nosuch does not exist"),
    ("member root", ["setup", "--member", "root"], 2, "pointless"),
    ("member colon", ["setup", "--member", "a:b"], 2, "characters outside"),
    ("member newline", ["setup", "--member", "alice\nroot"], 2, "characters outside"),
    ("source missing", ["setup", "--perf", "/opt/hostile/missing"], 2, "No such file"),
    ("source directory", ["setup", "--perf", "/opt/hostile/dir"], 2, "is a directory"),
    ("source symlink loop", ["setup", "--perf", "/opt/hostile/loop"], 2, "symbolic links"),
    ("source shell script", ["setup", "--perf", "/opt/hostile/script.sh"], 2, "script"),
    ("source not perf (/bin/sh)", ["setup", "--perf", "/bin/sh"], 2, "not perf"),
    ("source setuid", ["setup", "--perf", "/opt/hostile/suid-perf"], 2, "setuid"),
    ("source world-writable", ["setup", "--perf", "/opt/hostile/ww-perf"], 2, "non-root user"),
    ("source user-owned", ["setup", "--perf", "/opt/hostile/user-perf"], 2, "non-root user"),
    # root's own perf, but a directory or link above it is not root's alone (review finding 4)
    ("source in a user's directory", ["setup", "--perf", "/opt/alicesrc/perf"], 2, "/opt/alicesrc is owned by uid"),
    ("source in a group-writable directory", ["setup", "--perf", "/opt/gwsrc/perf"], 2,
     "/opt/gwsrc is writable by group or others"),
    ("source through a user's symlink", ["setup", "--perf", "/opt/alicelink/perf"], 2,
     "/opt/alicelink is a symlink owned by uid"),
    ("source relative", ["setup", "--perf", "perf"], 2, "absolute"),
    ("dest in /tmp", ["setup", "--dest", "/tmp/perf"], 2, "non-root user can write"),
    ("dest in a home", ["setup", "--dest", "/home/alice/perf"], 2, "non-root user can write"),
    ("dest on nosuid", ["setup", "--dest", "/opt/nosuid/perf"], 2, "nosuid"),
    ("dest is packaged perf", ["setup", "--dest", "/usr/bin/perf"], 2, "packaged perf"),
    ("dest foreign file", ["setup", "--dest", "/opt/tools/perf"], 2, "did not create"),
    ("dest through symlink", ["setup", "--dest", "/opt/linkdir/perf"], 2, "symlink"),
    ("dest relative", ["setup", "--dest", "perf"], 2, "absolute"),
    ("dest not normalised", ["setup", "--dest", "/usr/local/../tmp/perf"], 2, "normalised"),
    ("caps unknown", ["setup", "--caps", "cap_bogus"], 2, "unknown capability"),
    ("caps all", ["setup", "--caps", "all"], 2, "root in disguise"),
    ("caps setuid", ["setup", "--caps", "cap_perfmon,cap_setuid"], 2, "become root"),
    ("caps setfcap", ["setup", "--caps", "cap_setfcap"], 2, "become root"),
    ("caps dac_override", ["setup", "--caps", "cap_dac_override"], 2, "become root"),
    ("caps sys_module", ["setup", "--caps", "cap_sys_module"], 2, "become root"),
    ("caps inheritable", ["setup", "--caps", "cap_perfmon=i"], 2, "=ep"),
    ("caps sys_admin", ["setup", "--caps", "cap_perfmon,cap_sys_admin"], 2, "become root"),
    ("caps sys_ptrace", ["setup", "--caps", "cap_perfmon,cap_sys_ptrace"], 2, "become root"),
    ("caps sys_chroot", ["setup", "--caps", "cap_perfmon,cap_sys_chroot"], 2, "become root"),
    ("caps ipc_owner", ["setup", "--caps", "cap_perfmon,cap_ipc_owner"], 2, "become root"),
    ("caps bpf", ["setup", "--caps", "cap_perfmon,cap_bpf"], 2, "become root"),
    ("caps kill", ["setup", "--caps", "cap_perfmon,cap_kill"], 2, "not needed for profiling"),
    ("caps sys_resource", ["setup", "--caps", "cap_perfmon,cap_sys_resource"], 2, "not needed for profiling"),
    ("caps net_raw", ["setup", "--caps", "cap_perfmon,cap_net_raw"], 2, "not needed for profiling"),
    ("dest with ':' (splits PATH)", ["setup", "--dest", "/opt/perf:tools/perf"], 2, "meaning of PATH"),
    ("dest with '$' (expands in the snippet)", ["setup", "--dest", "/opt/$HOME/perf"], 2, "meaning of PATH"),
    ("dest with a space", ["setup", "--dest", "/opt/my tools/perf"], 2, "meaning of PATH"),
    ("dest with a quote", ["setup", "--dest", "/opt/it's/perf"], 2, "meaning of PATH"),
    ("remove without record, files left", ["remove"], 2, "no usable setup record"),
    ("gid shared by a second group name", ["setup", "--group", "twin_a"], 2, "shares gid 5000 with twin_b"),
    ("gid shared, the other name", ["setup", "--group", "twin_b"], 2, "shares gid 5000 with twin_a"),
    ("dest under a directory a user may write by ACL", ["setup", "--dest", "/opt/aclw/perf"], 2, "/opt/aclw"),
    ("record owned by a user: setup", ["setup", "--group", "tampered"], 2, "cannot be trusted"),
    ("record owned by a user: remove", ["remove", "--group", "tampered"], 2, "cannot be trusted"),
    ("members add unknown", ["members", "add", "ghost"], 2, "does not exist"),
    ("members add --dry-run unknown", ["members", "add", "--dry-run", "ghost"], 2, "does not exist"),
    ("audit bad group", ["audit", "--group", "a:b"], 3, "characters outside"),
]


@pytest.fixture(scope="module")
def hostile_node() -> Any:
    reason = integration_possible()
    if reason:
        pytest.fail(reason)
    node = Node(NodeOptions(nosuid_dirs=("/opt/nosuid",)))
    try:
        node.ok(FIXTURES)
        yield node, node.snapshot()
    finally:
        node.close()


def test_there_are_enough_cases() -> None:
    assert len(CASES) >= 30


@pytest.mark.parametrize(("args", "code", "words"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_refused_cleanly(hostile_node: tuple[Node, dict[str, Any]], args: list[str], code: int, words: str) -> None:
    node, before = hostile_node
    result = node.run([PERFGROUP, *args])
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.returncode == code, result.stderr
    assert len(lines) == 1, lines
    assert words in lines[0], lines[0]
    assert result.stdout.strip() == "" or "Usage" not in result.stdout
    assert node.snapshot() == before
