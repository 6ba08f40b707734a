"""tracefs persistence where the node mounts tracefs from /etc/fstab (bookworm's kernel,
systemd-booted): systemd's fstab generator then makes sys-kernel-tracing.mount from the entry, so
the group's access at boot lives in the entry's options, not in a drop-in. Setup edits the entry;
after a reboot (same state disk) tracefs is mounted gid=<group>,mode=750 from it and a member reads
a tracepoint; `remove` puts tracefs and fstab back (fstab byte-identical)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from qemu import Machine, state_disk
from test_fresh_node import Expectations, step_rc

pytestmark = pytest.mark.vm

DROPIN = "/etc/systemd/system/sys-kernel-tracing.mount.d/perfgroup.conf"
ENTRY = "tracefs\t/sys/kernel/tracing\ttracefs\tnosuid,nodev,noexec\t0 0"

# /etc and /var/lib are on the state disk: the fstab line and the copy of fstab survive the reboot.
FIRST_BOOT = f"""
printf '# tracefs for tracepoints\\n{ENTRY}\\n' >> /etc/fstab
cp -p /etc/fstab /var/lib/fstab.before
systemctl daemon-reload
step unit systemctl show -p SourcePath --value sys-kernel-tracing.mount
step tracefs_before stat -c '%a %g' /sys/kernel/tracing
step setup perfgroup setup --group perf_users --member alice
step tracefs_after stat -c '%a %g' /sys/kernel/tracing
step gid getent group perf_users
step fstab cat /etc/fstab
step dropin_absent test ! -e {DROPIN}
step audit perfgroup audit --json
"""

SECOND_BOOT = """
step unit_rebooted systemctl show -p SourcePath --value sys-kernel-tracing.mount
step tracefs_rebooted stat -c '%a %g' /sys/kernel/tracing
step options_rebooted findmnt -no OPTIONS /sys/kernel/tracing
step debug_tracing_rebooted stat -c '%a %g' /sys/kernel/debug/tracing
step_sh tracepoint_rebooted "su alice -c 'perf stat -e sched:sched_switch -a -- sleep 0.1'"
step_sh bob_rebooted "su bob -c 'perf stat -e sched:sched_switch -a -- sleep 0.1'"
step audit_rebooted perfgroup audit --json
step remove perfgroup remove
step fstab_restored cmp /etc/fstab /var/lib/fstab.before
step fstab_stat_restored sh -c 'test "$(stat -c %a:%U:%G /etc/fstab)" = "$(stat -c %a:%U:%G /var/lib/fstab.before)"'
step tracefs_removed stat -c '%a %g' /sys/kernel/tracing
"""


def ids(stdout: str) -> dict[str, str]:
    try:
        return {f["id"]: f["severity"] for f in json.loads(stdout)["findings"]}
    except (ValueError, KeyError):
        return {}


def test_tracefs_from_fstab_keeps_the_group_after_reboot_and_remove_restores_fstab(bookworm: Machine,
                                                                                   tmp_path: Path) -> None:
    disk = state_disk(tmp_path / "state.img")
    first = bookworm.boot(FIRST_BOOT, mode="systemd", state=disk)
    exp = Expectations(first)
    exp.expect(first.install_rc == 0, f"perfgroup installs from the wheel:\n{first.install_log}")
    unit = first.steps.get("unit")
    exp.expect(unit is not None and unit.stdout.strip() == "/etc/fstab",
               "systemd's fstab generator makes sys-kernel-tracing.mount from /etc/fstab", "unit")
    before = first.steps.get("tracefs_before")
    exp.expect(before is not None and before.stdout.split() == ["700", "0"], "tracefs is 0700 root before setup",
               "tracefs_before")
    exp.expect(step_rc(first, "setup") == 0, "setup exits 0 (verify included)", "setup")
    gid = first.steps["gid"].stdout.split(":")[2] if "gid" in first.steps and first.steps["gid"].rc == 0 else "?"
    after = first.steps.get("tracefs_after")
    exp.expect(after is not None and after.stdout.split() == ["750", gid], f"tracefs is 0750 gid {gid} live",
               "tracefs_after")
    fstab = first.steps.get("fstab")
    want = ENTRY.replace("noexec\t", f"noexec,gid={gid},mode=0750\t")
    exp.expect(fstab is not None and want in fstab.stdout.splitlines() and "# tracefs for tracepoints" in fstab.stdout,
               f"setup edits only the entry's options: {want!r}", "fstab")
    exp.expect(step_rc(first, "dropin_absent") == 0, "no systemd drop-in where fstab mounts tracefs", "dropin_absent")
    audit = first.steps.get("audit")
    found = ids(audit.stdout) if audit else {}
    exp.expect(step_rc(first, "audit") == 0 and "tracefs.not_persistent" not in found and found.get("tracefs.ok") == "ok",
               f"audit: tracefs.ok, no tracefs.not_persistent ({found})", "audit")

    second = bookworm.boot(SECOND_BOOT, mode="systemd", state=disk)
    exp.result = second
    unit = second.steps.get("unit_rebooted")
    exp.expect(unit is not None and unit.stdout.strip() == "/etc/fstab", "after the reboot fstab mounts tracefs",
               "unit_rebooted")
    rebooted = second.steps.get("tracefs_rebooted")
    exp.expect(rebooted is not None and rebooted.stdout.split() == ["750", gid],
               f"after a reboot tracefs is 0750 gid {gid} (from the fstab entry)", "tracefs_rebooted")
    options = second.steps.get("options_rebooted")
    exp.expect(options is not None and f"gid={gid}" in options.stdout and "mode=750" in options.stdout,
               "the mount carries gid=<gid>,mode=750", "options_rebooted")
    exp.expect(step_rc(second, "tracepoint_rebooted") == 0, "alice reads a tracepoint after the reboot",
               "tracepoint_rebooted")
    exp.expect(step_rc(second, "bob_rebooted") not in (0, None), "bob does not", "bob_rebooted")
    audit = second.steps.get("audit_rebooted")
    found = ids(audit.stdout) if audit else {}
    exp.expect(step_rc(second, "audit_rebooted") == 0 and "tracefs.not_persistent" not in found,
               f"audit after the reboot is clean ({found})", "audit_rebooted")
    exp.expect(step_rc(second, "remove") == 0, "remove exits 0", "remove")
    exp.expect(step_rc(second, "fstab_restored") == 0, "remove puts /etc/fstab back byte for byte", "fstab_restored")
    exp.expect(step_rc(second, "fstab_stat_restored") == 0, "fstab keeps its owner and mode", "fstab_stat_restored")
    removed = second.steps.get("tracefs_removed")
    exp.expect(removed is not None and removed.stdout.split() == ["700", "0"], "remove puts tracefs back to 0700 root",
               "tracefs_removed")
    exp.check()
