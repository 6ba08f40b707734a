"""profile.py: the PATH snippet for members."""

from __future__ import annotations

from perfgroup.engine import profile


def test_profile_snippet_is_posix_and_group_specific() -> None:
    text = profile.render("perf_users", "/usr/local/libexec/perfgroup/perf_users")
    assert '*" perf_users "*)' in text
    assert "PATH=/usr/local/libexec/perfgroup/perf_users:\"$PATH\"" in text
