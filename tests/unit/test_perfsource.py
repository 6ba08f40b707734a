from __future__ import annotations

from pathlib import Path

import pytest

from perfgroup.engine.perfsource import install_command, os_ids, wrapper_targets


@pytest.mark.parametrize(("os_release", "command"), [
    ('ID=debian\nVERSION_ID="12"\n', ("apt-get", "install", "-y", "linux-perf")),
    ("ID=ubuntu\nID_LIKE=debian\n", ("apt-get", "install", "-y", "linux-tools-generic")),
    ('ID="rocky"\nID_LIKE="rhel centos fedora"\n', ("dnf", "install", "-y", "perf")),
    ('ID=linuxmint\nID_LIKE="ubuntu debian"\n', ("apt-get", "install", "-y", "linux-tools-generic")),
    ("ID=plan9\n", None),
])
def test_install_command(os_release: str, command: tuple[str, ...] | None) -> None:
    assert install_command(os_release) == command


def test_os_ids() -> None:
    assert os_ids('ID=ubuntu\nID_LIKE="debian"') == ["ubuntu", "debian"]


def test_wrapper_targets_expand_variables_and_prefer_running_kernel(tmp_path: Path) -> None:
    for release in ("6.8.0-31-generic", "6.8.0-40-generic"):
        (tmp_path / release).mkdir()
        (tmp_path / release / "perf").write_bytes(b"\x7fELF")
    script = f'#!/bin/bash\nfull_version=`uname -r`\nexec "{tmp_path}/$full_version/perf" "$@"\n'
    found = wrapper_targets(script, "6.8.0-40-generic")
    assert found[0] == f"{tmp_path}/6.8.0-40-generic/perf"
    assert len(found) == 2


def test_wrapper_without_exec_of_perf_has_no_targets() -> None:
    assert wrapper_targets("#!/bin/sh\nexec /bin/true\n", "6.1.0") == []
