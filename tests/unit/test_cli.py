"""The CLI's surface through click's CliRunner: help, exit codes for bad input, JSON shape.
Nothing here changes the host: only read-only commands and refusals are exercised."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from perfgroup.cli import main
from perfgroup.engine import errors


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner(env={"NO_COLOR": "1"})


def test_help_documents_exit_codes(runner: CliRunner) -> None:
    setup_help = runner.invoke(main, ["setup", "--help"]).output
    assert "Exit codes" in setup_help and "refused bad input" in setup_help
    audit_help = runner.invoke(main, ["audit", "--help"]).output
    assert "Nagios" in audit_help and "UNKNOWN" in audit_help


@pytest.mark.parametrize(("args", "code"), [
    (["audit", "--bogus"], 3),
    (["audit", "--group", "a:b"], 3),
    (["setup", "--bogus"], 2),
    (["setup", "--group", "a b"], 2),
    (["setup", "--group", "sudo"], 2),
    (["setup", "--caps", "cap_setfcap"], 2),
    (["setup", "--dest", "relative/perf"], 2),
    (["remove", "--group", "-x"], 2),
])
def test_bad_input_exit_codes(runner: CliRunner, args: list[str], code: int) -> None:
    result = runner.invoke(main, args)
    assert result.exit_code == code, result.output


@pytest.mark.parametrize(("extra", "named"), [
    (["--format", "nagios"], "--format"),
    (["--textfile-dir", "/tmp/x"], "--textfile-dir"),
    (["--root", "/srv/image"], "--root"),
    (["--format", "prometheus", "--root", "/srv/image"], "--format, --root"),
])
def test_fleet_audit_refuses_single_node_output_options(runner: CliRunner, tmp_path: Path, extra: list[str],
                                                        named: str) -> None:
    """audit -i used to drop these silently; refused before any Ansible run (UNKNOWN, one line)."""
    inventory = tmp_path / "hosts.ini"
    inventory.write_text("[perf_nodes]\nnode1\n")
    result = runner.invoke(main, ["audit", "-i", str(inventory), *extra])
    assert result.exit_code == 3, result.output
    assert result.stdout == "" and result.stderr.count("\n") == 1
    assert f"audit -i does not take {named} " in result.stderr


# Bad command lines click itself refuses (and one the engine refuses), on every level: one line on
# stderr in perfgroup's own error style, naming the command's --help, and the exit code the
# command's table (--help, README) documents for bad input: audit's is UNKNOWN (3).
BAD_COMMAND_LINES = [
    # (args, the command whose exit table applies (None: the top-level group, click's 2), words)
    (["setup", "--group", "perf_users", "--job-feature", "perf", "--job-paranoid", "x", "--dry-run"], "setup",
     "Invalid value for '--job-paranoid': 'x' is not a valid integer (try 'perfgroup setup --help')"),
    (["setup", "--job-feature", "perf", "--job-paranoid", "5", "--dry-run"], "setup",
     "--job-paranoid must be 0 or 1, not 5"),
    (["setup", "--job-feature", "perf", "--job-paranoid", "-1"], "setup", "--job-paranoid must be 0 or 1, not -1"),
    (["setup", "--job-paranoid", "0"], "setup", "--job-paranoid goes with --job-feature"),
    (["setup", "--bogus"], "setup", "No such option '--bogus' (try 'perfgroup setup --help')"),
    (["setup", "--group"], "setup", "Option '--group' requires an argument (try 'perfgroup setup --help')"),
    (["setup", "--gid", "many"], "setup", "'many' is not a valid integer"),
    (["audit", "--format", "xml"], "audit", "Invalid value for '--format': 'xml' is not one of"),
    (["audit", "--bogus"], "audit", "No such option '--bogus'. Did you mean '--verbose'? (try 'perfgroup audit --help')"),
    (["audit", "--group"], "audit", "Option '--group' requires an argument"),
    (["verify", "--gid", "3"], "verify", "No such option '--gid' (try 'perfgroup verify --help')"),
    (["verify", "--dest"], "verify", "Option '--dest' requires an argument"),
    (["remove", "--bogus"], "remove", "No such option '--bogus' (try 'perfgroup remove --help')"),
    (["remove", "--group"], "remove", "Option '--group' requires an argument"),
    (["members", "add"], "members", "Missing argument 'USERS...' (try 'perfgroup members add --help')"),
    (["members", "add", "--bogus", "alice"], "members", "No such option '--bogus' (try 'perfgroup members add --help')"),
    (["members", "sync", "--group"], "members", "Option '--group' requires an argument"),
    (["members", "bogus"], None, "No such command 'bogus' (try 'perfgroup members --help')"),
    (["deploy"], "deploy", "Missing option '-i' / '--inventory' (try 'perfgroup deploy --help')"),
    (["deploy", "-i", "hosts.ini", "--forks", "0"], "deploy", "Invalid value for '--forks': 0 is not in the range"),
    (["bogus"], None, "No such command 'bogus' (try 'perfgroup --help')"),
    (["--bogus"], None, "No such option '--bogus' (try 'perfgroup --help')"),
]


@pytest.mark.parametrize(("args", "table", "words"), BAD_COMMAND_LINES, ids=[" ".join(c[0]) for c in BAD_COMMAND_LINES])
def test_bad_command_lines_are_one_line_with_the_documented_exit_code(runner: CliRunner, args: list[str],
                                                                     table: str | None, words: str) -> None:
    result = runner.invoke(main, args, prog_name="perfgroup")
    assert result.exit_code == (errors.exit_code(table, errors.REFUSED) if table else 2), result.output
    assert result.stdout == "", result.stdout
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("perfgroup: error: "), result.stderr
    assert words in result.stderr, result.stderr
    assert "Usage:" not in result.stderr and "\x1b[" not in result.stderr


@pytest.mark.parametrize(("args", "code", "hint"), [
    (["setup", "--job-feature", "perf", "--job-paranoid", "x"], 2, "(try 'perfgroup setup --help')"),
    (["audit", "--format", "xml"], 3, "(try 'perfgroup audit --help')"),
    (["members", "add"], 2, "(try 'perfgroup members add --help')"),
    (["nonsense"], 2, "(try 'perfgroup --help')"),
])
def test_the_console_script_prints_click_errors_on_one_line(args: list[str], code: int, hint: str) -> None:
    """The installed command (perfgroup.quick, then click's standalone main), as a shell runs it."""
    import subprocess
    import sys

    script = Path(sys.executable).with_name("perfgroup")
    done = subprocess.run([str(script), *args], capture_output=True, text=True, env={"NO_COLOR": "1", "PATH": "/usr/bin:/bin"},
                          check=False)
    assert done.returncode == code, done.stderr
    assert done.stdout == "" and done.stderr.count("\n") == 1, done.stderr
    assert done.stderr.startswith("perfgroup: error: ") and done.stderr.endswith(f"{hint}\n"), done.stderr


def test_a_group_without_its_command_still_prints_its_help(runner: CliRunner) -> None:
    """Not an error line: `perfgroup members` alone shows what it takes, as click does."""
    result = runner.invoke(main, ["members"], prog_name="perfgroup")
    assert "Commands:" in result.output and "perfgroup: error" not in result.output


def test_refusal_is_one_line_on_stderr(runner: CliRunner) -> None:
    result = runner.invoke(main, ["setup", "--group", "wheel"])
    assert result.exit_code == 2
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("perfgroup: error:")
    assert "\x1b[" not in result.stderr  # NO_COLOR


def test_audit_json_is_machine_readable(runner: CliRunner) -> None:
    # Audit is read-only, so it may run against the real host; a group that cannot exist here.
    result = runner.invoke(main, ["audit", "--group", "pg_test_absent_group", "--json"])
    report = json.loads(result.stdout)
    assert result.exit_code == report["exit_code"] == 2
    assert {"id", "severity", "message", "fix"} <= set(report["findings"][0])
    assert "group.missing" in {f["id"] for f in report["findings"]}


def test_audit_formats_for_monitoring(runner: CliRunner, tmp_path: object) -> None:
    """The same audit as Nagios's line with perfdata and as a node_exporter textfile (read-only
    against this host: a group that cannot exist here)."""
    from pathlib import Path

    from prometheus_client.parser import text_string_to_metric_families

    args = ["audit", "--group", "pg_test_absent_group"]
    nagios = runner.invoke(main, [*args, "--format", "nagios"])
    assert nagios.exit_code == 2 and nagios.output.startswith("PERFGROUP CRITICAL - ") and "'critical'=" in nagios.output
    prom = runner.invoke(main, [*args, "--format", "prometheus"])
    families = {f.name for f in text_string_to_metric_families(prom.output)}
    assert prom.exit_code == 2 and "perfgroup_status" in families
    directory = Path(str(tmp_path))
    written = runner.invoke(main, [*args, "--format", "prometheus", "--textfile-dir", str(directory)])
    assert written.exit_code == 2 and written.output == ""
    assert (directory / "perfgroup_pg_test_absent_group.prom").read_text().startswith("# HELP")
    assert runner.invoke(main, [*args, "--format", "xml"]).exit_code == 3  # a bad argument is UNKNOWN


def test_fleet_audit_text_escapes_what_the_nodes_sent(runner: CliRunner, monkeypatch: pytest.MonkeyPatch) -> None:
    """Host names and node findings (which quote names from the nodes' group databases) reach the
    administrator's terminal escaped."""
    from perfgroup import ansible_run

    node = {"status": "warning", "gid": 995, "members": ["\x1b[31mroot"], "findings": [
        {"id": "group.gshadow_members", "severity": "warning", "message": "\x1b[31mroot\r holds it", "fix": ""}]}
    monkeypatch.setattr(ansible_run, "run", lambda *args, **kwargs: {})
    monkeypatch.setattr(ansible_run, "host_results", lambda report, task: {
        "n\x1b[2J1": {"ansible_facts": {"perf_users_audit": node}}})
    result = runner.invoke(main, ["audit", "-i", "inventory.ini"])
    assert "\x1b" not in result.output and "\r" not in result.output, result.output
    assert "n\\x1b[2J1" in result.output and "\\x1b[31mroot\\r holds it" in result.output


def test_the_plan_shows_the_node_entry_point_as_one_step() -> None:
    """Issue 22: ~40 `create .../perfgroup_engine/X.py` lines become one, where the first stood."""
    from perfgroup.commands.setup import _with_entry_point_as_one

    def step(kind: str, target: str) -> dict[str, str]:
        return {"kind": kind, "target": target, "summary": f"{kind} {target}", "why": "w"}

    engine = [step("write_file", f"/usr/local/lib/perfgroup/perfgroup_engine/m{i}.py") for i in range(40)]
    plan = [step("create_group", "g"), *engine, step("write_file", "/usr/local/sbin/perfgroup-node"),
            step("write_file", "/usr/local/bin/perf")]
    shown = _with_entry_point_as_one(plan)
    assert [s["target"] for s in shown] == ["g", engine[0]["target"], "/usr/local/bin/perf"]
    assert shown[1]["summary"].startswith("node entry point: 41 files")
