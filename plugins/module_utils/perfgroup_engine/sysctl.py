"""kernel.perf_event_paranoid: what boot will apply, and the drop-in perfgroup writes. Pure."""

from __future__ import annotations

from collections.abc import Iterable

KEY = "kernel.perf_event_paranoid"
PROC_PATH = "/proc/sys/kernel/perf_event_paranoid"
# systemd-sysctl's search order; a file name in an earlier directory masks the same name later.
CONFIG_DIRS = ("/etc/sysctl.d", "/run/sysctl.d", "/usr/local/lib/sysctl.d", "/usr/lib/sysctl.d", "/lib/sysctl.d")
# procps `sysctl --system` applies this one last.
LEGACY_CONF = "/etc/sysctl.conf"


def render_dropin(group: str, value: int) -> str:
    return (
        f"# Managed by perfgroup for group {group}: do not edit, run `perfgroup setup` instead.\n"
        "# Only root and members of the perf group (through file capabilities) may profile\n"
        "# system-wide or the kernel; everyone else keeps per-process, user-space-only perf.\n"
        f"{KEY} = {value}\n"
    )


def boot_order(listing: dict[str, list[str]]) -> list[str]:
    """Config files in the order boot applies them, from {directory: [file names]}."""
    chosen: dict[str, str] = {}
    for directory in CONFIG_DIRS:
        for name in listing.get(directory, []):
            if name.endswith(".conf") and name not in chosen:
                chosen[name] = f"{directory}/{name}"
    return [chosen[name] for name in sorted(chosen)]


def assignments(text: str) -> Iterable[int | None]:
    """Every value this config text assigns to perf_event_paranoid (None if unparsable)."""
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line[0] in "#;":
            continue
        key, sep, value = line.partition("=")
        if not sep:
            continue
        if key.strip().lstrip("-").replace("/", ".") != KEY:
            continue
        try:
            yield int(value.strip())
        except ValueError:
            yield None


def persisted_value(files: list[tuple[str, str]]) -> tuple[int | None, str | None]:
    """(value, file) of the last assignment boot will apply, or (None, None) if none."""
    result: tuple[int | None, str | None] = (None, None)
    for path, text in files:
        for value in assignments(text):
            result = (value, path)
    return result
