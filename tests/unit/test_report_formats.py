"""Audit report -> Prometheus textfile and Nagios plugin output (perfgroup/engine/report_formats.py)."""

from __future__ import annotations

import ast
import os
import re
import stat
import threading
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from perfgroup.engine import report_formats

SOURCE = Path(report_formats.__file__)


def report(*findings: tuple[str, str], status: str | None = None, **extra: object) -> dict[str, object]:
    worst = max((s for _, s in findings), key=lambda s: {"ok": 0, "warning": 1, "unknown": 2, "critical": 3}.get(s, 2),
                default="ok")
    return {"group": "perf_users", "status": status or worst, "exit_code": 0, "gid": 995, "members": ["alice", "bob"],
            "findings": [{"id": i, "severity": s, "message": f"message of {i}", "fix": f"fix {i}"}
                         for i, s in findings], **extra}


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            key = (sample.name, tuple(sorted(sample.labels.items())))
            assert key not in found, f"duplicate series {key}"
            found[key] = sample.value
    return found


# -- Prometheus ------------------------------------------------------------------------------------

def test_prometheus_parses_with_the_documented_values() -> None:
    text = report_formats.prometheus(report(("copy.ok", "ok"), ("sysctl.missing", "warning"),
                                            ("copy.world_access", "critical"), ("state.unusable", "unknown")),
                                     now=1700000000.5)
    got = samples(text)
    g = ("group", "perf_users")
    assert got[("perfgroup_check", (("finding", "copy.ok"), g, ("severity", "ok")))] == 0
    assert got[("perfgroup_check", (("finding", "sysctl.missing"), g, ("severity", "warning")))] == 1
    assert got[("perfgroup_check", (("finding", "copy.world_access"), g, ("severity", "critical")))] == 2
    assert got[("perfgroup_check", (("finding", "state.unusable"), g, ("severity", "unknown")))] == 3
    assert got[("perfgroup_status", (g,))] == 2
    assert got[("perfgroup_audit_timestamp_seconds", (g,))] == 1700000000.5
    for severity in ("ok", "warning", "critical", "unknown"):
        assert got[("perfgroup_findings", (g, ("severity", severity)))] == 1
    for finding in ("sysctl.missing", "copy.world_access", "state.unusable"):  # the fix of each that is not ok
        assert got[("perfgroup_finding_fix_info", (("finding", finding), ("fix", f"fix {finding}"), g))] == 1
    assert got[("perfgroup_group_info", (("gid", "995"), g, ("local", "false")))] == 1
    assert got[("perfgroup_group_members", (g,))] == 2
    assert got[("perfgroup_members_info", (("digest", report_formats.members_digest(["alice", "bob"])), g,
                                           ("local", "false")))] == 1
    assert len(got) == 4 + 3 + 1 + 4 + 1 + 3  # no copy, no capabilities: no build or capabilities info
    families = {f.name: f.type for f in text_string_to_metric_families(text)}
    assert set(families.values()) == {"gauge"}
    assert all(line.startswith(("# HELP perfgroup_", "# TYPE perfgroup_", "perfgroup_")) for line in text.splitlines())


@pytest.mark.parametrize(("status", "code", "findings", "expected"), [
    ("ok", 0, [("a", "ok")], 0),
    ("warning", 1, [("a", "warning")], 1),
    ("CRITICAL", 2, [("a", "critical")], 2),
    ("unknown", 3, [], 3),
    (None, 1, [("a", "ok")], 1),  # no status: the exit code
    ("bogus", None, [("a", "warning"), ("b", "critical")], 2),  # neither: the worst finding
    (None, None, [], 3),
])
def test_overall_status(status: str | None, code: int | None, findings: list[tuple[str, str]], expected: int) -> None:
    data = report(*findings)
    data["status"], data["exit_code"] = status, code
    assert samples(report_formats.prometheus(data, 1.0))[("perfgroup_status", (("group", "perf_users"),))] == expected


def test_hostile_labels_are_escaped_and_round_trip() -> None:
    hostile = 'id"with\\back\nslash} x="1'
    text = report_formats.prometheus({**report((hostile, "critical"), ("ok.id", "ok")), "group": 'g"\\\n'}, now=5)
    got = samples(text)
    assert got[("perfgroup_check", (("finding", hostile), ("group", 'g"\\\n'), ("severity", "critical")))] == 2
    assert len([line for line in text.splitlines() if not line.startswith("#")]) == 2 + 1 + 1 + 4 + 1 + 3


