"""perf-shell on Debian's own kernel (bookworm 6.1, booted with perf_event_paranoid=3): setup
refuses to keep 3 (the session could not count there either), and after setup a member's own
perf_event_open program counts system-wide inside perf-shell, not outside it, and not at 3.

sudo is not in the shared image (its recipe is every lane's cache key): the test hands this one
boot the host's bookworm sudo package, fetched with apt-get download when apt's cache lacks it."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from qemu import Machine

from perfgroup.engine.verify import COUNTER

pytestmark = pytest.mark.vm

SCENARIO = f"""
dpkg -i /vm/wheels/sudo_*.deb >/dev/null
cat > /tmp/counter.py <<'PY'
{COUNTER}PY
chmod 644 /tmp/counter.py
step boot_paranoid cat /proc/sys/kernel/perf_event_paranoid
step keep3 perfgroup setup --group perf_users --member alice --shell --keep-paranoid
step setup perfgroup setup --group perf_users --member alice --shell --json
step_as inside alice 'perf-shell python3 /tmp/counter.py'
step_as outside alice 'python3 /tmp/counter.py'
step_as stat alice 'perf-shell /usr/bin/perf stat -a -e cpu-clock -- sleep 0.1'
step_as caps alice 'perf-shell grep ^CapAmb /proc/self/status'
step audit perfgroup audit --json
step set3 sysctl -w kernel.perf_event_paranoid=3
step_as inside3 alice 'perf-shell python3 /tmp/counter.py'
"""


def sudo_deb(dest: Path) -> Path:
    cached = sorted(Path("/var/cache/apt/archives").glob("sudo_*_amd64.deb"))
    if cached:
        return Path(shutil.copy(cached[-1], dest))
    subprocess.run(["apt-get", "download", "-q", "sudo"], cwd=dest, check=True, capture_output=True)
    return next(dest.glob("sudo_*.deb"))


def test_perf_shell_on_debians_kernel(bookworm: Machine, tmp_path: Path) -> None:
    wheels = tmp_path / "wheels"
    shutil.copytree(bookworm.wheels, wheels)
    sudo_deb(wheels)
    result = Machine(bookworm.image, wheels).boot(SCENARIO, mode="init")
    assert result.install_rc == 0, result.install_log
    assert result.rc == 0, result.stderr + result.console[-3000:]
    assert result.step("boot_paranoid").stdout.strip() == "3"
    keep3 = result.step("keep3")
    assert keep3.rc == 2 and "perf_event_paranoid is 3" in keep3.stderr, keep3
    assert result.step("setup").rc == 0, result.step("setup")
    inside = result.step("inside")
    assert inside.rc == 0 and inside.stdout.startswith("counted"), inside
    outside = result.step("outside")
    assert outside.rc != 0 and "Permission denied" in outside.stderr, outside
    assert result.step("stat").rc == 0, result.step("stat")
    assert result.step("caps").stdout.split() == ["CapAmb:", "0000004000000000"]
    assert result.step("audit").rc == 0, result.step("audit")
    # Debian's 3 blocks CAP_PERFMON: the shell cannot work there either (as the copy cannot).
    inside3 = result.step("inside3")
    assert inside3.rc != 0, inside3
