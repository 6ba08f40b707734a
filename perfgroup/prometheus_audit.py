"""`perfgroup audit --prometheus URL`: the fleet audit from what every node's textfile timer already
exports, asked of Prometheus's HTTP API instead of opening SSH to every node.

Memory stays bounded at any fleet size: every check is a PromQL aggregation (nodes per gid, per
build, per finding and severity), and only the offenders a finding names are fetched, at most
`cap` per finding (topk). Three parts: the queries (text), the report from their answers (pure:
unit tests feed tables of plain data), and the HTTP client (urllib, the only part that talks to
the network). docs/monitoring.md documents the findings and the options.
"""

from __future__ import annotations

import base64
import json
import re
import urllib.parse
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable, Dict, List, Mapping, NamedTuple, Tuple

from .engine.errors import PerfgroupError, RefusedError
from .engine.finding import CRITICAL, OK, RANK, UNKNOWN, WARNING
from .fleet import FleetFinding, majority, worst

Sample = Tuple[Dict[str, str], float]
Answers = Dict[str, List[Sample]]
Query = Callable[[str], List[Sample]]

TOKEN_ENV = "PERFGROUP_PROMETHEUS_TOKEN"
BASIC_AUTH_ENV = "PERFGROUP_PROMETHEUS_BASIC_AUTH"
# node_exporter's own series: one per running node_exporter, whatever collectors it runs (the
# rules' PerfgroupMetricsMissing reads the same one, so alert and audit agree on "every node").
UNIVERSE = "node_exporter_build_info"
PARALLEL = 4  # queries in flight at once
SEVERITY_BY_VALUE = {0: OK, 1: WARNING, 2: CRITICAL, 3: UNKNOWN}


class Settings(NamedTuple):
    group: str
    selector: str = "{}"
    stale_after: float = 900.0  # three periods of the 5-minute textfile timer, as the stale alert
    lookback: str = "1d"  # how far back "stopped reporting" and "never seen" look
    cap: int = 20  # offenders named per finding


