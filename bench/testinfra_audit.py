"""The same checks as a pytest-testinfra suite, for the fleet benchmark:
    py.test --hosts=ansible://all --ansible-inventory=INV bench/testinfra_audit.py"""

DEST = "/usr/local/libexec/perfgroup/perf_users/perf"


def test_group(host):
    assert host.group("perf_users").exists


def test_copy(host):
    copy = host.file(DEST)
    assert copy.exists and copy.user == "root" and copy.group == "perf_users" and copy.mode == 0o750


def test_caps(host):
    assert "cap_perfmon=ep" in host.check_output(f"getcap {DEST}")


def test_parents(host):
    for directory in ("/usr/local/libexec/perfgroup/perf_users", "/usr/local/libexec/perfgroup", "/usr/local/libexec"):
        parent = host.file(directory)
        assert parent.user == "root" and not parent.mode & 0o022


def test_paranoid(host):
    assert int(host.file("/proc/sys/kernel/perf_event_paranoid").content_string) >= 2


def test_persisted(host):
    assert host.file("/etc/sysctl.d/90-perfgroup-perf_users.conf").contains("perf_event_paranoid = 2")


def test_profile(host):
    assert host.file("/etc/profile.d/perfgroup-perf_users.sh").exists


def test_kptr(host):
    assert host.file("/proc/sys/kernel/kptr_restrict").exists
