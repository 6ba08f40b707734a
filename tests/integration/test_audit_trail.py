"""Every change setup and remove make reaches syslog with who did it and old -> new."""

from __future__ import annotations

from typing import Any

import pytest
from conftest import PERFGROUP
from node import Node, SyslogReceiver

pytestmark = pytest.mark.integration


def test_changes_are_logged_to_syslog(make_node: Any) -> None:
    node: Node = make_node(own_dev=True)  # a syslog socket on the node's own /dev/log
    with SyslogReceiver(node) as syslog:
        node.ok("useradd -M alice")
        assert node.run([PERFGROUP, "setup", "--member", "alice"], env={"SUDO_USER": "admin1"}).returncode == 0
        assert node.run([PERFGROUP, "remove"]).returncode == 0
        lines = [line for line in syslog.lines() if "perfgroup[" in line]
    text = "\n".join(lines)
    assert all(line.startswith("<85>") for line in lines), lines  # authpriv.notice
    assert "create_group perf_users: absent -> gid" in text and "by root (sudo from admin1)" in text
    assert "install_copy /usr/local/libexec/perfgroup/perf_users/perf: missing -> root:perf_users 0750 cap_ipc_lock,cap_syslog,cap_perfmon=ep" in text
    assert "add_member perf_users: - -> +alice" in text
    assert "write_file /etc/sysctl.d/90-perfgroup-perf_users.conf" in text
    assert "delete_copy /usr/local/libexec/perfgroup/perf_users/perf: present -> absent by root" in text
    assert "delete_group perf_users: present -> absent" in text
    assert not node.path("/dev/log").exists()  # the receiver took its socket with it
