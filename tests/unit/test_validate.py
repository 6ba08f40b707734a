from __future__ import annotations

import pytest

from perfgroup import artifacts
from perfgroup.engine.errors import RefusedError
from perfgroup.engine.validate import (
    check_abs_path,
    check_caps,
    check_dest_path,
    check_group,
    check_job_options,
    check_member,
)

BAD_GROUPS = [
    ("", "empty"), ("x" * 33, "longer than 32"), ("-rf", "starts with '-'"), ("perf:users", "characters"),
    ("perf/users", "characters"), ("perf users", "characters"), ("perf\nusers", "characters"),
    ("pérf", "characters"), ("Perf", "characters"), ("9perf", "characters"),
    ("root", "system powers"), ("wheel", "system powers"), ("sudo", "system powers"), ("docker", "system powers"),
    ("adm", "system powers"), ("shadow", "system powers"), ("disk", "system powers"),
]


@pytest.mark.parametrize(("name", "reason"), BAD_GROUPS)
def test_bad_group_names_are_refused(name: str, reason: str) -> None:
    with pytest.raises(RefusedError, match=reason):
        check_group(name, allow_privileged=False)


@pytest.mark.parametrize("name", ["perf_users", "perf-users", "_perf", "p" * 32])
def test_good_group_names(name: str) -> None:
    assert check_group(name, allow_privileged=False) == name


def test_privileged_group_can_be_adopted_explicitly() -> None:
    assert check_group("wheel", allow_privileged=True) == "wheel"


@pytest.mark.parametrize("name", ["root", "a:b", "a\nb", "", "-x"])
def test_bad_members(name: str) -> None:
    with pytest.raises(RefusedError):
        check_member(name)


ROOT_EQUIVALENT = ["cap_setuid", "cap_perfmon,cap_dac_override", "cap_setfcap", "cap_sys_module", "cap_chown",
                   "cap_perfmon,cap_sys_admin", "cap_perfmon,cap_sys_ptrace", "cap_sys_chroot", "cap_ipc_owner", "cap_bpf"]


@pytest.mark.parametrize("caps", ROOT_EQUIVALENT)
def test_root_equivalent_caps_need_the_loud_flag(caps: str) -> None:
    with pytest.raises(RefusedError, match="become root"):
        check_caps(caps, allow_root_equivalent=False)
    assert check_caps(caps, allow_root_equivalent=True)


@pytest.mark.parametrize("caps", ["cap_perfmon,cap_kill", "cap_perfmon,cap_sys_resource", "cap_net_raw"])
def test_caps_beyond_profiling_need_the_flag_too(caps: str) -> None:
    with pytest.raises(RefusedError, match="not needed for profiling"):
        check_caps(caps, allow_root_equivalent=False)


@pytest.mark.parametrize("caps", ["cap_perfmon", "cap_perfmon,cap_ipc_lock", "cap_perfmon,cap_syslog,cap_ipc_lock"])
def test_profiling_caps_are_allowed(caps: str) -> None:
    assert check_caps(caps, allow_root_equivalent=False)


@pytest.mark.parametrize("dest", ["/opt/perf:tools/perf", "/opt/$HOME/perf", "/opt/a b/perf", "/opt/`x`/perf",
                                  "/opt/a;b/perf", "/opt/a'b/perf", '/opt/a"b/perf', "/opt/*/perf"])
def test_dest_that_would_change_path_or_the_snippet_is_refused(dest: str) -> None:
    with pytest.raises(RefusedError, match="meaning of PATH"):
        check_dest_path(dest)


@pytest.mark.parametrize("path", ["relative/perf", "", "/a/../b", "/a//b", "/a/b\n"])
def test_paths_must_be_absolute_and_normal(path: str) -> None:
    with pytest.raises(RefusedError):
        check_abs_path("--dest", path)


@pytest.mark.parametrize(("feature", "paranoid"), [("perf", 0), ("perf", 1), ("perf", None), (None, None),
                                                   ("hw_perf.v2-x", None), ("p" * 64, 0)])
def test_job_options_that_are_taken(feature: str | None, paranoid: int | None) -> None:
    check_job_options(feature, paranoid)


@pytest.mark.parametrize(("feature", "paranoid", "message"), [
    ("perf", 5, "--job-paranoid must be 0 or 1, not 5: "),
    ("perf", 2, "--job-paranoid must be 0 or 1, not 2: "),
    ("perf", -1, "--job-paranoid must be 0 or 1, not -1: "),
    ("perf", True, "--job-paranoid must be 0 or 1, not True: "),
    (None, 5, "--job-paranoid must be 0 or 1, not 5: "),
    (None, 0, "--job-paranoid goes with --job-feature"),
    ("", 1, "--job-paranoid goes with --job-feature"),
    # what the prolog's tokenizer could never match, or a template could not hold unquoted
    ("perf;reboot", None, "--job-feature 'perf;reboot' is not a Slurm feature name"),
    ("perf&bigmem", 0, "--job-feature 'perf&bigmem' is not a Slurm feature name"),
    ("-perf", None, "--job-feature '-perf' is not a Slurm feature name"),
    ("p" * 65, None, f"--job-feature '{'p' * 65}' is not a Slurm feature name"),
])
def test_job_options_that_are_refused_say_what_is_allowed(feature: str | None, paranoid: int, message: str) -> None:
    """One check for the CLI and the module (the role names its variable in the same line)."""
    with pytest.raises(RefusedError) as refused:
        check_job_options(feature, paranoid)
    assert str(refused.value).startswith(message), refused.value
    if "must be" in message:
        assert "(role: perf_users_job_paranoid)" in str(refused.value) and "artifact variable" not in str(refused.value)


@pytest.mark.parametrize("name", ["perf", "hw_perf.v2-x", "p" * 64, "perf;reboot", "-perf", ".perf", "p" * 65, "perf x",
                                  "perf\n", "pérf"])
def test_the_feature_rule_and_the_template_check_agree(name: str) -> None:
    """The artifacts' own check (a second line before a value goes into a script) takes exactly
    what check_job_options takes."""
    try:
        check_job_options(name, None)
        taken = True
    except RefusedError:
        taken = False
    assert taken is bool(artifacts._CHECKS["job_feature"].match(name))
