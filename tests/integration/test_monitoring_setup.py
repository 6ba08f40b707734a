"""setup's optional monitoring artifacts for real in a throwaway node: the Prometheus textfile
timer (--textfile-dir) and the LBNL NHC check (--nhc) are installed only when asked, recorded,
retired when no longer asked for, deleted by remove; the NHC check's contract (Debian has no
lbnl-nhc package, so the script is sourced in bash with a stub `die`, as NHC itself does)."""

from __future__ import annotations

import json
import shlex

import pytest
from conftest import PERFGROUP
from node import Node

pytestmark = pytest.mark.integration

DEST = "/usr/local/libexec/perfgroup/perf_users/perf"
STATE = "/var/lib/perfgroup/perf_users.json"
SERVICE = "/etc/systemd/system/perfgroup-textfile-perf_users.service"
TIMER = "/etc/systemd/system/perfgroup-textfile-perf_users.timer"
TIMER_LINK = "/etc/systemd/system/timers.target.wants/perfgroup-textfile-perf_users.timer"
NHC = "/etc/nhc/scripts/perfgroup.nhc"
OPTIONAL = (SERVICE, TIMER, TIMER_LINK, NHC)
TEXTFILE = "/var/lib/prometheus/node-exporter"
ASKED = ("--textfile-dir", TEXTFILE, "--nhc")


def setup(node: Node, *extra: str) -> dict[str, object]:
    result = node.run([PERFGROUP, "setup", "--group", "perf_users", "--member", "alice", "--json", *extra])
    assert result.returncode == 0, result.stdout + result.stderr
    out: dict[str, object] = json.loads(result.stdout)
    return out


def exists(node: Node, path: str) -> bool:
    return node.sh(f"test -e {path} || test -L {path}").returncode == 0


def nhc_check(node: Node) -> tuple[int, str]:
    """What NHC does with a check: source the script, run the function; `die` records the reason."""
    script = f"die() {{ echo \"die $*\"; }}; . {NHC}; check_perfgroup; echo \"rc=$?\""
    result = node.sh(f"bash -c {shlex.quote(script)}")
    lines = result.stdout.strip().splitlines()
    return int(lines[-1].removeprefix("rc=")), "\n".join(lines[:-1])


def test_timer_and_nhc_only_when_asked_then_checked_retired_and_removed(node: Node) -> None:
    node.ok("useradd -M -s /bin/sh alice && useradd -M -s /bin/sh bob")
    setup(node)
    assert not any(exists(node, path) for path in OPTIONAL)
    assert setup(node, *ASKED)["changed"] is True
    assert setup(node, *ASKED)["changed"] is False  # idempotent with the options
    recorded = set(json.loads(node.ok(f"cat {STATE}"))["files"])
    assert set(OPTIONAL) <= recorded
    assert node.ok(f"readlink {TIMER_LINK}").strip() == TIMER
    assert "OnUnitActiveSec=5min" in node.ok(f"cat {TIMER}")
    # The timer's service as systemd would run it: the textfile parses as Prometheus text format.
    exec_start = next(line.split("=", 1)[1] for line in node.ok(f"cat {SERVICE}").splitlines()
                      if line.startswith("ExecStart="))
    node.ok(f"mkdir -p {TEXTFILE}")
    assert node.sh(exec_start).returncode == 0
    from prometheus_client.parser import text_string_to_metric_families

    families = {f.name: f for f in text_string_to_metric_families(node.ok(f"cat {TEXTFILE}/perfgroup_perf_users.prom"))}
    assert families["perfgroup_status"].samples[0].value == 0

    # NHC's contract: a converged node passes, a drifted one fails with the reason.
    assert nhc_check(node) == (0, "")
    node.ok(f"chmod o+x {DEST}")
    code, died = nhc_check(node)
    assert code == 1 and died.startswith("die 1 check_perfgroup:  group perf_users: PERFGROUP CRITICAL"), died
    node.ok(f"chmod o-x {DEST}")
    assert nhc_check(node) == (0, "")

    # Asked no more: setup retires them (and keeps them out of the record); asked again, back.
    assert setup(node)["changed"] is True
    assert not any(exists(node, path) for path in OPTIONAL)
    assert not set(OPTIONAL) & set(json.loads(node.ok(f"cat {STATE}"))["files"])
    setup(node, *ASKED)
    removed = node.run([PERFGROUP, "remove", "--group", "perf_users"])
    assert removed.returncode == 0, removed.stderr
    assert [path for path in OPTIONAL if exists(node, path)] == []


def test_bad_textfile_dir_is_refused_with_one_line_and_the_node_unchanged(node: Node) -> None:
    before = node.snapshot()
    result = node.run([PERFGROUP, "setup", "--group", "perf_users", "--textfile-dir", "relative/dir"])
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert "textfile_dir" in result.stderr
    assert node.snapshot() == before
