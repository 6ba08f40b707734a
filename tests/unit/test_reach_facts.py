"""reach_facts.py: tracefs mount points from mountinfo and fstab's tracefs entries."""

from __future__ import annotations

import pytest
from factsdata import TRACING

from perfgroup.engine import (
    reach_facts,
)

MOUNTINFO = """\
22 1 0:21 / /sys rw,nosuid - sysfs sysfs rw
30 22 0:12 / /sys/kernel/tracing rw,nosuid,nodev,noexec - tracefs tracefs rw,mode=700
31 22 0:7 / /sys/kernel/debug rw - debugfs debugfs rw
40 31 0:12 / /sys/kernel/debug/tracing rw - tracefs tracefs rw,mode=700
"""


@pytest.mark.parametrize(("text", "points"), [
    (MOUNTINFO, (TRACING, "/sys/kernel/debug/tracing")),
    # a node's private tmpfs over the host's tracefs: nothing to remount
    (MOUNTINFO + "50 30 0:45 / /sys/kernel/tracing rw - tmpfs none rw\n", ("/sys/kernel/debug/tracing",)),
    ("22 1 0:21 / /sys rw - sysfs sysfs rw\n", ()),
    ("garbage\n\n", ()),
])
def test_tracefs_mount_points_from_mountinfo(text: str, points: tuple[str, ...]) -> None:
    assert reach_facts.tracefs_points(text) == points


def test_fstab_tracefs_entry() -> None:
    assert reach_facts.fstab_mounts_tracefs("tracefs /sys/kernel/tracing tracefs defaults 0 0\n")
    assert not reach_facts.fstab_mounts_tracefs("# tracefs /sys/kernel/tracing tracefs defaults\n/dev/sda1 / ext4 rw 0 1\n")


@pytest.mark.parametrize(("root_line", "stateless"), [
    ("1 0 0:2 / / rw - rootfs rootfs rw", True),  # booted from an initramfs image (Warewulf 4's default)
    ("1 0 0:21 / / rw,relatime - tmpfs tmpfs rw", True),
    ("1 0 8:1 / / rw,relatime - ext4 /dev/sda1 rw", False),
    ("1 0 0:2 / / rw - rootfs rootfs rw\n2 1 8:1 / / rw - ext4 /dev/sda1 rw", False),  # switched to a disk root
    ("1 0 0:40 / / rw - overlay overlay rw", False),
])
def test_a_root_in_memory_means_a_node_booted_from_an_image(root_line: str, stateless: bool) -> None:
    assert reach_facts.stateless_root(root_line + "\n25 1 0:6 / /sys/kernel/tracing rw - tracefs tracefs rw") is stateless