def _string(value: str) -> str:
    """A PromQL string literal (Go's escapes)."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


SELECTOR = re.compile(r"^\{(.*)\}$", re.S)


def selector_matchers(selector: str) -> str:
    """The label matchers inside `{...}`; Prometheus itself judges them (a bad one is its 400)."""
    found = SELECTOR.match(selector.strip())
    if found is None:
        raise RefusedError(f"--selector {selector!r} is not a label matcher list such as '{{cluster=\"a\"}}'")
    return found.group(1).strip().rstrip(",")


class Queries:
    """The PromQL the audit asks, per concept; every answer is an aggregate or at most `cap` series
    per finding."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.matchers = selector_matchers(settings.selector)

    def metric(self, name: str, **labels: str) -> str:
        pairs = [f"group={_string(self.settings.group)}"] if name.startswith("perfgroup_") else []
        for key, value in labels.items():
            negate = key.endswith("_not")
            pairs.append(f"{key[:-4] if negate else key}{'!=' if negate else '='}{_string(value)}")
        if self.matchers:
            pairs.append(self.matchers)
        return f"{name}{{{','.join(pairs)}}}"

    def top(self, expr: str) -> str:
        return f"topk({self.settings.cap}, {expr})"

    def stale(self) -> str:
        textfile = (f"node_textfile_mtime_seconds{{file=~{_string('(.*/)?perfgroup_' + re.escape(self.settings.group) + '[.]prom')}"
                    + (f",{self.matchers}" if self.matchers else "") + "}")
        after = self.settings.stale_after
        return (f"(time() - max by (instance) ({self.metric('perfgroup_audit_timestamp_seconds')})) > {after} "
                f"or (time() - max by (instance) ({textfile})) > {after}")

    def seen(self) -> str:
        return f"group by (instance) (last_over_time({self.metric('perfgroup_status')}[{self.settings.lookback}]))"

    def stopped(self) -> str:
        return f"{self.seen()} unless on (instance) {self.metric('perfgroup_status')}"

    def never(self) -> str:
        return f"group by (instance) ({self.metric(UNIVERSE)}) unless on (instance) {self.seen()}"

    def first(self) -> dict[str, str]:
        checks = f"{self.metric('perfgroup_check')} > 0"
        named = f"topk by (finding, severity) ({self.settings.cap}, {checks})"
        return {
            "exporters": f"count({self.metric(UNIVERSE)})",
            "status": f"count_values(\"status\", {self.metric('perfgroup_status')})",
            "gid": f"count by (gid) ({self.metric('perfgroup_group_info')})",
            "build": f"count by (os, sha256) ({self.metric('perfgroup_build_info')})",
            "caps": f"count by (kernel, cap_last_cap, capabilities) ({self.metric('perfgroup_capabilities_info')})",
            "members": f"count by (digest) ({self.metric('perfgroup_members_info', local='true')})",
            "findings": f"count by (finding, severity) ({checks})",
            "named": (f"({named}) * on (instance, job, finding) group_left (fix) "
                      f"{self.metric('perfgroup_finding_fix_info')} or on (instance, job, finding) {named}"),
            "stale": self.top(self.stale()), "stale_count": f"count({self.stale()})",
            "stopped": self.top(self.stopped()), "stopped_count": f"count({self.stopped()})",
            "never": self.top(self.never()), "never_count": f"count({self.never()})",
        }

    def second(self, first: Answers) -> dict[str, str]:
        """The outliers of each split the first answers show: only where values differ."""
        out = {}
        for check, metric, scope, value in _SPLITS:
            for key, counts in _split_counts(first.get(check, []), scope, value).items():
                if len(counts) > 1:
                    labels = dict(zip(scope, key))
                    labels[value + "_not"] = majority(counts)
                    if check == "members":
                        labels["local"] = "true"
                    out[_outlier_key(check, key)] = self.top(
                        f"group by (instance, {value}) ({self.metric(metric, **labels)})")
        return out


# (first-answer name, metric, labels that scope the comparison, the label that must agree)
_SPLITS = (
    ("gid", "perfgroup_group_info", (), "gid"),
    ("build", "perfgroup_build_info", ("os",), "sha256"),
    ("caps", "perfgroup_capabilities_info", ("kernel", "cap_last_cap"), "capabilities"),
    ("members", "perfgroup_members_info", (), "digest"),
)


def _outlier_key(check: str, scope: tuple[str, ...]) -> str:
    return "outliers:" + json.dumps([check, *scope])


def _split_counts(samples: list[Sample], scope: tuple[str, ...], value: str) -> dict[tuple[str, ...], dict[str, int]]:
    out: dict[tuple[str, ...], dict[str, int]] = defaultdict(dict)
    for labels, count in samples:
        out[tuple(labels.get(k, "") for k in scope)][labels.get(value, "")] = int(count)
    return dict(sorted(out.items()))


def _count(answers: Answers, name: str) -> int:
    return sum(int(value) for _, value in answers.get(name, []))


def _named(samples: list[Sample], label: str = "") -> list[str]:
    names = sorted({s[0].get("instance", "?") + (f"={s[0].get(label, '')}" if label else "") for s in samples})
    return names


def _listing(names: list[str], total: int, cap: int) -> str:
    names = names[:cap]
    more = total - len(names)
    return ", ".join(names) + (f" and {more} more" if more > 0 else "")


def _hosts(names: list[str], cap: int) -> tuple[str, ...]:
    return tuple(name.split("=", 1)[0] for name in names[:cap])