def test_no_user_names_or_messages_in_the_metrics() -> None:
    data = report(("group.present", "ok"), ("verify.member", "critical"))
    data["findings"][1]["message"] = "alice could not profile"  # type: ignore[index]
    text = report_formats.prometheus(data, 1)
    assert "alice" not in text and "bob" not in text and "message" not in text


def test_repeated_ids_and_bad_findings_give_one_series_each() -> None:
    data = report(("leftover.temp", "warning"), ("leftover.temp", "critical"), ("x", "weird-severity"))
    data["findings"].append("not a mapping")  # type: ignore[attr-defined]
    got = samples(report_formats.prometheus(data, 1))
    checks = {dict(k[1])["finding"]: (dict(k[1])["severity"], v) for k, v in got.items() if k[0] == "perfgroup_check"}
    assert checks == {"leftover.temp": ("critical", 2), "x": ("unknown", 3), "report.malformed": ("unknown", 3)}
    findings = {dict(k[1])["severity"]: v for k, v in got.items() if k[0] == "perfgroup_findings"}
    assert findings == {"ok": 0, "warning": 1, "critical": 1, "unknown": 2}


def test_a_report_without_findings_is_unknown_not_ok() -> None:
    got = samples(report_formats.prometheus({"group": "g", "findings": "nope"}, 1))
    assert got[("perfgroup_status", (("group", "g"),))] == 3


def test_fleet_facts_as_bounded_info_metrics() -> None:
    data = report(("copy.ok", "ok"), group_local=True, copy_sha256="ab" * 32, os_release="debian-12",
                  kernel_release="6.1.0-18-amd64", cap_last_cap=40, caps=["cap_syslog", "cap_perfmon"])
    got = samples(report_formats.prometheus(data, 1))
    g = ("group", "perf_users")
    assert got[("perfgroup_build_info", (g, ("os", "debian-12"), ("sha256", "ab" * 32)))] == 1
    assert got[("perfgroup_capabilities_info", (("cap_last_cap", "40"), ("capabilities", "cap_perfmon,cap_syslog"), g,
                                                ("kernel", "6.1.0-18-amd64")))] == 1
    assert got[("perfgroup_group_info", (("gid", "995"), g, ("local", "true")))] == 1
    long = report_formats.prometheus({**data, "kernel_release": "k" * 1000, "os_release": "o" * 1000}, 1)
    assert all(len(line) < 600 for line in long.splitlines())


def test_members_digest_is_order_free_and_names_no_one() -> None:
    digest = report_formats.members_digest(["bob", "alice"])
    assert digest == report_formats.members_digest(["alice", "bob"]) != report_formats.members_digest(["alice"])
    assert len(digest) == 16 and set(digest) <= set("0123456789abcdef")


@pytest.mark.parametrize(("fix", "shown"), [
    ("gpasswd -d alice perf_users", "gpasswd -d USER perf_users"),  # a member's name never becomes a label
    ("perfgroup setup --group perf_users", "perfgroup setup --group perf_users"),  # the group is no member
    ("usermod -g OTHER alicesmith", "usermod -g OTHER alicesmith"),  # only whole names
    ("one\ntwo  three", "one two three"),
    ("x" * 500, "x" * 197 + "..."),
])
def test_fix_labels_are_one_bounded_line_without_member_names(fix: str, shown: str) -> None:
    data = report(("group.gshadow_members", "warning"), members=["alice", "bob", "perf_users"])
    data["findings"][0]["fix"] = fix  # type: ignore[index]
    got = samples(report_formats.prometheus(data, 1))
    fixes = [dict(k[1])["fix"] for k in got if k[0] == "perfgroup_finding_fix_info"]
    assert fixes == [shown]


def test_no_group_and_no_copy_means_no_info_series() -> None:
    text = report_formats.prometheus({**report(("group.missing", "critical")), "gid": None, "members": []}, 1)
    assert "perfgroup_group_info" not in text and "perfgroup_members_info" not in text
    assert "perfgroup_build_info" not in text and "perfgroup_capabilities_info" not in text


