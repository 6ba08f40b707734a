"""The Slurm scripts `setup --job-feature` renders, run for real: the prolog with dash (what
/bin/sh is on Debian) and a stand-in for perfgroup-node that records how it was called; traced with
strace to prove a job that did not ask starts no process at all; the epilog's cheap exits; the
job_submit.lua snippet under lua5.4 with a `slurm` table as slurmctld's lua plugin provides it
(tests/integration/test_slurm.py loads it into the real slurmctld)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from perfgroup import artifacts

CONTEXT: dict[str, object] = {
    "group": "perf_users", "dest": "/usr/local/libexec/perfgroup/perf_users/perf",
    "dest_dir": "/usr/local/libexec/perfgroup/perf_users", "stock_perf": "/usr/bin/perf",
    "textfile_dir": "/var/lib/prometheus/node-exporter", "timer_interval": "5min", "module_name": "perf/privileged",
    "job_feature": "perf",
}


def need(tool: str) -> str:
    path = shutil.which(tool)
    if path is None:
        pytest.fail(f"{tool} is not installed (.ci/run installs it)")
    return path


def scripts(tmp_path: Path, paranoid: str = "") -> tuple[Path, Path, Path]:
    """(prolog, epilog, the file the stand-in perfgroup-node appends its arguments to)."""
    calls = tmp_path / "calls"
    fake = tmp_path / "perfgroup-node"
    fake.write_text(f'#!/bin/sh\necho "$@" >> {calls}\n')
    fake.chmod(0o755)
    rendered = artifacts.render({**CONTEXT, "node_command": str(fake), "job_paranoid": paranoid}, {"slurm"})
    out = []
    for item in rendered:
        path = tmp_path / ("prolog" if "/prolog.d/" in item.path else "epilog")
        path.write_text(item.content)
        path.chmod(item.mode)
        out.append(path)
    return out[0], out[1], calls


def run(script: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([need("dash"), str(script)], env={"PATH": "/usr/bin:/bin", **env}, capture_output=True,
                          text=True, timeout=30, check=False)


@pytest.mark.parametrize(("constraints", "calls"), [
    (None, False), ("", False), ("noperf", False), ("perfx", False), ("bigmem", False), ("perf-tools", False),
    ("perf", True), ("bigmem&perf", True), ("perf,bigmem", True), ("perf*2", True), ("[perf|x]", True),
])
def test_the_prolog_hands_over_only_a_whole_token(tmp_path: Path, constraints: str | None, calls: bool) -> None:
    """An OR expression still reaches perfgroup-node, whose rules refuse it with a syslog line."""
    prolog, _, record = scripts(tmp_path)
    env = {"SLURM_JOB_ID": "7", "SLURM_JOB_USER": "alice"}
    if constraints is not None:
        env["SLURM_JOB_CONSTRAINTS"] = constraints
    result = run(prolog, env)
    assert result.returncode == 0 and result.stdout == result.stderr == ""
    assert record.exists() is calls
    if calls:
        assert record.read_text() == "job-grant --group perf_users --feature perf\n"


def test_job_paranoid_is_passed_on(tmp_path: Path) -> None:
    prolog, _, record = scripts(tmp_path, paranoid="0")
    assert run(prolog, {"SLURM_JOB_CONSTRAINTS": "perf"}).returncode == 0
    assert record.read_text() == "job-grant --group perf_users --feature perf --paranoid 0\n"


def test_a_job_that_asks_for_nothing_starts_no_process(tmp_path: Path) -> None:
    prolog, _, _ = scripts(tmp_path)
    log = tmp_path / "trace"
    for constraints in ("noperf&bigmem", ""):
        subprocess.run([need("strace"), "-f", "-qq", "-e", "trace=execve,clone,clone3,fork,vfork", "-o", str(log),
                        need("dash"), str(prolog)], env={"SLURM_JOB_CONSTRAINTS": constraints}, check=True, timeout=30)
        lines = log.read_text().splitlines()
        assert len(lines) == 1 and "execve(" in lines[0] and "dash" in lines[0], lines  # dash itself, nothing else


@pytest.mark.parametrize("job", [None, "", "12a", "../1", "99999999"])
def test_the_epilog_leaves_without_a_job_id_or_a_grant_record(tmp_path: Path, job: str | None) -> None:
    assert not os.path.exists("/run/perfgroup/grants/99999999")
    _, epilog, record = scripts(tmp_path)
    result = run(epilog, {} if job is None else {"SLURM_JOB_ID": job})
    assert result.returncode == 0 and not record.exists()


def test_setup_refuses_a_feature_or_paranoid_value_the_scripts_do_not_take() -> None:
    dest = "/usr/local/libexec/perfgroup/perf_users/perf"
    for feature in ("perf;reboot", "perf'", "a b", ""):
        with pytest.raises(ValueError, match="job_feature"):
            artifacts.setup_artifacts("perf_users", dest, job_feature=feature or "-")
    with pytest.raises(ValueError, match="job_paranoid"):
        artifacts.setup_artifacts("perf_users", dest, job_feature="perf", job_paranoid=2)
    with pytest.raises(ValueError, match="--job-paranoid goes with --job-feature"):
        artifacts.setup_artifacts("perf_users", dest, job_paranoid=0)


LUA_STUB = """
slurm = {SUCCESS = 0, ERROR = -1, NO_VAL = 4294967294, ESLURM_INVALID_FEATURE = 2016, logged = {}}
function slurm.log_user(fmt, ...) table.insert(slurm.logged, string.format(fmt, ...)) end
dofile(arg[1])
local cases = {
  {features = "perf", shared = 65534, want = 2016},
  {features = "perf", shared = 0, want = 0},
  {features = "perf&bigmem", shared = 1, want = 2016},
  {features = "bigmem,perf", shared = 2, want = 2016},
  {features = "noperf", shared = 65534, want = 0},
  {features = "perfx", shared = 65534, want = 0},
  {features = nil, shared = 65534, want = 0},
}
for i, case in ipairs(cases) do
  local got = slurm_job_submit({features = case.features, shared = case.shared}, {}, 1001)
  if got ~= case.want then
    print("case " .. i .. ": got " .. tostring(got))
    os.exit(1)
  end
end
print(#slurm.logged .. " " .. slurm.logged[1])
"""


def test_job_submit_lua_rejects_the_feature_without_exclusive_nodes(tmp_path: Path) -> None:
    snippet = tmp_path / "job_submit.lua"
    snippet.write_text(artifacts.job_submit_lua("perf"))
    stub = tmp_path / "stub.lua"
    stub.write_text(LUA_STUB)
    result = subprocess.run([need("lua5.4"), str(stub), str(snippet)], capture_output=True, text=True, timeout=30,
                            check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == "3 -C perf needs --exclusive: perf access is granted only on nodes the job has to " \
                                    "itself"