def fleet_checks(first: Answers, second: Answers, cap: int) -> list[FleetFinding]:
    """The fleet.* findings of `audit -i` (same ids and severities), from counts per value."""
    found = []
    gids = _split_counts(first.get("gid", []), (), "gid").get((), {})
    if len(gids) > 1:
        common = majority(gids)
        names = _named(second.get(_outlier_key("gid", ()), []), "gid")
        found.append(FleetFinding(
            "fleet.gid_mismatch", CRITICAL,
            f"group gid differs between nodes (most have {common}): "
            + _listing(names, sum(gids.values()) - gids[common], cap), _hosts(names, cap)))
    elif gids:
        found.append(FleetFinding("fleet.gid_consistent", OK,
                                  f"group gid {next(iter(gids))} on every node ({sum(gids.values())} nodes)"))
    for (os_id,), shas in _split_counts(first.get("build", []), ("os",), "sha256").items():
        if len(shas) > 1:
            names = _named(second.get(_outlier_key("build", (os_id,)), []))
            total = sum(shas.values()) - shas[majority(shas)]
            found.append(FleetFinding(
                "fleet.build_mismatch", WARNING,
                f"privileged perf differs between {os_id} nodes: {_listing(names, total, cap)} run another build",
                _hosts(names, cap)))
    by_kernel = _split_counts(first.get("caps", []), ("kernel", "cap_last_cap"), "capabilities")
    for (release, last_cap), caps in by_kernel.items():
        if len(caps) > 1:
            names = _named(second.get(_outlier_key("caps", (release, last_cap)), []))
            total = sum(caps.values()) - caps[majority(caps)]
            found.append(FleetFinding(
                "fleet.caps_mismatch", WARNING,
                f"nodes with kernel {release} (cap_last_cap {last_cap}) carry different capabilities: "
                + _listing(names, total, cap), _hosts(names, cap)))
    for (release, last_cap), caps in by_kernel.items():
        found.append(FleetFinding("fleet.caps", OK, f"kernel {release} (cap_last_cap {last_cap}): "
                                  + " | ".join(f"{c} ({n} nodes)" for c, n in sorted(caps.items()))))
    digests = _split_counts(first.get("members", []), (), "digest").get((), {})
    if len(digests) > 1:
        names = _named(second.get(_outlier_key("members", ()), []))
        found.append(FleetFinding(
            "fleet.members_mismatch", WARNING, "local group members differ on: "
            + _listing(names, sum(digests.values()) - digests[majority(digests)], cap), _hosts(names, cap)))
    return found


def reporting_checks(first: Answers, settings: Settings) -> list[FleetFinding]:
    """What only a fleet view knows: nodes whose audit is old, that went silent, or never reported."""
    cap = settings.cap
    found = []
    rows = (
        ("stale", "fleet.stale", WARNING,
         f"the audit is older than {settings.stale_after:g} s (textfile timer stopped, audit failing)"),
        ("stopped", "fleet.stopped_reporting", UNKNOWN,
         f"reported perfgroup metrics in the last {settings.lookback}, none now (node or node_exporter down, textfile gone)"),
        ("never", "fleet.never_seen", WARNING,
         f"node_exporter runs but no perfgroup metrics of group {settings.group} in the last {settings.lookback} "
         "(no textfile timer, or node_exporter reads another directory)"),
    )
    for name, finding_id, severity, why in rows:
        total = _count(first, name + "_count")
        if total:
            names = _named(first.get(name, []))
            found.append(FleetFinding(finding_id, severity, f"{total} node(s): {why}: {_listing(names, total, cap)}",
                                      _hosts(names, cap)))
    return found


