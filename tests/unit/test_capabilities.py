from __future__ import annotations

import struct

import pytest

from perfgroup.engine.capabilities import (
    CapabilityError,
    choose_caps,
    decode,
    encode,
    kernel_version,
    parse_cap_list,
)


def test_perfmon_encoding_matches_the_kernel_layout() -> None:
    # Vector from engineering notes: what `setcap cap_perfmon=ep` writes.
    assert encode(frozenset({"cap_perfmon"})).hex() == "0100000200000000000000004000000000000000"


@pytest.mark.parametrize("caps", [
    {"cap_perfmon"}, {"cap_perfmon", "cap_syslog"}, {"cap_sys_admin", "cap_sys_ptrace", "cap_syslog"},
    {"cap_chown", "cap_checkpoint_restore"},
])
def test_round_trip(caps: set[str]) -> None:
    decoded = decode(encode(frozenset(caps)))
    assert decoded.permitted == caps and decoded.effective and decoded.revision == 2
    assert not decoded.inheritable and not decoded.namespaced


def test_v3_with_rootid_is_namespaced() -> None:
    data = struct.pack("<6I", 0x03000001, 0, 0, 1 << 6, 0, 100000)
    caps = decode(data)
    assert caps.revision == 3 and caps.rootid == 100000 and caps.namespaced
    assert caps.permitted == {"cap_perfmon"}


def test_v3_with_root_zero_is_not_namespaced() -> None:
    assert not decode(struct.pack("<6I", 0x03000001, 0, 0, 1 << 6, 0, 0)).namespaced


def test_not_effective() -> None:
    assert not decode(encode(frozenset({"cap_perfmon"}), effective=False)).effective


@pytest.mark.parametrize("data", [b"", b"\x01\x00", b"\x00" * 20, struct.pack("<5I", 0x02000001, 0, 0, 0, 0) + b"x"])
def test_malformed_attributes_are_rejected(data: bytes) -> None:
    with pytest.raises(CapabilityError):
        decode(data)


PERFMON = {"cap_perfmon", "cap_syslog", "cap_ipc_lock"}
LEGACY = {"cap_sys_admin", "cap_sys_ptrace", "cap_syslog"}


@pytest.mark.parametrize(("last_cap", "release", "allow", "expected", "core"), [
    (40, "6.1.0-18-amd64", False, PERFMON, "cap_perfmon"),
    (40, "6.1.0-18-amd64", True, PERFMON, "cap_perfmon"),  # the opt-in never adds power that is not needed
    (38, "5.8.0", False, PERFMON, "cap_perfmon"),  # 5.8 would want cap_sys_ptrace: root-equivalent, not granted
    (38, "5.8.0", True, PERFMON | {"cap_sys_ptrace"}, "cap_perfmon"),
    (39, "5.9.1", False, PERFMON, "cap_perfmon"),
    (38, "4.18.0-477.el8.x86_64", False, PERFMON, "cap_perfmon"),  # backport: cap_last_cap wins over the version
    (37, "5.4.0-150-generic", False, LEGACY, "cap_sys_admin"),
    (37, "6.1.0", False, LEGACY, "cap_sys_admin"),  # cap_last_cap wins
    (None, "5.10.0", False, PERFMON, "cap_perfmon"),
    (None, "4.19.0", False, LEGACY, "cap_sys_admin"),
])
def test_choose_caps(last_cap: int | None, release: str, allow: bool, expected: set[str], core: str) -> None:
    choice = choose_caps(last_cap, release, allow_root_equivalent=allow)
    assert choice.caps == expected and choice.core == core and choice.reason


def test_an_image_without_a_kernel_is_not_kernel_0_0() -> None:
    choice = choose_caps(40, "", allow_root_equivalent=True)  # setup --root on an image without /lib/modules
    assert choice.caps == PERFMON and "0.0" not in choice.reason and "release unknown" in choice.reason


def test_the_legacy_set_is_root_equivalent_and_says_so() -> None:
    choice = choose_caps(37, "4.19.0")
    assert choice.root_equivalent == {"cap_sys_admin", "cap_sys_ptrace"} and "become root" in choice.reason
    assert not choose_caps(40, "6.1.0").root_equivalent


@pytest.mark.parametrize(("release", "version"), [
    ("6.1.0-18-amd64", (6, 1)), ("5.9", (5, 9)), ("4.18.0-477.el8.x86_64", (4, 18)), ("5.15rc1", (5, 15)), ("junk", (0, 0)),
])
def test_kernel_version(release: str, version: tuple[int, int]) -> None:
    assert kernel_version(release) == version


@pytest.mark.parametrize(("text", "expected"), [
    ("cap_perfmon", {"cap_perfmon"}),
    ("CAP_PERFMON,cap_syslog", {"cap_perfmon", "cap_syslog"}),
    ("perfmon, syslog=ep", {"cap_perfmon", "cap_syslog"}),
    ("38,34", {"cap_perfmon", "cap_syslog"}),
])
def test_parse_cap_list(text: str, expected: set[str]) -> None:
    assert parse_cap_list(text) == expected


@pytest.mark.parametrize("text", ["", "all", "ALL", "cap_bogus", "99", "cap_perfmon=i", ","])
def test_parse_cap_list_rejects(text: str) -> None:
    with pytest.raises(CapabilityError):
        parse_cap_list(text)
