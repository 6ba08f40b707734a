"""Fleet-level checks that no single node can see, from every node's audit report. Pure.

A host whose audit could not be read (unreachable, module failure) is UNKNOWN, never OK.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Any, Callable, Dict, Iterator, Mapping

from .engine.finding import CRITICAL, OK, RANK, UNKNOWN, WARNING


@dataclass(frozen=True)
class FleetFinding:
    id: str
    severity: str
    message: str
    hosts: tuple[str, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        return {"id": self.id, "severity": self.severity, "message": self.message, "hosts": list(self.hosts)}


def _split(values: dict[str, Any]) -> dict[Any, list[str]]:
    groups: dict[Any, list[str]] = defaultdict(list)
    for host, value in values.items():
        groups[value].append(host)
    return groups


def majority(counts: Mapping[Any, int]) -> Any:
    """The value most nodes share; on a tie the greatest as text, so every run picks the same one
    (audit -i from reports, audit --prometheus from PromQL counts)."""
    return max(counts, key=lambda v: (counts[v], str(v)))


def _majority_outliers(values: dict[str, Any]) -> tuple[Any, list[str]]:
    groups = _split(values)
    common = majority({value: len(hosts) for value, hosts in groups.items()})
    outliers = sorted(h for v, hs in groups.items() if v != common for h in hs)
    return common, outliers


Reports = Dict[str, Dict[str, Any]]


def rule_unreadable(reports: Reports, errors: dict[str, str]) -> Iterator[FleetFinding]:
    for host in sorted(errors):
        yield FleetFinding("host.unknown", UNKNOWN, f"{host}: no audit ({errors[host]})", (host,))


def rule_gid(reports: Reports, errors: dict[str, str]) -> Iterator[FleetFinding]:
    gids = {h: r.get("gid") for h, r in reports.items() if r.get("gid") is not None}
    if len(set(gids.values())) > 1:
        common, outliers = _majority_outliers(gids)
        yield FleetFinding(
            "fleet.gid_mismatch", CRITICAL,
            f"group gid differs between nodes (most have {common}): "
            + ", ".join(f"{h}={gids[h]}" for h in outliers), tuple(outliers),
        )
    elif gids:
        yield FleetFinding("fleet.gid_consistent", OK, f"group gid {next(iter(gids.values()))} on every node")


def rule_build(reports: Reports, errors: dict[str, str]) -> Iterator[FleetFinding]:
    by_os: dict[str, dict[str, Any]] = defaultdict(dict)
    for host, report in reports.items():
        if report.get("copy_sha256"):
            by_os[report.get("os_release", "?")][host] = report["copy_sha256"]
    for os_id, shas in sorted(by_os.items()):
        if len(set(shas.values())) > 1:
            _, outliers = _majority_outliers(shas)
            yield FleetFinding(
                "fleet.build_mismatch", WARNING,
                f"privileged perf differs between {os_id} nodes: {', '.join(outliers)} run another build",
                tuple(outliers),
            )


def _caps_by_kernel(reports: Reports) -> dict[Any, dict[str, Any]]:
    by_kernel: dict[Any, dict[str, Any]] = defaultdict(dict)
    for host, report in reports.items():
        if report.get("caps"):
            by_kernel[(report.get("kernel_release"), report.get("cap_last_cap"))][host] = tuple(report["caps"])
    return by_kernel


def rule_caps(reports: Reports, errors: dict[str, str]) -> Iterator[FleetFinding]:
    by_kernel = sorted(_caps_by_kernel(reports).items(), key=str)
    for (release, last_cap), caps in by_kernel:
        if len(set(caps.values())) > 1:
            _, outliers = _majority_outliers(caps)
            yield FleetFinding(
                "fleet.caps_mismatch", WARNING,
                f"nodes with kernel {release} (cap_last_cap {last_cap}) carry different capabilities: {', '.join(outliers)}",
                tuple(outliers),
            )
    for (release, last_cap), caps in by_kernel:
        sets = sorted({",".join(c) for c in caps.values()})
        yield FleetFinding("fleet.caps", OK, f"kernel {release} (cap_last_cap {last_cap}): {' | '.join(sets)}",
                           tuple(sorted(caps)))


def rule_members(reports: Reports, errors: dict[str, str]) -> Iterator[FleetFinding]:
    members = {h: tuple(sorted(r.get("members", []))) for h, r in reports.items() if r.get("group_local")}
    if len(set(members.values())) > 1:
        _, outliers = _majority_outliers(members)
        yield FleetFinding("fleet.members_mismatch", WARNING,
                           f"local group members differ on: {', '.join(outliers)}", tuple(outliers))


FleetRule = Callable[[Reports, Dict[str, str]], Iterator[FleetFinding]]
RULES: tuple[FleetRule, ...] = (rule_unreadable, rule_gid, rule_build, rule_caps, rule_members)


def fleet_findings(reports: dict[str, dict[str, Any] | None], errors: dict[str, str]) -> list[FleetFinding]:
    """Every fleet rule over the hosts whose audit was read; a host without one is UNKNOWN."""
    unreadable = {h: errors.get(h, "no result") for h in set(reports) | set(errors) if reports.get(h) is None}
    good = {h: r for h, r in reports.items() if r is not None}
    return [finding for rule in RULES for finding in rule(good, unreadable)]


def worst(severities: list[str]) -> str:
    return max(severities, key=RANK.__getitem__, default=OK)