def node_findings(first: Answers, cap: int) -> tuple[list[FleetFinding], dict[str, dict[str, Any]]]:
    """Each node finding that is not ok, with how many nodes have it and (capped) which; and the
    named nodes with their findings and fixes, as audit -i's per-host part."""
    named: dict[tuple[str, str], list[Sample]] = defaultdict(list)
    hosts: dict[str, dict[str, Any]] = {}
    for labels, value in first.get("named", []):
        named[(labels.get("finding", "?"), labels.get("severity", "?"))].append((labels, value))
        host = hosts.setdefault(labels.get("instance", "?"), {"status": OK, "findings": []})
        severity = SEVERITY_BY_VALUE.get(int(value), UNKNOWN)
        host["status"] = worst([host["status"], severity])
        host["findings"].append({"id": labels.get("finding", "?"), "severity": severity, "fix": labels.get("fix", "")})
    found = []
    counts = sorted(first.get("findings", []), key=lambda s: (-RANK.get(s[0].get("severity", ""), 3), s[0].get("finding", "")))
    for labels, total in counts:
        key = (labels.get("finding", "?"), labels.get("severity", "?"))
        severity = key[1] if key[1] in RANK else UNKNOWN
        names = _named(named.get(key, []))
        found.append(FleetFinding(key[0], severity, f"{int(total)} node(s): {_listing(names, int(total), cap)}",
                                  _hosts(names, cap)))
    for host in hosts.values():
        host["findings"].sort(key=lambda f: (-RANK[f["severity"]], f["id"]))
    return found, dict(sorted(hosts.items()))


def report(first: Answers, second: Answers, settings: Settings) -> dict[str, Any]:
    """The fleet report (audit -i's shape: status, fleet findings, named hosts) from the answers."""
    nodes = {severity: 0 for severity in SEVERITY_BY_VALUE.values()}
    for labels, count in first.get("status", []):
        nodes[SEVERITY_BY_VALUE.get(int(float(labels.get("status", "3"))), UNKNOWN)] += int(count)
    reporting = sum(nodes.values())
    exporters = _count(first, "exporters")
    if not reporting and not exporters and not _count(first, "stopped_count"):
        raise PerfgroupError(f"Prometheus has no node matching --selector {settings.selector}: no {UNIVERSE} "
                             f"and no perfgroup metrics of group {settings.group} (empty result)")
    per_node, hosts = node_findings(first, settings.cap)
    fleet_found = [*reporting_checks(first, settings), *fleet_checks(first, second, settings.cap), *per_node]
    status = worst([f.severity for f in fleet_found] + [s for s, n in nodes.items() if n])
    return {"status": status, "fleet": [f.as_dict() for f in fleet_found], "hosts": hosts,
            "nodes": {"node_exporter": exporters, "reporting": reporting, **nodes}}


def run(settings: Settings, query: Query) -> tuple[dict[str, Any], list[str]]:
    """Ask every query (the first set, then the outliers of what differs): the report and the PromQL."""
    queries = Queries(settings)
    asked = queries.first()
    # A few at a time: Prometheus evaluates queries in parallel (20 by default), and at 10,000
    # nodes each takes tens of milliseconds of its CPU, not ours.
    with ThreadPoolExecutor(max_workers=PARALLEL) as pool:
        first = dict(zip(asked, pool.map(query, asked.values())))
        outliers = queries.second(first)
        second = dict(zip(outliers, pool.map(query, outliers.values())))
    return report(first, second, settings), [*asked.values(), *outliers.values()]


# -- the HTTP client --------------------------------------------------------------------------------

def _read_secret(path: str, what: str) -> str:
    try:
        with open(path, encoding="utf-8") as handle:
            value = handle.read().strip()
    except (OSError, UnicodeDecodeError) as error:
        raise RefusedError(f"cannot read the {what} file {path}: {error.strerror if isinstance(error, OSError) else error}") from None
    if not value or "\n" in value:
        raise RefusedError(f"the {what} file {path} must hold one non-empty line")
    return value


def authorization(token_file: str | None, basic_file: str | None, environ: Mapping[str, str]) -> str | None:
    """The Authorization header from a file or the environment (never argv, which `ps` shows)."""
    token = _read_secret(token_file, "bearer token") if token_file else environ.get(TOKEN_ENV) or None
    basic = _read_secret(basic_file, "basic auth") if basic_file else environ.get(BASIC_AUTH_ENV) or None
    if token and basic:
        raise RefusedError(f"give a bearer token or basic auth, not both (--bearer-token-file/{TOKEN_ENV}, "
                           f"--basic-auth-file/{BASIC_AUTH_ENV})")
    if basic:
        if ":" not in basic:
            raise RefusedError("basic auth must be USER:PASSWORD on one line")
        return "Basic " + base64.b64encode(basic.encode("utf-8")).decode("ascii")
    return f"Bearer {token}" if token else None


