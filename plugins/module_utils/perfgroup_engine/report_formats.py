"""Audit report -> monitoring formats: Prometheus textfile (node_exporter) and Nagios plugin output.

Standard library only, and runs on Python 3.8 (the node side: RHEL 8's python3). Pure, except
write_textfile.

Prometheus scheme (values follow Nagios's exit codes, so one alert rule fits both worlds):
  perfgroup_check{group,finding,severity}        0 ok, 1 warning, 2 critical, 3 unknown; one series
                                                 per finding id (the worst, if an id repeats)
  perfgroup_status{group}                        the report's overall status, same values
  perfgroup_findings{group,severity}             how many findings of each severity (all four, 0 too)
  perfgroup_last_audit_timestamp_seconds{group}  when the audit ran (alert when it goes stale)
Only group, finding id and severity appear as label values: never messages or members, which
can carry user names.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence

TYPE_CHECKING = False  # as typing.TYPE_CHECKING (mypy knows the name), without importing typing at run time
if TYPE_CHECKING:
    from typing import Any, Callable

SEVERITIES = ("ok", "warning", "critical", "unknown")
VALUE = {"ok": 0, "warning": 1, "critical": 2, "unknown": 3}
_BY_VALUE = {value: name for name, value in VALUE.items()}
# Worst first: critical > unknown > warning > ok (Nagios's own ordering of states for a summary).
_RANK = {"critical": 3, "unknown": 2, "warning": 1, "ok": 0}


def _severity(value: object) -> str:
    text = str(value).lower() if value is not None else "unknown"
    return text if text in VALUE else "unknown"


def _findings(report: Mapping[str, object]) -> list[tuple[str, str, str, str]]:
    """(id, severity, message, fix) of every well-formed finding; anything else becomes an
    'unknown' finding, so a broken report never looks healthy."""
    raw = report.get("findings")
    result: list[tuple[str, str, str, str]] = []
    if not isinstance(raw, (list, tuple)):
        return [("report.malformed", "unknown", "the audit report has no list of findings", "")]
    for item in raw:
        if not isinstance(item, Mapping):
            result.append(("report.malformed", "unknown", "a finding is not a mapping", ""))
            continue
        result.append((
            str(item.get("id", "unnamed")),
            _severity(item.get("severity")),
            str(item.get("message", "")),
            str(item.get("fix", "") or ""),
        ))
    return result


def _status(report: Mapping[str, object], findings: Sequence[tuple[str, str, str, str]]) -> str:
    status = report.get("status")
    if isinstance(status, str) and status.lower() in VALUE:
        return status.lower()
    code = report.get("exit_code")
    if isinstance(code, int) and not isinstance(code, bool) and code in _BY_VALUE:
        return _BY_VALUE[code]
    if not findings:
        return "unknown"
    return max((severity for _, severity, _, _ in findings), key=lambda s: _RANK[s])


# -- text, for people ---------------------------------------------------------------------------

def escape(text: str) -> str:
    """Control characters from names perfgroup did not write (group database, paths) shown as
    escapes, so they cannot move the cursor or forge lines on an administrator's terminal."""
    if text.isprintable():
        return text
    return "".join(ch if ch.isprintable() else ch.encode("unicode_escape").decode("ascii") for ch in text)


def plain_tag(severity: str) -> str:
    return f"{severity.upper():8}"


def text(report: Mapping[str, object], tag: Callable[[str], str] = plain_tag) -> str:
    """The audit as people read it (the CLI passes a colouring tag): one line per finding, the fix
    under each that is not ok, the status last. The same lines from the CLI, its click-free path and
    perfgroup-node."""
    findings = _findings(report)
    lines = []
    for finding_id, severity, message, fix in findings:
        lines.append(f"{tag(severity)} {finding_id:26} {escape(message)}")
        if severity != "ok" and fix:
            lines.append(f"{'':35}fix: {escape(fix)}")
    lines.append(f"status: {_status(report, findings).upper()}")
    return "\n".join(lines) + "\n"


# -- Prometheus ---------------------------------------------------------------------------------

def _label(value: str) -> str:
    """A label value per the text exposition format: backslash, double quote and newline escaped."""
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _number(value: float) -> str:
    if value == int(value) and abs(value) < 2**53:
        return str(int(value))
    return repr(float(value))