# -- the textfile ----------------------------------------------------------------------------------

def test_textfile_is_replaced_atomically_with_mode_0644(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    seen_temp: list[str] = []
    real_rename = os.rename

    def rename(src: str, dst: str) -> None:
        seen_temp.append(os.path.basename(src))
        assert sorted(os.listdir(tmp_path)) == sorted({os.path.basename(src), *(
            [os.path.basename(dst)] if os.path.exists(dst) else [])})
        assert Path(src).read_text() in ("first\n", "second\n")  # complete before it gets the name
        real_rename(src, dst)

    monkeypatch.setattr(report_formats.os, "rename", rename)
    old_umask = os.umask(0o077)
    try:
        path = report_formats.write_textfile(str(tmp_path), "perf_users", "first\n")
        inode = os.stat(path).st_ino
        assert report_formats.write_textfile(str(tmp_path), "perf_users", "second\n") == path
    finally:
        os.umask(old_umask)
    assert path == str(tmp_path / "perfgroup_perf_users.prom")
    assert Path(path).read_text() == "second\n"  # replaced, not appended
    assert os.stat(path).st_ino != inode  # a new file renamed over the old one
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o644
    assert os.listdir(tmp_path) == ["perfgroup_perf_users.prom"]
    assert len(seen_temp) == 2 and not any(name.endswith(".prom") for name in seen_temp)
    assert all(name.startswith(".") for name in seen_temp)  # hidden too


def test_a_failed_write_leaves_the_old_file_and_no_temp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = report_formats.write_textfile(str(tmp_path), "g", "old\n")

    def fail(fd: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(report_formats.os, "fsync", fail)
    with pytest.raises(OSError, match="No space"):
        report_formats.write_textfile(str(tmp_path), "g", "new\n")
    assert os.listdir(tmp_path) == ["perfgroup_g.prom"] and Path(path).read_text() == "old\n"


def test_readers_never_see_a_partial_file(tmp_path: Path) -> None:
    big = "".join(f'perfgroup_check{{group="g",finding="f{i}",severity="ok"}} 0\n' for i in range(20000))
    report_formats.write_textfile(str(tmp_path), "g", big)
    stop, bad = threading.Event(), []

    def read() -> None:
        while not stop.is_set():
            text = (tmp_path / "perfgroup_g.prom").read_text()
            if text != big:
                bad.append(len(text))

    reader = threading.Thread(target=read)
    reader.start()
    for _ in range(30):
        report_formats.write_textfile(str(tmp_path), "g", big)
    stop.set()
    reader.join()
    assert bad == []


@pytest.mark.parametrize("group", ["", "../x", "a/b", "a b", "x" * 65])
def test_textfile_refuses_a_group_that_cannot_name_a_file(tmp_path: Path, group: str) -> None:
    with pytest.raises(ValueError):
        report_formats.write_textfile(str(tmp_path), group, "x\n")
    assert os.listdir(tmp_path) == []


# -- Nagios ----------------------------------------------------------------------------------------

LINE = re.compile(r"^PERFGROUP (OK|WARNING|CRITICAL|UNKNOWN) - ([^|\n]+) \| "
                  r"'critical'=(\d+);;;0 'warning'=(\d+);;;0 'ok'=(\d+);;;0 'unknown'=(\d+);;;0$")


@pytest.mark.parametrize(("findings", "state", "summary", "counts", "long_lines"), [
    ([("copy.ok", "ok"), ("caps.ok", "ok")], "OK", "2 checks ok", (0, 0, 2, 0), []),
    ([("copy.ok", "ok"), ("sysctl.missing", "warning")], "WARNING", "sysctl.missing: message of sysctl.missing",
     (0, 1, 1, 0), ["WARNING sysctl.missing: message of sysctl.missing (fix: fix sysctl.missing)"]),
    ([("sysctl.missing", "warning"), ("copy.world_access", "critical")], "CRITICAL",
     "copy.world_access: message of copy.world_access; sysctl.missing: message of sysctl.missing", (1, 1, 0, 0),
     ["CRITICAL copy.world_access: message of copy.world_access (fix: fix copy.world_access)",
      "WARNING sysctl.missing: message of sysctl.missing (fix: fix sysctl.missing)"]),
    ([("state.unusable", "unknown")], "UNKNOWN", "state.unusable: message of state.unusable", (0, 0, 0, 1),
     ["UNKNOWN state.unusable: message of state.unusable (fix: fix state.unusable)"]),
])
def test_nagios_output(findings: list[tuple[str, str]], state: str, summary: str, counts: tuple[int, ...],
                       long_lines: list[str]) -> None:
    text = report_formats.nagios(report(*findings))
    first, *rest = text.rstrip("\n").split("\n")
    match = LINE.match(first)
    assert match, first
    assert match.group(1) == state and match.group(2) == summary
    assert tuple(int(n) for n in match.groups()[2:]) == counts
    assert rest == long_lines


def test_nagios_escapes_control_characters_and_pipes() -> None:
    data = report(("copy.world_access", "critical"))
    data["findings"][0]["message"] = "evil\nPERFGROUP OK - fake | 'ok'=1\r\x1b[31m\ttab\\"  # type: ignore[index]
    text = report_formats.nagios(data)
    lines = text.rstrip("\n").split("\n")
    assert len(lines) == 2
    assert LINE.match(lines[0]), lines[0]
    assert lines[0].count("|") == 1  # only the perfdata separator
    assert "evil\\nPERFGROUP OK - fake \\x7c 'ok'=1\\r\\x1b[31m\\ttab\\\\" in lines[0]
    assert all(0x20 <= ord(c) < 0x7F for c in text.replace("\n", ""))


def test_nagios_summary_is_bounded_but_long_text_is_complete() -> None:
    many = [(f"finding.{i}", "warning") for i in range(50)]
    first, *rest = report_formats.nagios(report(*many)).rstrip("\n").split("\n")
    assert LINE.match(first) and len(first) < report_formats.SUMMARY_LIMIT + 120 and "..." in first
    assert len(rest) == 50


# -- Python 3.8 and the engine's rules -------------------------------------------------------------

def test_source_is_python_38_and_standard_library_only() -> None:
    source = SOURCE.read_text()
    tree = ast.parse(source, feature_version=(3, 8))  # no match, no walrus-only-3.9 syntax, ...
    imported = {alias.name.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.Import)
                for alias in node.names}
    imported |= {node.module.split(".")[0] for node in ast.walk(tree)
                 if isinstance(node, ast.ImportFrom) and node.module and not node.level}
    # _sha256/_sha2: CPython's built-in sha256 (hashlib only where neither exists)
    assert imported <= {"__future__", "collections", "contextlib", "json", "os", "typing", "_sha256", "_sha2", "hashlib"}
    assert "from __future__ import annotations" in source  # builtin generics only in annotations
    for name in ("removeprefix", "removesuffix", "functools.cache"):
        assert name not in source, name


@pytest.mark.parametrize(("raw", "shown"), [
    ("alice", "alice"),
    ("ünïcødé-名前", "ünïcødé-名前"),  # printable non-ASCII stays as it is
    ("\x1b[31mroot", "\\x1b[31mroot"),  # a colour/cursor sequence cannot reach the terminal
    ("bob\rcarol", "bob\\rcarol"),  # a carriage return cannot overwrite the line
    ("x\nCRITICAL forged", "x\\nCRITICAL forged"),  # nor forge a second line
    ("tab\there", "tab\\there"),
    ("bell\x07\x00", "bell\\x07\\x00"),
    ("\x9b31m", "\\x9b31m"),  # the 8-bit CSI
    ("\u202eevil", "\\u202eevil"),  # a bidi override (not printable either)
])
def test_escape_shows_control_characters_as_escapes(raw: str, shown: str) -> None:
    assert report_formats.escape(raw) == shown
    assert report_formats.escape(shown) == shown  # idempotent on its own output


def test_audit_text_escapes_messages_and_fixes() -> None:
    hostile = {"group": "perf_users", "status": "warning", "exit_code": 1, "findings": [
        {"id": "group.gshadow_members", "severity": "warning", "message": "\x1b[31mevil\r holds it", "fix": "gpasswd -d \x1b[0m x"}]}
    printed = report_formats.text(hostile)
    assert "\x1b" not in printed and "\r" not in printed
    assert "\\x1b[31mevil\\r holds it" in printed and "gpasswd -d \\x1b[0m x" in printed
