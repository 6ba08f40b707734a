"""What perfgroup's Ansible processes inherit: no Python warnings on the user's terminal unless
-v asks for them (ansible-core imports cryptography at start, and a newer cryptography warns on
every run), the caller's PYTHONWARNINGS kept with -v, Ansible's -v messages on stderr."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from perfgroup import ansible_run
from perfgroup.cli import main

PROBE = "perfgroup-warning-probe"


@pytest.mark.parametrize("callers", [None, "default", "error::ResourceWarning"])
def test_without_verbose_ansible_runs_with_python_warnings_off(monkeypatch: pytest.MonkeyPatch,
                                                               callers: str | None) -> None:
    if callers is None:
        monkeypatch.delenv("PYTHONWARNINGS", raising=False)
    else:
        monkeypatch.setenv("PYTHONWARNINGS", callers)
    env = ansible_run.environment(Path("/collections"))
    assert env["PYTHONWARNINGS"] == "ignore"
    assert env["ANSIBLE_VERBOSE_TO_STDERR"] == "True"


def test_verbose_keeps_the_callers_python_warnings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PYTHONWARNINGS", raising=False)
    assert "PYTHONWARNINGS" not in ansible_run.environment(Path("/collections"), verbose=1)
    monkeypatch.setenv("PYTHONWARNINGS", "error::ResourceWarning")
    assert ansible_run.environment(Path("/collections"), verbose=2)["PYTHONWARNINGS"] == "error::ResourceWarning"


@pytest.mark.parametrize(("args", "verbose"), [
    (["deploy", "-i", "inv.ini"], 0),
    (["deploy", "-i", "inv.ini", "-v"], 1),
    (["deploy", "-i", "inv.ini", "-vv"], 2),
    (["deploy", "-i", "inv.ini", "--verbose"], 1),
    (["audit", "-i", "inv.ini"], 0),
    (["audit", "-i", "inv.ini", "-v"], 1),
])
def test_cli_passes_verbose_on(monkeypatch: pytest.MonkeyPatch, args: list[str], verbose: int) -> None:
    calls: list[dict[str, Any]] = []
    monkeypatch.setattr(ansible_run, "run", lambda *a, **kwargs: calls.append(kwargs) or {})
    monkeypatch.setattr(ansible_run, "host_results", lambda report, kind: {})
    CliRunner(env={"NO_COLOR": "1"}).invoke(main, args)
    assert [call.get("verbose", 0) for call in calls] == [verbose]


@pytest.mark.parametrize("verbose", [0, 1])
def test_a_python_warning_in_ansibles_process_stays_off_stderr(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                               capsys: pytest.CaptureFixture[str], verbose: int) -> None:
    """The real ansible-playbook and ansible (the no-match path runs both): every Python process
    they start imports a sitecustomize that warns, as cryptography does at ansible-core's import."""
    ansible_run.ansible_playbook()  # ansible-core is installed (the test lanes' venvs have it)
    probe = tmp_path / "probe"
    probe.mkdir()
    (probe / "sitecustomize.py").write_text(f"import warnings\nwarnings.warn({PROBE!r}, UserWarning)\n")
    monkeypatch.setenv("PYTHONPATH", str(probe))
    monkeypatch.delenv("PYTHONWARNINGS", raising=False)
    inventory = tmp_path / "inventory.ini"
    inventory.write_text("[compute]\nnode1 ansible_host=127.0.0.1\n")
    with pytest.raises(ansible_run.NoHostsMatched):
        ansible_run.run("audit.yml", str(inventory), "node1", [], None, hosts="perf_nodes", verbose=verbose)
    stderr = capsys.readouterr().err
    if verbose:
        assert PROBE in stderr, stderr  # the probe works, and -v shows it
        assert "config file" in stderr, stderr  # -v reached ansible-playbook; its messages go to stderr
    else:
        assert stderr == "", stderr
