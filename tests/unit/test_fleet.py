from __future__ import annotations

from typing import Any

from perfgroup.fleet import fleet_findings


def report(gid: int = 995, sha: str = "a", caps: tuple[str, ...] = ("cap_perfmon",), release: str = "6.1",
           last: int = 40, members: tuple[str, ...] = ("alice",), os_release: str = "debian-12") -> dict[str, Any]:
    return {"gid": gid, "copy_sha256": sha, "caps": list(caps), "kernel_release": release, "cap_last_cap": last,
            "members": list(members), "group_local": True, "os_release": os_release, "status": "ok"}


def ids(found: list[Any]) -> dict[str, str]:
    return {f.id: f.severity for f in found}


def test_consistent_fleet() -> None:
    found = fleet_findings({"a": report(), "b": report(), "c": report()}, {})
    assert ids(found) == {"fleet.gid_consistent": "ok", "fleet.caps": "ok"}


def test_gid_outlier_is_named() -> None:
    found = fleet_findings({"a": report(), "b": report(gid=4711), "c": report()}, {})
    mismatch = next(f for f in found if f.id == "fleet.gid_mismatch")
    assert mismatch.severity == "critical" and mismatch.hosts == ("b",)


def test_build_caps_and_member_outliers() -> None:
    found = ids(fleet_findings({
        "a": report(), "b": report(sha="b", caps=("cap_perfmon", "cap_syslog"), members=()), "c": report(),
    }, {}))
    assert found["fleet.build_mismatch"] == found["fleet.caps_mismatch"] == found["fleet.members_mismatch"] == "warning"


def test_different_os_or_kernel_may_differ() -> None:
    found = ids(fleet_findings({
        "a": report(), "b": report(sha="b", os_release="rocky-9", caps=("cap_sys_admin",), last=37, release="4.18"),
    }, {}))
    assert "fleet.build_mismatch" not in found and "fleet.caps_mismatch" not in found


def test_unreachable_is_unknown() -> None:
    found = fleet_findings({"a": report(), "dead": None}, {"dead": "unreachable"})
    assert ids(found)["host.unknown"] == "unknown"
