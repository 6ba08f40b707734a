"""audit --prometheus: the pure part (queries as text, the report from answers given as tables of
plain data) and the client's argument checks. The real Prometheus: tests/integration/test_prometheus_audit.py."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from perfgroup.engine.errors import PerfgroupError, RefusedError
from perfgroup.prometheus_audit import (
    BASIC_AUTH_ENV,
    TOKEN_ENV,
    Answers,
    Client,
    Queries,
    Settings,
    authorization,
    report,
    run,
)

SETTINGS = Settings("perf_users", cap=2)


def rows(*samples: tuple[dict[str, str], float]) -> list[tuple[dict[str, str], float]]:
    return list(samples)


def consistent(nodes: int = 3) -> Answers:
    """The first answers of a healthy fleet of `nodes` nodes."""
    return {
        "exporters": rows(({}, nodes)),
        "status": rows(({"status": "0"}, nodes)),
        "gid": rows(({"gid": "995"}, nodes)),
        "build": rows(({"os": "debian-12", "sha256": "a" * 64}, nodes)),
        "caps": rows(({"kernel": "6.1", "cap_last_cap": "40", "capabilities": "cap_perfmon"}, nodes)),
        "members": rows(({"digest": "d1"}, nodes)),
    }


def ids(found: dict[str, Any]) -> dict[str, str]:
    return {f["id"]: f["severity"] for f in found["fleet"]}


def by_id(found: dict[str, Any], finding_id: str) -> dict[str, Any]:
    return next(f for f in found["fleet"] if f["id"] == finding_id)


def test_a_consistent_fleet_is_ok() -> None:
    found = report(consistent(), {}, SETTINGS)
    assert found["status"] == "ok"
    assert ids(found) == {"fleet.gid_consistent": "ok", "fleet.caps": "ok"}
    assert found["nodes"] == {"node_exporter": 3, "reporting": 3, "ok": 3, "warning": 0, "critical": 0, "unknown": 0}
    assert found["hosts"] == {}


# (first answers changed, second answers, finding id, severity, hosts named, text in the message)
MISMATCHES = [
    ({"gid": rows(({"gid": "995"}, 5), ({"gid": "4711"}, 1), ({"gid": "1000"}, 1))},
     {'outliers:["gid"]': rows(({"instance": "n2", "gid": "4711"}, 1), ({"instance": "n7", "gid": "1000"}, 1))},
     "fleet.gid_mismatch", "critical", ["n2", "n7"], "most have 995): n2=4711, n7=1000"),
    ({"build": rows(({"os": "debian-12", "sha256": "a"}, 6), ({"os": "debian-12", "sha256": "b"}, 1),
                    ({"os": "rocky-9", "sha256": "c"}, 2))},
     {'outliers:["build", "debian-12"]': rows(({"instance": "n3", "sha256": "b"}, 1))},
     "fleet.build_mismatch", "warning", ["n3"], "between debian-12 nodes: n3 run another build"),
    ({"caps": rows(({"kernel": "6.1", "cap_last_cap": "40", "capabilities": "cap_perfmon"}, 6),
                   ({"kernel": "6.1", "cap_last_cap": "40", "capabilities": "cap_sys_admin"}, 1))},
     {'outliers:["caps", "6.1", "40"]': rows(({"instance": "n4", "capabilities": "cap_sys_admin"}, 1))},
     "fleet.caps_mismatch", "warning", ["n4"], "kernel 6.1 (cap_last_cap 40) carry different capabilities: n4"),
    ({"members": rows(({"digest": "d1"}, 6), ({"digest": "d2"}, 1))},
     {'outliers:["members"]': rows(({"instance": "n5", "digest": "d2"}, 1))},
     "fleet.members_mismatch", "warning", ["n5"], "members differ on: n5"),
    # More outliers than --max-named: the first ones named, the rest counted.
    ({"gid": rows(({"gid": "995"}, 10), ({"gid": "4711"}, 4))},
     {'outliers:["gid"]': rows(*(({"instance": f"n{i}", "gid": "4711"}, 1) for i in (3, 1)))},
     "fleet.gid_mismatch", "critical", ["n1", "n3"], "n1=4711, n3=4711 and 2 more"),
]


@pytest.mark.parametrize(("change", "second", "finding_id", "severity", "hosts", "text"), MISMATCHES)
def test_fleet_mismatches_use_audit_i_ids(change: Answers, second: Answers, finding_id: str, severity: str,
                                          hosts: list[str], text: str) -> None:
    found = report({**consistent(7), **change}, second, SETTINGS)
    finding = by_id(found, finding_id)
    assert (finding["severity"], finding["hosts"]) == (severity, hosts)
    assert text in finding["message"]
    assert found["status"] == severity


def test_a_tie_picks_the_same_majority_as_audit_i() -> None:
    first = {**consistent(2), "gid": rows(({"gid": "995"}, 1), ({"gid": "4711"}, 1))}
    queries = Queries(SETTINGS).second(first)
    # audit -i's rule: most nodes, then the greatest value as text ("995" > "4711").
    assert list(queries.values()) == ['topk(2, group by (instance, gid) (perfgroup_group_info{group="perf_users",gid!="995"}))']


# (answers added, finding id, severity, hosts, text)
REPORTING = [
    ({"stale": rows(({"instance": "n2"}, 3600)), "stale_count": rows(({}, 1))},
     "fleet.stale", "warning", ["n2"], "older than 900 s"),
    ({"stopped": rows(({"instance": "n6"}, 1)), "stopped_count": rows(({}, 1))},
     "fleet.stopped_reporting", "unknown", ["n6"], "none now"),
    ({"never": rows(({"instance": "n4"}, 1), ({"instance": "n8"}, 1), ({"instance": "n9"}, 1)),
      "never_count": rows(({}, 5))},
     "fleet.never_seen", "warning", ["n4", "n8"], "n4, n8 and 3 more"),
]


@pytest.mark.parametrize(("answers", "finding_id", "severity", "hosts", "text"), REPORTING)
def test_stale_silent_and_unseen_nodes(answers: Answers, finding_id: str, severity: str, hosts: list[str],
                                       text: str) -> None:
    found = report({**consistent(), **answers}, {}, SETTINGS)
    finding = by_id(found, finding_id)
    assert (finding["severity"], finding["hosts"]) == (severity, hosts)
    assert text in finding["message"] and found["status"] == severity


def test_node_findings_are_counted_and_the_worst_named_with_their_fix() -> None:
    first = {
        **consistent(9),
        "status": rows(({"status": "0"}, 5), ({"status": "1"}, 1), ({"status": "2"}, 3)),
        "findings": rows(({"finding": "paranoid.low", "severity": "warning"}, 1),
                         ({"finding": "copy.world_access", "severity": "critical"}, 3)),
        "named": rows(({"instance": "n1", "finding": "copy.world_access", "severity": "critical", "fix": "chmod o-x P"}, 2),
                      ({"instance": "n2", "finding": "copy.world_access", "severity": "critical"}, 2),
                      ({"instance": "n1", "finding": "paranoid.low", "severity": "warning", "fix": "sysctl"}, 1)),
    }
    found = report(first, {}, SETTINGS)
    assert found["status"] == "critical"
    assert found["nodes"]["critical"] == 3 and found["nodes"]["warning"] == 1
    world = by_id(found, "copy.world_access")
    assert (world["severity"], world["hosts"], world["message"]) == ("critical", ["n1", "n2"], "3 node(s): n1, n2 and 1 more")
    assert [f["id"] for f in found["fleet"]][-2:] == ["copy.world_access", "paranoid.low"]  # the worst first
    assert found["hosts"]["n1"] == {"status": "critical", "findings": [
        {"id": "copy.world_access", "severity": "critical", "fix": "chmod o-x P"},
        {"id": "paranoid.low", "severity": "warning", "fix": "sysctl"}]}


def test_an_unknown_node_status_makes_the_fleet_unknown() -> None:
    found = report({**consistent(), "status": rows(({"status": "0"}, 2), ({"status": "3"}, 1))}, {}, SETTINGS)
    assert found["status"] == "unknown"


def test_an_empty_result_is_an_error() -> None:
    with pytest.raises(PerfgroupError, match=r"no node matching --selector \{\}.*empty result"):
        report({"exporters": [], "status": []}, {}, SETTINGS)


def test_nodes_without_perfgroup_are_not_an_empty_result() -> None:
    found = report({"exporters": rows(({}, 2)), "never": rows(({"instance": "a"}, 1)), "never_count": rows(({}, 2))},
                   {}, SETTINGS)
    assert found["status"] == "warning" and found["nodes"]["reporting"] == 0


def test_the_selector_narrows_every_metric() -> None:
    queries = Queries(Settings("perf_users", '{cluster="a", rack=~"r1.*"}')).first()
    for name, expr in queries.items():
        assert expr.count("{") == expr.count('cluster="a", rack=~"r1.*"') + expr.count("{}"), (name, expr)
    assert queries["gid"] == 'count by (gid) (perfgroup_group_info{group="perf_users",cluster="a", rack=~"r1.*"})'
    assert queries["exporters"] == 'count(node_exporter_build_info{cluster="a", rack=~"r1.*"})'


@pytest.mark.parametrize("selector", ['cluster="a"', "", '{cluster="a"', "up"])
def test_a_selector_that_is_no_matcher_list_is_refused(selector: str) -> None:
    with pytest.raises(RefusedError, match="not a label matcher list"):
        Queries(Settings("g", selector))


def test_stale_means_older_than_stale_after_and_its_default_is_the_alerts() -> None:
    assert "> 1800.0 or" in Queries(Settings("g", stale_after=1800.0)).first()["stale"]
    rules = (Path(__file__).parents[2] / "monitoring/prometheus/perfgroup-rules.yml").read_text()
    assert f"expr: perfgroup:textfile_age:seconds > {Settings('g').stale_after:g}\n" in rules


def test_every_answer_is_bounded() -> None:
    """Only aggregations (count ...) or topk of at most --max-named: no query lists every node."""
    queries = Queries(Settings("g", cap=7))
    first = queries.first()
    second = queries.second({**consistent(), "gid": rows(({"gid": "1"}, 2), ({"gid": "2"}, 1))})
    for expr in [*first.values(), *second.values()]:
        assert expr.startswith(("count", "topk(7,", "(topk by (finding, severity) (7,")), expr


def test_run_asks_the_outliers_only_where_values_differ() -> None:
    asked: list[str] = []

    def query(expr: str) -> list[tuple[dict[str, str], float]]:
        asked.append(expr)
        if expr.startswith("count by (gid)"):
            return [({"gid": "995"}, 2), ({"gid": "4711"}, 1)]
        if "gid!=" in expr:
            return [({"instance": "n3", "gid": "4711"}, 1)]
        return [({}, 3)] if expr.startswith("count(node_exporter") else []

    found, queries = run(SETTINGS, query)
    assert queries == asked and len(asked) == len(Queries(SETTINGS).first()) + 1
    assert by_id(found, "fleet.gid_mismatch")["hosts"] == ["n3"]


# -- credentials and the client's arguments ---------------------------------------------------------

def test_credentials_come_from_files_or_the_environment(tmp_path: Any) -> None:
    token, basic = tmp_path / "token", tmp_path / "basic"
    token.write_text("s3cret\n")
    basic.write_text("prom:pw\n")
    assert authorization(str(token), None, {}) == "Bearer s3cret"
    assert authorization(None, str(basic), {}) == "Basic cHJvbTpwdw=="
    assert authorization(None, None, {TOKEN_ENV: "t"}) == "Bearer t"
    assert authorization(None, None, {BASIC_AUTH_ENV: "a:b"}) == "Basic YTpi"
    assert authorization(None, None, {}) is None


@pytest.mark.parametrize(("token", "basic", "environ", "message"), [
    ("token", "basic", {}, "not both"),
    (None, None, {TOKEN_ENV: "t", BASIC_AUTH_ENV: "a:b"}, "not both"),
    ("missing", None, {}, "cannot read the bearer token file"),
    (None, "nocolon", {}, "USER:PASSWORD"),
    ("empty", None, {}, "one non-empty line"),
])
def test_bad_credentials_are_refused(tmp_path: Any, token: str | None, basic: str | None, environ: dict[str, str],
                                     message: str) -> None:
    (tmp_path / "token").write_text("t")
    (tmp_path / "basic").write_text("a:b")
    (tmp_path / "nocolon").write_text("ab")
    (tmp_path / "empty").write_text("\n")
    with pytest.raises(RefusedError, match=message):
        authorization(token and str(tmp_path / token), basic and str(tmp_path / basic), environ)


@pytest.mark.parametrize(("url", "timeout", "message"), [
    ("file:///etc/passwd", 30.0, "not an http"),
    ("127.0.0.1:9090", 30.0, "not an http"),
    ("http://admin:pw@prometheus:9090", 30.0, "must not carry credentials"),
    ("http://prometheus:9090", 0.0, "--timeout must be positive"),
])
def test_bad_urls_are_refused(url: str, timeout: float, message: str) -> None:
    with pytest.raises(RefusedError, match=message):
        Client(url, timeout=timeout)


def test_a_missing_ca_file_is_refused(tmp_path: Any) -> None:
    with pytest.raises(RefusedError, match="cannot use --ca-file"):
        Client("https://prometheus:9090", ca_file=str(tmp_path / "nope.pem"))


@pytest.mark.parametrize(("args", "message"), [
    (["--selector", '{cluster="a"}'], "--selector: only with --prometheus URL"),
    (["--ca-file", "/x.pem", "--max-named", "3"], "--ca-file, --max-named: only with --prometheus URL"),
    (["--prometheus", "http://127.0.0.1:9", "-i", "inv"], "audit --prometheus does not take -i"),
    (["--prometheus", "http://127.0.0.1:9", "--format", "nagios"], "does not take --format"),
    (["--prometheus", "http://u:p@127.0.0.1:9"], "must not carry credentials"),
    (["--stale-after", "1800"], "--stale-after: only with --prometheus URL"),
    (["--prometheus", "http://127.0.0.1:9", "--stale-after", "30"], "is not in the range 60<=x<=604800"),
])
def test_the_cli_refuses_options_that_do_not_fit(args: list[str], message: str) -> None:
    from click.testing import CliRunner

    from perfgroup.cli import main

    result = CliRunner(env={"NO_COLOR": "1"}).invoke(main, ["audit", *args])
    assert result.exit_code == 3 and message in result.output, result.output
