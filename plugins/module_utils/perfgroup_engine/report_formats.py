"""Audit report -> monitoring formats: Prometheus textfile (node_exporter) and Nagios plugin output.

Standard library only, and runs on Python 3.8 (the node side: RHEL 8's python3). Pure, except
write_textfile.

Prometheus scheme (values follow Nagios's exit codes, so one alert rule fits both worlds; every
series also carries `group`; docs/monitoring.md is the reference, with the per-node budget):
  perfgroup_check{finding,severity}          0 ok, 1 warning, 2 critical, 3 unknown; one series
                                             per finding id (the worst, if an id repeats)
  perfgroup_finding_fix_info{finding,fix}    1 per finding that is not ok: the command that fixes it
  perfgroup_status                           the report's overall status, same values
  perfgroup_findings{severity}               how many findings of each severity (all four, 0 too)
  perfgroup_audit_timestamp_seconds          when the audit ran (alert when it goes stale)
  perfgroup_group_info{gid,local}            1 when the group exists (fleet: the same gid everywhere)
  perfgroup_group_members                    how many members the group has
  perfgroup_members_info{local,digest}       1 when the group exists: a digest of its member list
                                             (fleet: the same local members everywhere)
  perfgroup_build_info{os,sha256}            1 when the copy exists (fleet: one build per OS)
  perfgroup_capabilities_info{kernel,cap_last_cap,capabilities}
                                             1 when the copy has capabilities (fleet: the same per kernel)
Label values are bounded: finding ids, severities, a gid, hashes, the OS label, the kernel release,
capability names and the fix (at most FIX_LIMIT characters, members' names replaced by USER).
Never messages, member names or anything per user.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence

from .finding import RANK, SEVERITIES, VALUE

TYPE_CHECKING = False  # as typing.TYPE_CHECKING (mypy knows the name), without importing typing at run time
if TYPE_CHECKING:
    from typing import Any, Callable

_BY_VALUE = {value: name for name, value in VALUE.items()}


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
    return max((severity for _, severity, _, _ in findings), key=RANK.__getitem__)


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


LABEL_LIMIT = 128  # os and kernel labels: uname's release is at most 64 bytes, os-release is any text
FIX_LIMIT = 200


def _bounded(value: object, limit: int = LABEL_LIMIT) -> str:
    text = str(value)
    return text if len(text) <= limit else text[:limit - 3] + "..."


def _sha256_hex(text: str) -> str:
    """CPython's built-in sha256 where it exists: hashlib would load OpenSSL on the audit path."""
    try:
        from _sha256 import sha256  # type: ignore[import-not-found,unused-ignore]  # Python <= 3.11
    except ImportError:
        try:
            from _sha2 import sha256  # type: ignore[import-not-found,no-redef,unused-ignore]  # Python >= 3.12
        except ImportError:  # pragma: no cover - a Python built without them
            from hashlib import sha256  # type: ignore[assignment,unused-ignore]
    return sha256(text.encode("utf-8")).hexdigest()  # type: ignore[no-any-return,unused-ignore]


def members_digest(members: Sequence[str]) -> str:
    """The first 16 hex digits of sha256 over the sorted member names, one per line: equal on nodes
    with the same members, and no name in the metrics."""
    return _sha256_hex("\n".join(sorted(members)))[:16]


def _fix_label(fix: str, members: Sequence[str], group: str) -> str:
    """A finding's fix as a label value: member names (today's fixes say USER, this keeps it so)
    replaced by USER, one line, bounded."""
    names = set(members) - {group}
    words, word = [], []
    for char in fix + "\0":  # split into names (user-name characters) and what lies between
        if char.isalnum() or char in "._-$":
            word.append(char)
            continue
        if word:
            token = "".join(word)
            words.append("USER" if token in names else token)
            word = []
        words.append(char)
    return _bounded(" ".join("".join(words[:-1]).split()), FIX_LIMIT)


def _strings(value: object) -> list[str]:
    return [str(item) for item in value] if isinstance(value, (list, tuple)) else []


