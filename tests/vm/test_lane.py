"""The VM lane itself, proven with today's code: real Debian kernels boot, the guest looks like a
real node, results and per-step exit codes come back, and a state disk survives a reboot.

These also pin the kernel facts the engine must handle (Debian's paranoid=3 blocks a cap_perfmon
copy until the value is 2; systemd mounts tracefs 0700 root).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from qemu import BootResult, Machine, state_disk

pytestmark = pytest.mark.vm

COPY = "/opt/lane/perf"
SYSLOG_COPY = "/opt/lane/perf-syslog"
KERNEL_SYMBOL = re.compile(r"\[k\] +[A-Za-z_]\w*")
KERNEL_ADDRESS = re.compile(r"\[k\] +0xffff[0-9a-f]+")

BOOKWORM_NODE = f"""
step paranoid cat /proc/sys/kernel/perf_event_paranoid
step uname uname -r
step tracefs stat -c '%a %U %G' /sys/kernel/tracing
step root_perf perf stat -a -e cpu-clock true
step kptr cat /proc/sys/kernel/kptr_restrict
step version perfgroup --version
step_sh fails_on_purpose 'echo to-stdout; echo to-stderr >&2; exit 7'
groupadd --system lane_perf
gpasswd -a alice lane_perf >/dev/null
install -d -m 0755 /opt/lane
cp /usr/bin/perf {COPY}
chown root:lane_perf {COPY}
chmod 0750 {COPY}
setcap cap_perfmon=ep {COPY}
step getcap getcap {COPY}
step_as member_at_3 alice '{COPY} stat -e task-clock true'
step set_2 sysctl -w kernel.perf_event_paranoid=2
step_as member_at_2 alice '{COPY} stat -e task-clock true'
step_as stock_at_2 alice 'perf stat -a -e cpu-clock true'
step_as non_member bob '{COPY} stat -e task-clock true'
step_as record_perfmon alice '{COPY} record -q -a -g -o /tmp/perfmon.data -- sleep 0.3'
step_as report_perfmon alice '{COPY} report -i /tmp/perfmon.data --stdio --sort sym'
cp /usr/bin/perf {SYSLOG_COPY}
chown root:lane_perf {SYSLOG_COPY}
chmod 0750 {SYSLOG_COPY}
setcap cap_perfmon,cap_syslog=ep {SYSLOG_COPY}
step_as record_syslog alice '{SYSLOG_COPY} record -q -a -g -o /tmp/syslog.data -- sleep 0.3'
step_as report_syslog alice '{SYSLOG_COPY} report -i /tmp/syslog.data --stdio --sort sym'
"""


def counted(step_stderr: str, event: str) -> bool:
    """perf stat printed a real count for `event` (not `<not supported>`)."""
    return re.search(rf"^\s*[\d.,]+\s+msec\s+{event}\b", step_stderr, re.M) is not None


@pytest.fixture(scope="module")
def bookworm_node(bookworm: Machine) -> BootResult:
    return bookworm.boot(BOOKWORM_NODE, mode="systemd")


def test_boots_debian_cloud_kernel_with_its_defaults(bookworm_node: BootResult, bookworm: Machine) -> None:
    assert bookworm_node.rc == 0, bookworm_node.stderr
    assert bookworm_node.step("uname").stdout.strip() == bookworm.image.kernel_release
    assert re.fullmatch(r"6\.1\.0-\d+-cloud-amd64", bookworm.image.kernel_release)
    assert bookworm_node.step("paranoid").stdout.strip() == "3"
    assert bookworm_node.step("tracefs").stdout.strip() == "700 root root"


def test_root_perf_and_installed_wheel(bookworm_node: BootResult) -> None:
    root_perf = bookworm_node.step("root_perf")
    assert root_perf.rc == 0 and counted(root_perf.stderr, "cpu-clock"), root_perf
    assert bookworm_node.install_rc == 0, bookworm_node.install_log
    version = bookworm_node.step("version")
    assert version.rc == 0 and re.fullmatch(r"perfgroup, version \S+", version.stdout.strip()), version


def test_steps_keep_their_own_output_and_exit_code(bookworm_node: BootResult) -> None:
    step = bookworm_node.step("fails_on_purpose")
    assert (step.rc, step.stdout, step.stderr) == (7, "to-stdout\n", "to-stderr\n")


def test_cap_perfmon_copy_needs_paranoid_2_on_debian(bookworm_node: BootResult) -> None:
    assert "cap_perfmon" in bookworm_node.step("getcap").stdout
    at_3 = bookworm_node.step("member_at_3")
    assert at_3.rc != 0 and not counted(at_3.stderr, "task-clock"), at_3
    assert bookworm_node.step("set_2").rc == 0
    at_2 = bookworm_node.step("member_at_2")
    assert at_2.rc == 0 and counted(at_2.stderr, "task-clock"), at_2


def test_others_stay_limited(bookworm_node: BootResult) -> None:
    stock = bookworm_node.step("stock_at_2")
    assert stock.rc != 0 and not counted(stock.stderr, "cpu-clock"), stock
    outsider = bookworm_node.step("non_member")
    assert outsider.rc == 126 and "Permission denied" in outsider.stderr, outsider


def test_kernel_symbols_need_cap_syslog_even_at_kptr_restrict_0(bookworm_node: BootResult) -> None:
    assert bookworm_node.step("kptr").stdout.strip() == "0"
    for name in ("record_perfmon", "record_syslog"):
        assert bookworm_node.step(name).rc == 0, bookworm_node.step(name)
    perfmon_only = bookworm_node.step("report_perfmon").stdout
    assert KERNEL_ADDRESS.search(perfmon_only) and not KERNEL_SYMBOL.search(perfmon_only), perfmon_only[:2000]
    with_syslog = bookworm_node.step("report_syslog").stdout
    assert KERNEL_SYMBOL.search(with_syslog), with_syslog[:2000]


# Boot 1 (init mode) writes into the state directories, boot 2 (systemd) must see them: files,
# file capabilities, and a sysctl drop-in that systemd applies at boot.
FIRST_BOOT = """
cp /usr/bin/true /usr/local/bin/capped
setcap cap_perfmon=ep /usr/local/bin/capped
echo kernel.perf_event_paranoid=2 >/etc/sysctl.d/99-lane.conf
echo not-kept >/root/outside-state
step written getcap /usr/local/bin/capped
VM_STEP_TIMEOUT=3 step hung sh -c 'sleep 300 & sleep 200'
step after_hung echo still-running
"""
SECOND_BOOT = """
step caps getcap /usr/local/bin/capped
step paranoid cat /proc/sys/kernel/perf_event_paranoid
step outside sh -c 'cat /root/outside-state 2>&1 || true'
"""


def test_state_disk_survives_reboot(bookworm: Machine, tmp_path: Path) -> None:
    disk = state_disk(tmp_path / "state.img")
    first = bookworm.boot(FIRST_BOOT, mode="init", state=disk)
    assert first.rc == 0 and "cap_perfmon" in first.step("written").stdout, (first.stderr, first.extra)
    # A hung step (and what it started) is killed after VM_STEP_TIMEOUT and reported; the boot goes on.
    assert first.step("hung").rc == 124 and first.step("after_hung").stdout.strip() == "still-running"
    second = bookworm.boot(SECOND_BOOT, mode="systemd", state=disk)
    assert second.rc == 0, second.stderr
    assert "cap_perfmon" in second.step("caps").stdout, second.step("caps")
    assert second.step("paranoid").stdout.strip() == "2"
    assert "No such file" in second.step("outside").stdout


OTHER_SUITE_NODE = """
step uname uname -r
step python python3 -c 'import sys; print("%d.%d" % sys.version_info[:2])'
step paranoid cat /proc/sys/kernel/perf_event_paranoid
step tracefs stat -c '%a %U %G' /sys/kernel/tracing
step root_perf perf stat -a -e cpu-clock true
step kptr cat /proc/sys/kernel/kptr_restrict
step perf_file sh -c 'ls -l /usr/bin/perf*; head -c 4 /usr/bin/perf | od -c | head -n 1'
"""


def test_bullseye_boots_with_python_39_and_perf(bullseye: Machine) -> None:
    node = bullseye.boot(OTHER_SUITE_NODE, mode="systemd")
    assert node.rc == 0, node.stderr
    assert re.fullmatch(r"5\.10\.0-\d+-cloud-amd64", node.step("uname").stdout.strip())
    assert node.step("python").stdout.strip() == "3.9"
    root_perf = node.step("root_perf")
    assert root_perf.rc == 0 and counted(root_perf.stderr, "cpu-clock"), root_perf


def test_trixie_boots_with_python_313_and_perf(trixie: Machine) -> None:
    node = trixie.boot(OTHER_SUITE_NODE, mode="systemd")
    assert node.rc == 0, node.stderr
    assert re.fullmatch(r"6\.12\.\d+\+deb13-cloud-amd64", node.step("uname").stdout.strip())
    assert node.step("python").stdout.strip() == "3.13"
    root_perf = node.step("root_perf")
    assert root_perf.rc == 0 and counted(root_perf.stderr, "cpu-clock"), root_perf
    assert node.install_rc == 0, node.install_log