class Client:
    """Instant queries over Prometheus's HTTP API (POST: long PromQL never hits a URL limit)."""

    def __init__(self, url: str, auth: str | None = None, ca_file: str | None = None, timeout: float = 30.0) -> None:
        parts = urllib.parse.urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise RefusedError(f"--prometheus {url!r} is not an http:// or https:// URL")
        if parts.username or parts.password:
            raise RefusedError("--prometheus URL must not carry credentials (argv is visible to every user): "
                               f"use --basic-auth-file or {BASIC_AUTH_ENV}")
        if timeout <= 0:
            raise RefusedError(f"--timeout must be positive, not {timeout:g}")
        import ssl  # here: OpenSSL and urllib.request load only when a URL is asked, not with every `perfgroup audit`
        from urllib import request

        self.url = url.rstrip("/")
        self.auth = auth
        self.timeout = timeout
        try:
            context = ssl.create_default_context(cafile=ca_file)
        except (OSError, ssl.SSLError) as error:
            raise RefusedError(f"cannot use --ca-file {ca_file}: {error}") from None
        self.opener = request.build_opener(request.HTTPSHandler(context=context))

    def query(self, expr: str) -> list[Sample]:
        from ssl import SSLCertVerificationError  # these three: loaded by __init__ already
        from urllib.error import HTTPError, URLError
        from urllib.request import Request

        request = Request(self.url + "/api/v1/query", data=urllib.parse.urlencode({"query": expr}).encode(),
                                         headers={"Accept": "application/json"})
        if self.auth:
            request.add_unredirected_header("Authorization", self.auth)  # never sent on to a redirect's host
        try:
            with self.opener.open(request, timeout=self.timeout) as response:
                answer = json.load(response)
        except HTTPError as error:
            raise self._http_error(error, expr) from None
        except (URLError, OSError) as error:
            reason = getattr(error, "reason", error)
            if isinstance(reason, SSLCertVerificationError):
                raise PerfgroupError(f"Prometheus at {self.url}: its TLS certificate is not trusted "
                                     f"({reason.verify_message}, CERTIFICATE_VERIFY_FAILED): give its CA with --ca-file") from None
            raise PerfgroupError(f"cannot reach Prometheus at {self.url}: {reason}") from None
        except ValueError:
            raise PerfgroupError(f"{self.url} did not answer with Prometheus's JSON: is it Prometheus's address?") from None
        try:
            data = answer["data"]
            if data["resultType"] == "scalar":
                return [({}, float(data["result"][1]))]
            return [(dict(item["metric"]), float(item["value"][1])) for item in data["result"]]
        except (KeyError, TypeError, IndexError, ValueError):
            raise PerfgroupError(f"{self.url} answered the query API without a result: is it Prometheus?") from None

    def _http_error(self, error: Any, expr: str) -> PerfgroupError:  # urllib.error.HTTPError
        if error.code in (401, 403):
            return PerfgroupError(
                f"Prometheus at {self.url} refused the request (HTTP {error.code}): "
                + ("the credentials were not accepted" if self.auth else "it needs credentials")
                + f" (--bearer-token-file, --basic-auth-file, {TOKEN_ENV}, {BASIC_AUTH_ENV})")
        try:
            detail = str(json.loads(error.read().decode("utf-8", "replace"))["error"])
        except (ValueError, KeyError, TypeError, OSError):
            detail = str(error.reason)
        if error.code in (400, 422):
            return PerfgroupError(f"Prometheus rejected the query ({detail}); check --selector: {expr}")
        return PerfgroupError(f"Prometheus at {self.url} answered HTTP {error.code}: {detail}")