def prometheus(report: Mapping[str, object], now: float) -> str:
    group = _label(str(report.get("group", "")))
    findings = _findings(report)
    members = _strings(report.get("members"))
    worst: dict[str, str] = {}
    fixes: dict[str, str] = {}
    for finding_id, severity, _, fix in findings:
        if finding_id not in worst or RANK[severity] > RANK[worst[finding_id]]:
            worst[finding_id] = severity
            fixes[finding_id] = fix
    counts = {severity: 0 for severity in SEVERITIES}
    for _, severity, _, _ in findings:
        counts[severity] += 1

    lines: list[str] = []

    def family(name: str, help_text: str, samples: list[tuple[tuple[tuple[str, str], ...], object]]) -> None:
        """One gauge family; none at all when it has no sample (a fact the node does not have)."""
        if not samples:
            return
        lines.append(f"# HELP {name} {help_text}")
        lines.append(f"# TYPE {name} gauge")
        for pairs, value in samples:
            rendered = "".join(f',{key}="{_label(val)}"' for key, val in pairs)
            lines.append(f'{name}{{group="{group}"{rendered}}} {value}')

    family("perfgroup_check", "One audit finding: 0 ok, 1 warning, 2 critical, 3 unknown.",
           [((("finding", fid), ("severity", worst[fid])), VALUE[worst[fid]]) for fid in sorted(worst)])
    family("perfgroup_finding_fix_info", "The command that fixes a finding that is not ok (1 per finding).",
           [((("finding", fid), ("fix", _fix_label(fixes[fid], members, str(report.get("group", ""))))), 1)
            for fid in sorted(worst) if worst[fid] != "ok"])
    family("perfgroup_status", "Overall audit status: 0 ok, 1 warning, 2 critical, 3 unknown.",
           [((), VALUE[_status(report, findings)])])
    family("perfgroup_findings", "Number of audit findings of each severity.",
           [((("severity", severity),), counts[severity]) for severity in SEVERITIES])
    grants = report.get("job_grants_active")
    family("perfgroup_job_grants_active", "Live per-job grants under Slurm (grant records whose job runs here).",
           [((), grants)] if isinstance(grants, int) and not isinstance(grants, bool) else [])
    family("perfgroup_audit_timestamp_seconds", "When the audit ran, in seconds since the epoch.",
           [((), _number(now))])

    gid = report.get("gid")
    exists = isinstance(gid, int) and not isinstance(gid, bool)
    local = "true" if report.get("group_local") else "false"
    family("perfgroup_group_info", "The group exists with this gid (1); absent when it does not exist.",
           [((("gid", str(gid)), ("local", local)), 1)] if exists else [])
    family("perfgroup_group_members", "Number of members of the group.", [((), len(members))])
    family("perfgroup_members_info", "A digest of the group's sorted member names (1); absent without the group.",
           [((("local", local), ("digest", members_digest(members))), 1)] if exists else [])
    sha = report.get("copy_sha256")
    family("perfgroup_build_info", "The privileged copy's sha256 on this OS (1); absent without the copy.",
           [((("os", _bounded(report.get("os_release") or "unknown")), ("sha256", _bounded(sha))), 1)]
           if isinstance(sha, str) and sha else [])
    caps = _strings(report.get("caps"))
    last_cap = report.get("cap_last_cap")
    family("perfgroup_capabilities_info",
           "The privileged copy's permitted capabilities on this kernel (1); absent without capabilities.",
           [((("kernel", _bounded(report.get("kernel_release") or "unknown")),
              ("cap_last_cap", "" if last_cap is None else str(last_cap)),
              ("capabilities", ",".join(sorted(caps)))), 1)] if caps else [])
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
    bad = sorted((f for f in findings if f[1] != "ok"), key=lambda f: -RANK[f[1]])
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
    grants = report.get("job_grants_active")
    if isinstance(grants, int) and not isinstance(grants, bool):
        perfdata += f" 'job_grants'={grants};;;0"
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
