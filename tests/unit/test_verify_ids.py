"""How verify picks its identities (security review finding 1): fresh ids only, never nobody, never
an account, a running process's id or a subordinate id range. The host is only read."""

from __future__ import annotations

from pathlib import Path

import pytest

from perfgroup.engine import verify
from perfgroup.engine.errors import VerifyError


def test_id_map_and_sub_ranges_are_parsed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    uid_map = tmp_path / "uid_map"
    uid_map.write_text("         0     100000      65536\n")
    assert verify._id_map(str(uid_map)) == [(0, 65536)]
    assert verify._id_map(str(tmp_path / "missing")) == [(0, verify.FRESH_TOP + 1)]
    subuid, subgid = tmp_path / "subuid", tmp_path / "subgid"
    subuid.write_text("alice:100000:65536\n# comment\nbad line\n")
    subgid.write_text("bob:4294000000:1000\n")
    monkeypatch.setattr(verify, "SUB_ID_FILES", (str(subuid), str(subgid), str(tmp_path / "none")))
    assert verify._sub_id_ranges() == [(100000, 165536), (4294000000, 4294001000)]


def test_a_fresh_id_is_nothing_anyone_is() -> None:
    used = {4294000001}
    sub = [(4294000100, 4294000200)]
    assert not verify._is_free(65534, set(), [])  # nobody
    assert not verify._is_free(0, set(), [])  # root has a passwd entry
    assert not verify._is_free(4294000001, used, sub)  # a process runs with it
    assert not verify._is_free(4294000150, used, sub)  # someone's subordinate range
    assert verify._is_free(4294000300, used, sub)


def test_fresh_ids_come_from_the_top_and_skip_what_is_taken(monkeypatch: pytest.MonkeyPatch) -> None:
    picks = iter([4294000001, 4294000150, 4294000001, 4294000300, 4294000301])
    monkeypatch.setattr(verify.random.SystemRandom, "randrange", lambda self, low, high: next(picks))
    monkeypatch.setattr(verify, "_ids_in_use", lambda: {4294000001})
    monkeypatch.setattr(verify, "_sub_id_ranges", lambda: [(4294000100, 4294000200)])
    assert verify.fresh_ids(2) == [4294000300, 4294000301]


def test_fresh_ids_stay_inside_what_the_namespace_maps(monkeypatch: pytest.MonkeyPatch) -> None:
    bounds = []

    def randrange(self: object, low: int, high: int) -> int:
        bounds.append((low, high))
        return high - 1

    monkeypatch.setattr(verify.random.SystemRandom, "randrange", randrange)
    monkeypatch.setattr(verify, "_id_map", lambda path: [(0, 65536)])  # an unprivileged container
    monkeypatch.setattr(verify, "_ids_in_use", set)
    monkeypatch.setattr(verify, "_sub_id_ranges", list)
    with pytest.raises(VerifyError, match="no unused id"):
        verify.fresh_ids(1)  # 65535 is reserved, and the only id ever drawn here
    assert bounds[0] == (1, 65536)


def test_lines_no_longer_say_nobody() -> None:
    probe = verify.Probe(True, 0, "ok")
    result = verify.VerifyResult(probe, verify.Probe(False, None, "permission denied"), None)
    assert "nobody" not in " ".join(result.lines())
