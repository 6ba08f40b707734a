from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from images import ensure_image
from qemu import QEMU, TIMINGS, Machine, build_wheels

CHECKOUT = Path(__file__).resolve().parents[2]


def vm_missing() -> str | None:
    if os.geteuid() != 0:
        return "VM images are built with debootstrap and chroot: root is needed"
    for tool in (QEMU, "debootstrap", "cpio", "mkfs.ext4", "dpkg-deb"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed (.ci/run installs it)"
    return None


@pytest.fixture(scope="session")
def vm_ready() -> None:
    if os.environ.get("PERFGROUP_SKIP_VM"):
        pytest.skip("PERFGROUP_SKIP_VM is set: real-kernel VM tests not run")
    reason = vm_missing()
    if reason:
        pytest.fail(reason)  # never skip silently: CI must run the kernel-level checks


@pytest.fixture(scope="session")
def wheels(vm_ready: None, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_wheels(CHECKOUT, tmp_path_factory.mktemp("wheels"))


@pytest.fixture(scope="session")
def bookworm(wheels: Path) -> Machine:
    return Machine(ensure_image("bookworm"), wheels)


@pytest.fixture(scope="session")
def bullseye(wheels: Path) -> Machine:
    return Machine(ensure_image("bullseye"), wheels)


@pytest.fixture(scope="session")
def trixie(wheels: Path) -> Machine:
    return Machine(ensure_image("trixie"), wheels)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if TIMINGS:
        terminalreporter.write_sep("-", "VM boots (the lane must stay within 15 minutes of CI)")
        for line in TIMINGS:
            terminalreporter.write_line(line)
