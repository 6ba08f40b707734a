"""Exit codes: one table per command, used by the CLI, the modules and the help text."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from perfgroup.cli import main
from perfgroup.engine import errors


@pytest.mark.parametrize(("command", "outcome", "code"), [
    ("setup", "ok", 0), ("setup", "failed", 1), ("setup", "refused", 2), ("setup", "busy", 3),
    ("remove", "refused", 2), ("members", "busy", 3), ("verify", "failed", 1),
    ("audit", "ok", 0), ("audit", "warning", 1), ("audit", "critical", 2), ("audit", "unknown", 3),
    ("audit", "refused", 3), ("deploy", "refused", 2),
])
def test_exit_code_table(command: str, outcome: str, code: int) -> None:
    assert errors.exit_code(command, outcome) == code


@pytest.mark.parametrize("error", [errors.RefusedError("x"), errors.ConvergeError("s", "x"), errors.LockedError("x"),
                                   errors.VerifyError("x")])
def test_every_error_has_an_outcome_every_changing_command_documents(error: errors.PerfgroupError) -> None:
    for command in ("setup", "remove", "members"):
        errors.exit_code(command, error.outcome)


@pytest.mark.parametrize("command", ["setup", "audit", "verify", "remove", "deploy"])
def test_help_epilog_is_the_table(command: str) -> None:
    text = CliRunner().invoke(main, [command, "--help"]).output
    for _, code, meaning in errors.EXIT_TABLES[command]:
        assert " ".join(f"{code} {meaning}".split()) in " ".join(text.split())


def test_no_literal_exit_numbers_in_commands() -> None:
    import re
    from pathlib import Path

    for path in (Path(__file__).resolve().parents[2] / "perfgroup" / "commands").glob("*.py"):
        assert not re.search(r"sys\.exit\(\d|fail\(\d|exit_code\s*=\s*\d", path.read_text()), path


def test_readme_exit_code_table_is_the_engine_table() -> None:
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    for command, table in errors.EXIT_TABLES.items():
        row = next(line for line in readme.splitlines() if line.startswith(f"| `{command}` |"))
        for _, code, meaning in table:
            assert f"{code}: {meaning}" in row, (command, code)
