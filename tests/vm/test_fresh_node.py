"""A fresh node on real Debian kernels: what `perfgroup setup` must achieve on a fresh node
(Debian's paranoid=3, kernel symbols for members, a Python 3.9 node). Each test collects every
failed expectation before failing, so one run lists all that is missing."""

from __future__ import annotations

import json
import re

import pytest
from qemu import BootResult, Machine

COPY = "/usr/local/libexec/perfgroup/perf_users/perf"
pytestmark = pytest.mark.vm

FRESH_NODE_SETUP = f"""
step setup perfgroup setup --group perf_users --member alice
step_as stat_a alice '{COPY} stat -a -e cpu-clock -- sleep 0.1'
step_as record alice '{COPY} record -a -g -o /tmp/a.data -- sleep 0.5'
step_as report alice '{COPY} report -i /tmp/a.data --stdio --sort sym'
step_as non_member bob '{COPY} stat -e task-clock true'
step audit perfgroup audit --json
step paranoid cat /proc/sys/kernel/perf_event_paranoid
"""

# Back at Debian's 3 after setup (an admin, a sysctl.d file of the site's): the group cannot work
# there, and audit, verify and the functional audit must say so (the kernel config is in /boot).
PARANOID_BACK_TO_3 = """
step_sh config 'grep CONFIG_SECURITY_PERF_EVENTS_RESTRICT /boot/config-$(uname -r)'
step set3 sysctl -w kernel.perf_event_paranoid=3
step audit3 perfgroup audit --json
step verify3 perfgroup verify
step functional3 perfgroup audit --functional
"""

# remove undoes all of it (after the boot unit ran, so it is loaded and active): perf_event_paranoid
# back to what setup found (when setup's 2 is still there), tracefs as it was, no unit left loaded.
REMOVE_ALL = """
step set2 sysctl -w kernel.perf_event_paranoid=2
step start_heal systemctl start perfgroup-heal-perf_users.service
step remove perfgroup remove --group perf_users
step paranoid_removed cat /proc/sys/kernel/perf_event_paranoid
step tracefs_removed stat -c '%a %g' /sys/kernel/tracing
step_sh units_removed 'systemctl list-units --all --no-legend --plain | grep perf_users || true'
"""

KEEP_PARANOID = """
step setup perfgroup setup --group perf_users --keep-paranoid
"""

KERNEL_SYMBOL = re.compile(r"\[k\] +(?!0x)[A-Za-z_][\w.]*")


class Expectations:
    def __init__(self, result: BootResult) -> None:
        self.result = result
        self.failed: list[str] = []

    def expect(self, ok: bool, what: str, step: str | None = None) -> None:
        if not ok:
            detail = f"\n{self.result.step(step)}" if step and step in self.result.steps else ""
            self.failed.append(f"{what}{detail}")

    def check(self) -> None:
        if self.failed:
            raise AssertionError(f"{len(self.failed)} expectation(s) failed:\n\n" + "\n\n".join(self.failed))


def parses_as_json(text: str) -> bool:
    try:
        json.loads(text)
    except ValueError:
        return False
    return True


def step_rc(result: BootResult, name: str) -> int | None:
    return result.steps[name].rc if name in result.steps else None


def check_member_can_profile(result: BootResult, exp: Expectations) -> None:
    exp.expect(result.install_rc == 0, f"perfgroup installs from the wheel:\n{result.install_log}")
    exp.expect(step_rc(result, "setup") == 0, "setup --group perf_users --member alice exits 0", "setup")
    stat = result.steps.get("stat_a")
    exp.expect(stat is not None and stat.rc == 0 and "cpu-clock" in stat.stderr,
               "alice: perf stat -a -e cpu-clock works", "stat_a")


def test_fresh_bookworm_node(bookworm: Machine) -> None:
    result = bookworm.boot(FRESH_NODE_SETUP + PARANOID_BACK_TO_3 + REMOVE_ALL, mode="systemd")
    exp = Expectations(result)
    check_member_can_profile(result, exp)
    setup = result.steps.get("setup")
    plan = setup.stdout if setup else ""
    exp.expect("lower kernel.perf_event_paranoid 3 -> 2" in plan and "blocks CAP_PERFMON on this kernel" in plan,
               "the plan lowers Debian's 3 to 2 and says why", "setup")
    exp.expect("perf_event_paranoid 3 -> 2 (the upstream default): non-members may again profile their own "
               "processes in user space" in plan, "the plan says what 2 means for non-members", "setup")
    exp.expect(step_rc(result, "record") == 0, "alice: perf record -a -g works", "record")
    report = result.steps.get("report")
    exp.expect(report is not None and report.rc == 0 and KERNEL_SYMBOL.search(report.stdout) is not None,
               "alice: perf report shows kernel symbols ([k] name, not 0xffff...)", "report")
    outsider = result.steps.get("non_member")
    exp.expect(outsider is not None and outsider.rc != 0 and "Permission denied" in outsider.stderr,
               "bob (not a member) cannot run the copy", "non_member")
    exp.expect(step_rc(result, "audit") == 0, "perfgroup audit --json exits 0", "audit")
    paranoid = result.steps.get("paranoid")
    exp.expect(paranoid is not None and paranoid.stdout.strip() == "2", "Debian's 3 is set to 2 (live)", "paranoid")
    check_paranoid_3_is_critical(result, exp)
    check_removed(result, exp, paranoid="3")
    exp.check()


