"""sysctl.py: boot order of the config files, the persisted value, the drop-in."""

from __future__ import annotations

import pytest

from perfgroup.engine import sysctl


def test_boot_order_masks_same_names_and_sorts() -> None:
    listing = {
        "/etc/sysctl.d": ["90-perfgroup-x.conf", "10-local.conf", "README"],
        "/usr/lib/sysctl.d": ["10-local.conf", "50-default.conf"],
    }
    assert sysctl.boot_order(listing) == [
        "/etc/sysctl.d/10-local.conf", "/usr/lib/sysctl.d/50-default.conf", "/etc/sysctl.d/90-perfgroup-x.conf",
    ]


@pytest.mark.parametrize(("files", "expected"), [
    ([], (None, None)),
    ([("a", "kernel.perf_event_paranoid = 2\n")], (2, "a")),
    ([("a", "kernel.perf_event_paranoid=2"), ("b", "# kernel.perf_event_paranoid = -1")], (2, "a")),
    ([("a", "kernel.perf_event_paranoid = 2"), ("b", "kernel/perf_event_paranoid = 1")], (1, "b")),
    ([("a", "-kernel.perf_event_paranoid = 3"), ("b", "vm.swappiness=1")], (3, "a")),
    ([("a", "kernel.perf_event_paranoid = x")], (None, "a")),
])
def test_persisted_value(files: list[tuple[str, str]], expected: tuple[int | None, str | None]) -> None:
    assert sysctl.persisted_value(files) == expected


def test_dropin_round_trips() -> None:
    assert list(sysctl.assignments(sysctl.render_dropin("g", 2))) == [2]
