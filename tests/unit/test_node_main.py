"""perfgroup-node reads the plain audit invocations (NHC, the textfile timer, hooks) without
argparse; whatever it reads, argparse reads the same way, and everything else goes to argparse."""

from __future__ import annotations

import pytest

from perfgroup.engine import node_main
from perfgroup.engine.options import plain_args

PLAIN = [
    ["audit", "--group", "perf_users"],
    ["audit"],  # the group defaults to perf_users, as for the perfgroup command
    ["audit", "--dest", "/d"],
    ["audit", "--group", "g", "--format", "nagios"],
    ["audit", "--format", "prometheus", "--textfile-dir", "/var/lib/node_exporter", "--group", "g"],
    ["audit", "--group", "g", "--dest", "/opt/perf", "--format", "json"],
    ["audit", "--group", "g", "--format", "text", "--textfile-dir", "/t"],  # refused later, like argparse's
]
NOT_PLAIN = [
    [],
    ["heal", "--group", "g"],
    ["audit", "--group"],
    ["audit", "--group=g"],
    ["audit", "--gr", "g"],  # an abbreviation argparse accepts
    ["audit", "--group", "g", "--group", "h"],
    ["audit", "--group", "-g"],
    ["audit", "--group", "g", "--format", "xml"],
    ["audit", "--group", "g", "--help"],
    ["audit", "--group", "g", "extra"],
    ["audit", "--group", "g", "--functional", "x"],
]


@pytest.mark.parametrize("argv", PLAIN)
def test_plain_audit_reads_like_argparse(argv: list[str]) -> None:
    plain = plain_args(argv, "audit")
    assert plain is not None
    args = node_main.parser("audit").parse_args(argv)
    assert (plain.get("--group", "perf_users"), plain.get("--dest"), plain.get("--format", "text"), plain.get("--textfile-dir")) == (
        args.group, args.dest, args.format, args.textfile_dir)


@pytest.mark.parametrize("argv", NOT_PLAIN)
def test_anything_else_goes_to_argparse(argv: list[str]) -> None:
    assert plain_args(argv, "audit") is None


def test_bad_arguments_still_exit_unknown_with_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        node_main.main(["audit", "--group", "g", "--format", "xml"])
    assert exit_info.value.code == 3
    assert len(capsys.readouterr().err.strip().splitlines()) == 1


@pytest.mark.parametrize("stdout, expected", [(None, (2, "report")), ("closed", (120, None))])
def test_exit_now_flushes_and_keeps_the_code(stdout: str | None, expected: tuple[int, str | None]) -> None:
    import os
    import subprocess
    import sys

    script = "import sys\nfrom perfgroup.engine.errors import exit_now\nsys.stdout.write('report')\nexit_now(2)\n"
    if stdout == "closed":  # the reader went away: flushing fails, as at Python's own exit
        script = "import os\nread, write = os.pipe()\nos.close(read)\nos.dup2(write, 1)\n" + script
    env = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=False, env=env)
    assert (result.returncode, result.stdout if stdout is None else None) == expected, result.stderr
