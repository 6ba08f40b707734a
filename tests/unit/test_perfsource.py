from __future__ import annotations

from pathlib import Path

import pytest

from perfgroup.engine.perfsource import install_command, os_ids, os_label, wrapper_targets

UBUNTU_TOOLS = ("apt-get", "install", "-y", "linux-tools-common", "linux-tools-6.8.0-40-generic")
DNF_PERF = ("dnf", "install", "-y", "perf")


# /etc/os-release as the distributions ship it (abridged to the keys perfgroup reads).
@pytest.mark.parametrize(("os_release", "command", "label"), [
    ('ID=debian\nVERSION_ID="12"\n', ("apt-get", "install", "-y", "linux-perf"), "debian-12"),
    ('ID=debian\nVERSION_ID="11"\n', ("apt-get", "install", "-y", "linux-perf"), "debian-11"),
    ('ID=ubuntu\nID_LIKE=debian\nVERSION_ID="22.04"\n', UBUNTU_TOOLS, "ubuntu-22.04"),
    ('ID=ubuntu\nID_LIKE=debian\nVERSION_ID="24.04"\n', UBUNTU_TOOLS, "ubuntu-24.04"),
    ('ID=linuxmint\nID_LIKE="ubuntu debian"\nVERSION_ID="21.3"\n', UBUNTU_TOOLS, "linuxmint-21.3"),
    ('ID="rhel"\nID_LIKE="fedora"\nVERSION_ID="8.10"\n', DNF_PERF, "rhel-8.10"),
    ('ID="rhel"\nID_LIKE="fedora"\nVERSION_ID="9.4"\n', DNF_PERF, "rhel-9.4"),
    ('ID="rhel"\nID_LIKE="centos fedora"\nVERSION_ID="10.0"\n', DNF_PERF, "rhel-10.0"),
    ('ID="rocky"\nID_LIKE="rhel centos fedora"\nVERSION_ID="9.4"\n', DNF_PERF, "rocky-9.4"),
    ('ID="almalinux"\nID_LIKE="rhel centos fedora"\nVERSION_ID="8.10"\n', DNF_PERF, "almalinux-8.10"),
    ('ID="sles"\nID_LIKE="suse"\nVERSION_ID="15.6"\n', ("zypper", "--non-interactive", "install", "perf"), "sles-15.6"),
    ("ID=plan9\n", None, "plan9-"),
])
def test_install_command(os_release: str, command: tuple[str, ...] | None, label: str) -> None:
    assert install_command(os_release, "6.8.0-40-generic") == command
    assert os_label(os_release) == label


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


def test_a_source_below_a_directory_others_may_write_is_refused(tmp_path: Path) -> None:
    """Root's own perf ELF, but a directory above it is not root's alone: whoever may write there
    could swap in another ELF (security review finding 4)."""
    from perfgroup.engine.desired import Desired
    from perfgroup.engine.facts import source_facts
    from perfgroup.engine.paths import default_dest

    source = tmp_path / "perf"
    source.write_bytes(b"\x7fELF" + b"\0" * 64 + b"perf version %s\0")
    source.chmod(0o755)
    desired = Desired(group="perf_users", dest=default_dest("perf_users"), source=str(source))
    found = source_facts(desired, None, "6.1.0", "ID=debian\n")
    assert found.path is None and found.sha256 is None
    error = found.error or ""
    assert str(source) in error and ("writable by group or others" in error or "owned by uid" in error), error
