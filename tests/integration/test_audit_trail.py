"""Every change setup and remove make reaches syslog with who did it and old -> new."""

from __future__ import annotations

import subprocess
import time
from typing import Any

import pytest
from conftest import PERFGROUP
from node import ENV, Node

pytestmark = pytest.mark.integration

# A minimal syslog daemon for the node: receives datagrams on the node's own /dev/log.
LISTENER = """
import socket, sys
sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
sock.bind("/dev/log")
print("listening", flush=True)
with open("/run/test-syslog", "ab", buffering=0) as out:
    while True:
        out.write(sock.recv(65536) + b"\\n")
"""


def test_changes_are_logged_to_syslog(make_node: Any) -> None:
    node: Node = make_node(own_dev=True)
    listener = subprocess.Popen(node.argv(["/usr/bin/python3", "-c", LISTENER]), env=ENV,
                                stdout=subprocess.PIPE, text=True)
    try:
        assert listener.stdout is not None and listener.stdout.readline().strip() == "listening"
        node.ok("useradd -M alice")
        assert node.run([PERFGROUP, "setup", "--member", "alice"], env={"SUDO_USER": "admin1"}).returncode == 0
        assert node.run([PERFGROUP, "remove"]).returncode == 0
        time.sleep(0.2)
        log = node.path("/run/test-syslog").read_text()
    finally:
        listener.kill()
        listener.wait()
    lines = [line for line in log.splitlines() if "perfgroup[" in line]
    text = "\n".join(lines)
    assert all(line.startswith("<85>") for line in lines), lines  # authpriv.notice
    assert "create_group perf_users: absent -> gid" in text and "by root (sudo from admin1)" in text
    assert "install_copy /usr/local/libexec/perfgroup/perf_users/perf: missing -> root:perf_users 0750 cap_ipc_lock,cap_syslog,cap_perfmon=ep" in text
    assert "add_member perf_users: - -> +alice" in text
    assert "write_file /etc/sysctl.d/90-perfgroup-perf_users.conf" in text
    assert "delete_copy /usr/local/libexec/perfgroup/perf_users/perf: present -> absent by root" in text
    assert "delete_group perf_users: present -> absent" in text
