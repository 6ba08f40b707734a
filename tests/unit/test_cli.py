"""The CLI's surface through click's CliRunner: help, exit codes for bad input, JSON shape.
Nothing here changes the host: only read-only commands and refusals are exercised."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from perfgroup.cli import main


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
