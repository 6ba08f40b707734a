"""A stateless node image boots converged. bookworm's rootfs is prepared on this machine with
`perfgroup setup --root DIR` (chrooted into DIR: nothing of this machine changes), packed as a cpio
newc initramfs the way Warewulf and xCAT pack images (so the copy's file capabilities are lost),
and booted with systemd twice, without a state disk: each boot must come up converged before any
login (the boot unit restores the capabilities, perf_event_paranoid and tracefs access), alice
profiles, bob cannot, and the node's own audit says OK."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from pathlib import Path

import pytest
from qemu import BootResult, Machine
from test_fresh_node import REMOVE_ALL, Expectations, check_removed, step_rc

pytestmark = pytest.mark.vm

PERFGROUP = str(Path(sys.executable).with_name("perfgroup"))
GROUP = "perf_users"
COPY = f"/usr/local/libexec/perfgroup/{GROUP}/perf"
UNIT = f"perfgroup-heal-{GROUP}.service"

BOOT = f"""
step unit systemctl show {UNIT} -p ActiveState -p Result -p ExecMainStatus
step_sh before_logins 'h=$(systemctl show -p ActiveEnterTimestampMonotonic --value {UNIT});
  u=$(systemctl show -p ActiveEnterTimestampMonotonic --value systemd-user-sessions.service); echo "$h $u";
  [ "$h" -gt 0 ] && [ "$u" -gt 0 ] && [ "$h" -le "$u" ]'
step journal journalctl -b -u {UNIT} --no-pager -o cat
step caps getcap {COPY}
step paranoid cat /proc/sys/kernel/perf_event_paranoid
step tracefs stat -c '%a %g' /sys/kernel/tracing
step gid getent group {GROUP}
step_as alice_stat alice 'command -v perf; perf stat -a -e cpu-clock -- sleep 0.1'
step_as alice_tracepoint alice 'perf stat -e sched:sched_switch -a -- sleep 0.1'
step_as bob_copy bob '{COPY} stat -a -e cpu-clock -- sleep 0.1'
step_as bob_stat bob 'perf stat -a -e cpu-clock -- sleep 0.1'
step audit /usr/local/sbin/perfgroup-node audit --group {GROUP}
"""


MEMBERS_ON_IMAGE = f"""
step members_image perfgroup members add --group {GROUP} bob
"""


def prepare_image(machine: Machine, work: Path) -> tuple[Machine, str, str]:
    """The image's rootfs, set up with --root and packed again as cpio newc (no xattrs)."""
    root = work / "rootfs"
    root.mkdir()
    with open(machine.image.root_cpio, "rb") as packed:
        subprocess.run(["cpio", "-idm", "--quiet"], stdin=packed, cwd=root, check=True)
    setup = subprocess.run([PERFGROUP, "setup", "--root", str(root), "--group", GROUP, "--member", "alice"],
                           capture_output=True, text=True, check=False)
    assert setup.returncode == 0, f"setup --root failed:\n{setup.stdout}\n{setup.stderr}"
    audit = subprocess.run([PERFGROUP, "audit", "--root", str(root), "--group", GROUP],
                           capture_output=True, text=True, check=False)
    assert audit.returncode == 0, f"audit --root of the prepared image:\n{audit.stdout}\n{audit.stderr}"
    caps_in_dir = subprocess.run(["getcap", str(root) + COPY], capture_output=True, text=True, check=False).stdout
    names = subprocess.run(["find", "."], cwd=root, capture_output=True, check=True).stdout
    cpio = work / "root.cpio"
    with open(cpio, "wb") as out:
        subprocess.run(["cpio", "--quiet", "-o", "-H", "newc"], input=names, stdout=out, cwd=root, check=True)
    subprocess.run(["rm", "-rf", "--one-file-system", str(root)], check=True)
    return dataclasses.replace(machine, image=dataclasses.replace(machine.image, root_cpio=cpio)), setup.stdout, caps_in_dir


def check_boot(result: BootResult, exp: Expectations, which: str) -> None:
    unit = result.steps.get("unit")
    exp.expect(unit is not None and "ActiveState=active" in unit.stdout and "Result=success" in unit.stdout,
               f"{which}: {UNIT} ran at boot and succeeded", "unit")
    exp.expect(step_rc(result, "before_logins") == 0, f"{which}: it finished before systemd-user-sessions (logins)",
               "before_logins")
    journal = result.steps.get("journal")
    exp.expect(journal is not None and f"set {COPY} to" in journal.stdout and "cap_perfmon" in journal.stdout,
               f"{which}: the boot unit restored the capabilities cpio dropped", "journal")
    caps = result.steps.get("caps")
    exp.expect(caps is not None and "cap_perfmon" in caps.stdout and "cap_syslog" in caps.stdout,
               f"{which}: the copy carries its capabilities again", "caps")
    paranoid = result.steps.get("paranoid")
    exp.expect(paranoid is not None and paranoid.stdout.strip() == "2", f"{which}: perf_event_paranoid is 2 "
               "(Debian boots with 3)", "paranoid")
    gid = result.steps["gid"].stdout.split(":")[2] if step_rc(result, "gid") == 0 else "?"
    tracefs = result.steps.get("tracefs")
    exp.expect(tracefs is not None and tracefs.stdout.split() == ["750", gid], f"{which}: tracefs 0750 gid {gid}",
               "tracefs")
    exp.expect(step_rc(result, "alice_stat") == 0, f"{which}: alice profiles system-wide", "alice_stat")
    exp.expect(step_rc(result, "alice_tracepoint") == 0, f"{which}: alice reads tracepoints", "alice_tracepoint")
    exp.expect(step_rc(result, "bob_copy") not in (0, None), f"{which}: bob cannot run the copy", "bob_copy")
    exp.expect(step_rc(result, "bob_stat") not in (0, None), f"{which}: bob's perf cannot profile system-wide",
               "bob_stat")
    exp.expect(step_rc(result, "audit") == 0, f"{which}: the node's own audit is OK", "audit")


def test_prepared_cpio_image_boots_converged_twice(bookworm: Machine, tmp_path: Path) -> None:
    machine, plan, caps_in_dir = prepare_image(bookworm, tmp_path)
    assert "cpio-packed images" in plan and "boot unit" in plan, plan
    assert "cap_perfmon" in caps_in_dir, f"setup --root set the capabilities in the image directory: {caps_in_dir!r}"
    first = machine.boot(BOOT, mode="systemd")
    exp = Expectations(first)
    check_boot(first, exp, "first boot")
    # The second boot also takes perfgroup out of the running node: the image's record knows
    # nothing of tracefs (prepared offline), so remove puts back systemd's own 0700 root.
    second = machine.boot(BOOT + MEMBERS_ON_IMAGE + REMOVE_ALL, mode="systemd")
    exp.result = second
    check_boot(second, exp, "second boot")
    told = second.steps.get("members_image")
    exp.expect(told is not None and told.rc == 0 and "gone at the next boot" in told.stdout,
               "members add on a node booted from an image says the change is gone at the next boot", "members_image")
    check_removed(second, exp, paranoid="2")
    exp.check()