def check_removed(result: BootResult, exp: Expectations, paranoid: str) -> None:
    exp.expect(step_rc(result, "remove") == 0, "perfgroup remove exits 0", "remove")
    value = result.steps.get("paranoid_removed")
    exp.expect(value is not None and value.stdout.strip() == paranoid,
               f"after remove, perf_event_paranoid is {paranoid} again", "paranoid_removed")
    tracefs = result.steps.get("tracefs_removed")
    exp.expect(tracefs is not None and tracefs.stdout.split() == ["700", "0"],
               "after remove, tracefs is systemd's 0700 root again", "tracefs_removed")
    units = result.steps.get("units_removed")
    exp.expect(units is not None and units.stdout.strip() == "",
               "after remove, systemd has no perfgroup unit loaded (no not-found ... active)", "units_removed")


def check_paranoid_3_is_critical(result: BootResult, exp: Expectations) -> None:
    config = result.steps.get("config")
    exp.expect(config is not None and "CONFIG_SECURITY_PERF_EVENTS_RESTRICT=y" in config.stdout,
               "the image carries the kernel's /boot/config-$(uname -r), restricting", "config")
    exp.expect(step_rc(result, "set3") == 0, "sysctl -w kernel.perf_event_paranoid=3", "set3")
    audit = result.steps.get("audit3")
    exp.expect(audit is not None and audit.rc == 2, "audit --json exits 2 (CRITICAL) at paranoid 3", "audit3")
    try:
        findings = {f["id"]: f["severity"] for f in json.loads(audit.stdout)["findings"]} if audit else {}
    except ValueError:
        findings = {}
    exp.expect(findings.get("paranoid.blocks_group") == "critical",
               "audit: paranoid.blocks_group is critical (the config was read: not 'probably')", "audit3")
    exp.expect(step_rc(result, "verify3") == 1, "verify exits 1 (failed) at paranoid 3", "verify3")
    exp.expect(step_rc(result, "functional3") == 2, "audit --functional exits 2 (CRITICAL) at paranoid 3",
               "functional3")


def test_keep_paranoid_refuses_on_debian_kernel(bookworm: Machine) -> None:
    result = bookworm.boot(KEEP_PARANOID, mode="systemd")
    exp = Expectations(result)
    exp.expect(result.install_rc == 0, f"perfgroup installs from the wheel:\n{result.install_log}")
    setup = result.steps.get("setup")
    lines = setup.stderr.strip().splitlines() if setup else []
    exp.expect(setup is not None and setup.rc == 2, "setup --keep-paranoid at paranoid 3 exits 2", "setup")
    exp.expect(len(lines) == 1 and "perf_event_paranoid" in lines[0],
               "setup --keep-paranoid says why in one stderr line naming perf_event_paranoid", "setup")
    exp.expect(bool(lines) and "this kernel blocks perf for everyone" in lines[0] and "unreadable" not in lines[0],
               "the refusal is definite: the kernel config was read", "setup")
    exp.check()


EVERY_COMMAND = FRESH_NODE_SETUP + """
step verify perfgroup verify --json
step members_add perfgroup members add bob
step members_list perfgroup members list --json
step members_remove perfgroup members remove bob
step remove perfgroup remove
step remove_again perfgroup remove
step copy_gone test ! -e /usr/local/libexec/perfgroup/perf_users/perf
"""


def test_fresh_bullseye_node_python39_runs_every_command(bullseye: Machine) -> None:
    """RHEL 9's python3 is 3.9: the package installs there and every node command works (bullseye's
    python3 is 3.9, and its /usr/bin/perf is a wrapper script around perf_5.10)."""
    result = bullseye.boot(EVERY_COMMAND, mode="systemd")
    exp = Expectations(result)
    check_member_can_profile(result, exp)
    for name in ("audit", "verify", "members_add", "members_remove", "remove", "remove_again", "copy_gone"):
        exp.expect(step_rc(result, name) == 0, f"{name} exits 0 on Python 3.9", name)
    for name in ("audit", "verify"):
        step = result.steps.get(name)
        exp.expect(step is not None and parses_as_json(step.stdout), f"{name} --json prints JSON", name)
    listing = result.steps.get("members_list")
    exp.expect(listing is not None and '"bob"' in listing.stdout, "members list shows bob", "members_list")
    exp.check()