def prometheus(report: Mapping[str, object], now: float) -> str:
    group = _label(str(report.get("group", "")))
    findings = _findings(report)
    worst: dict[str, str] = {}
    for finding_id, severity, _, _ in findings:
        if finding_id not in worst or _RANK[severity] > _RANK[worst[finding_id]]:
            worst[finding_id] = severity
    counts = {severity: 0 for severity in SEVERITIES}
    for _, severity, _, _ in findings:
        counts[severity] += 1

    lines = [
        "# HELP perfgroup_check One audit finding: 0 ok, 1 warning, 2 critical, 3 unknown.",
        "# TYPE perfgroup_check gauge",
    ]
    for finding_id in sorted(worst):
        severity = worst[finding_id]
        lines.append(f'perfgroup_check{{group="{group}",finding="{_label(finding_id)}",severity="{severity}"}} '
                     f"{VALUE[severity]}")
    lines += [
        "# HELP perfgroup_status Overall audit status: 0 ok, 1 warning, 2 critical, 3 unknown.",
        "# TYPE perfgroup_status gauge",
        f'perfgroup_status{{group="{group}"}} {VALUE[_status(report, findings)]}',
        "# HELP perfgroup_findings Number of audit findings of each severity.",
        "# TYPE perfgroup_findings gauge",
    ]
    for severity in SEVERITIES:
        lines.append(f'perfgroup_findings{{group="{group}",severity="{severity}"}} {counts[severity]}')
    lines += [
        "# HELP perfgroup_last_audit_timestamp_seconds When the audit ran, in seconds since the epoch.",
        "# TYPE perfgroup_last_audit_timestamp_seconds gauge",
        f'perfgroup_last_audit_timestamp_seconds{{group="{group}"}} {_number(now)}',
    ]
    return "\n".join(lines) + "\n"


def _safe_group(group: str) -> str:
    if not group or len(group) > 64 or not all(c.isascii() and (c.isalnum() or c in "_-") for c in group):
        raise ValueError(f"group {group!r} cannot name a textfile")
    return group


def write_textfile(directory: str, group: str, text: str) -> str:
    """Atomically replace DIRECTORY/perfgroup_GROUP.prom with text (mode 0644). The temporary file
    lives in the same directory (same filesystem, so the rename is atomic) and does not end in
    .prom, so node_exporter never reads it half-written."""
    final = os.path.join(directory, f"perfgroup_{_safe_group(group)}.prom")
    data = text.encode("utf-8")
    for _ in range(100):
        temp = os.path.join(directory, f".perfgroup_{group}.prom.{os.urandom(6).hex()}.tmp")
        try:
            fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        except FileExistsError:
            continue
        break
    else:  # pragma: no cover - 100 collisions of 48 random bits
        raise FileExistsError(f"no free temporary name in {directory}")
    try:
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            os.fchmod(fd, 0o644)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.rename(temp, final)
    except BaseException:
        try:  # noqa: SIM105 - contextlib is not imported on the audit path
            os.unlink(temp)
        except OSError:
            pass
        raise
    try:
        dir_fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError:
        return final
    try:
        try:  # noqa: SIM105 - contextlib is not imported on the audit path
            os.fsync(dir_fd)
        except OSError:
            pass
    finally:
        os.close(dir_fd)
    return final


# -- Nagios -------------------------------------------------------------------------------------

def _plain(text: str) -> str:
    """One line of plugin output: backslash, control characters and '|' (which starts the
    performance data) written as escapes."""
    out = []
    for char in text:
        code = ord(char)
        if char == "\\":
            out.append("\\\\")
        elif char == "\n":
            out.append("\\n")
        elif char == "\r":
            out.append("\\r")
        elif char == "\t":
            out.append("\\t")
        elif char == "|":
            out.append("\\x7c")
        elif code < 0x20 or code == 0x7F or 0x80 <= code < 0xA0 or char in "\u2028\u2029":
            out.append(f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}")
        else:
            out.append(char)
    return "".join(out)


SUMMARY_LIMIT = 400


def nagios(report: Mapping[str, object]) -> str:
    """`PERFGROUP STATE - summary | perfdata` and one long-text line per non-ok finding (worst
    first), per the Nagios plugin guidelines."""
    findings = _findings(report)
    status = _status(report, findings)
    bad = sorted((f for f in findings if f[1] != "ok"), key=lambda f: -_RANK[f[1]])
    counts = {severity: 0 for severity in SEVERITIES}
    for _, severity, _, _ in findings:
        counts[severity] += 1
    if bad:
        summary = "; ".join(f"{finding_id}: {message}" if message else finding_id
                            for finding_id, _, message, _ in bad)
        if len(summary) > SUMMARY_LIMIT:  # the full text is in the long-text lines below
            summary = summary[:SUMMARY_LIMIT - 3] + "..."
        summary = _plain(summary)
    else:
        summary = f"{counts['ok']} checks ok"
    perfdata = " ".join(f"'{severity}'={counts[severity]};;;0" for severity in ("critical", "warning", "ok", "unknown"))
    lines = [f"PERFGROUP {status.upper()} - {summary} | {perfdata}"]
    for finding_id, severity, message, fix in bad:
        line = f"{severity.upper()} {finding_id}: {message}"
        if fix:
            line += f" (fix: {fix})"
        lines.append(_plain(line))
    return "\n".join(lines) + "\n"


def machine_output(fmt: str, report: Mapping[str, Any], group: str, textfile_dir: str | None, now: float) -> str:
    """The audit in a machine format, for the CLI and perfgroup-node alike: what to print (with
    --textfile-dir, prometheus text is written to the textfile instead and nothing is printed)."""
    if fmt == "json":
        import json  # the json format only

        return json.dumps(report, indent=2, sort_keys=True, default=str) + "\n"
    if fmt == "nagios":
        return nagios(report)
    text = prometheus(report, now)
    if textfile_dir:
        write_textfile(textfile_dir, group, text)
        return ""
    return text
