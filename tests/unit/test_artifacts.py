"""The node artifacts: each template renders, parses in its own language (sh, dash, bash, csh,
tcsh, systemd, apt.conf, Lua, Tcl), behaves (the perf wrapper in a throwaway node; the csh
snippet, the Tcl modulefile and the NHC check for a member and a non-member), and refuses
missing or unsafe variables."""

from __future__ import annotations

import os
import re
import shutil
import stat
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import jinja2
import jinja2.meta
import pytest
import tomllib

from perfgroup import artifacts

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from node import Node

ROOT = Path(__file__).resolve().parent.parent.parent
GROUP = "perf_users"
CONTEXT: dict[str, object] = {
    "group": GROUP, "gid": 995, "dest": "/usr/local/libexec/perfgroup/perf_users/perf",
    "dest_dir": "/usr/local/libexec/perfgroup/perf_users", "stock_perf": "/usr/bin/perf",
    "node_command": "/usr/local/sbin/perfgroup-node", "textfile_dir": "/var/lib/prometheus/node-exporter",
    "timer_interval": "5min", "module_name": "perf/privileged", "tracefs_gid": 995, "tracefs_mode": "0750",
    "shell_caps": "cap_perfmon",
    "job_feature": "perf", "job_paranoid": "",
}
HEADER = f"Managed by perfgroup for group {GROUP}: do not edit"


def ctx(**overrides: object) -> dict[str, object]:
    return {**CONTEXT, **overrides}


def one(kind: str, **overrides: object) -> artifacts.RenderedArtifact:
    return artifacts.render(ctx(**overrides), {kind})[0]


def need(tool: str) -> str:
    path = shutil.which(tool)
    if path is None:
        pytest.skip(f"{tool} is not installed (see .ci/run)")
    return path


def stub(tmp_path: Path, name: str, body: str) -> str:
    path = tmp_path / name
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(0o755)
    return str(path)


# -- the table and rendering -------------------------------------------------------------------

EXPECTED_PATHS = {
    "/etc/systemd/system/perfgroup-heal-perf_users.service": (0o644, "boot"),
    "/etc/systemd/system/sys-kernel-tracing.mount.d/perfgroup.conf": (0o644, "tracefs"),
    "/etc/systemd/system/perfgroup-textfile-perf_users.service": (0o644, "prometheus"),
    "/etc/systemd/system/perfgroup-textfile-perf_users.timer": (0o644, "prometheus"),
    "/etc/apt/apt.conf.d/80perfgroup-perf_users": (0o644, "apt"),
    "/etc/dnf/plugins/post-transaction-actions.d/perfgroup-perf_users.action": (0o644, "dnf"),
    "/etc/dnf/libdnf5-plugins/actions.d/perfgroup-perf_users.actions": (0o644, "dnf"),
    "/etc/nhc/scripts/perfgroup.nhc": (0o644, "nhc"),
    "/etc/nhc/nhc.conf.d/perfgroup-perf_users.conf": (0o644, "nhc-conf"),
    "/etc/lmod/modules/perf/privileged.lua": (0o644, "lmod"),
    "/etc/environment-modules/modules/perf/privileged": (0o644, "tcl-module"),
    "/etc/profile.d/perfgroup-perf_users.csh": (0o644, "csh"),
    "/usr/local/bin/perf": (0o755, "wrapper"),
    "/usr/local/libexec/perfgroup/perf_users/perf-shell": (0o755, "shell-helper"),
    "/etc/sudoers.d/perfgroup-perf_users": (0o440, "sudoers"),
    "/usr/local/bin/perf-shell": (0o755, "shell"),
    "/etc/slurm/prolog.d/50-perfgroup-perf_users": (0o755, "slurm"),
    "/etc/slurm/epilog.d/50-perfgroup-perf_users": (0o755, "slurm"),
}


def test_every_artifact_renders_at_its_node_path_with_the_header() -> None:
    rendered = artifacts.render(dict(CONTEXT))
    assert {a.path: (a.mode, a.kind) for a in rendered} == EXPECTED_PATHS
    for artifact in rendered:
        head = artifact.content.splitlines()[:2]
        assert any(HEADER in line for line in head), (artifact.path, head)
        assert "{{" not in artifact.content and "{%" not in artifact.content
        assert artifact.content.endswith("\n")


def test_every_template_file_is_in_the_table_and_shipped_in_the_wheel() -> None:
    on_disk = {p.name for p in (ROOT / "templates").iterdir()}
    assert on_disk == {a.template for a in artifacts.ARTIFACTS} | {artifacts.JOB_SUBMIT_TEMPLATE}
    data_files = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["data-files"]
    assert data_files["share/perfgroup/templates"] == ["templates/*"]
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    assert any(d.startswith("jinja2") for d in deps)


def test_kinds_select_and_unknown_kinds_are_refused() -> None:
    assert {a.kind for a in artifacts.render(ctx(), {"dnf"})} == {"dnf"}
    assert len(artifacts.render(ctx(), {"dnf"})) == 2
    with pytest.raises(ValueError, match="nosuch"):
        artifacts.render(ctx(), {"nosuch"})


def test_templates_use_every_context_variable_but_gid() -> None:
    env = artifacts.environment()
    used: set[str] = set()
    for artifact in artifacts.ARTIFACTS:
        assert env.loader is not None
        source = env.loader.get_source(env, artifact.template)[0]
        used |= jinja2.meta.find_undeclared_variables(env.parse(source))
        used |= jinja2.meta.find_undeclared_variables(env.parse(artifact.path))
    # gid is accepted for the engine's convenience; tracefs_gid is the one a file needs.
    assert used == (set(CONTEXT) - {"gid"}) | {"wrapper_path", "helper_path", "sudoers_path", "shell_command",
                                               "shell_iab"}


@pytest.mark.parametrize("name", sorted(set(CONTEXT) - {"gid"}))
def test_a_missing_variable_raises(name: str) -> None:
    context = ctx()
    del context[name]
    with pytest.raises(jinja2.UndefinedError, match=name):
        artifacts.render(context)


@pytest.mark.parametrize(("name", "value"), [
    ("group", "Perf users"), ("group", "perf;reboot"), ("group", ""), ("group", 5),
    ("dest", "relative/perf"), ("dest", "/usr/local/libexec/perf group/perf"), ("dest", "/a/../etc/perf"),
    ("dest_dir", "/x'y"), ("stock_perf", "/usr/bin/perf\n"), ("node_command", "/usr/sbin/x $(id)"),
    ("textfile_dir", "/var/lib/x\"y"), ("timer_interval", "5min; rm"), ("module_name", "../perf"),
    ("module_name", "perf/x y"), ("tracefs_mode", "0777 "), ("tracefs_mode", "u+rwx"),
    ("gid", "995"), ("gid", True), ("tracefs_gid", -1),
    ("stock_perf", "/usr/local/bin/perf"),  # the wrapper itself: it would exec itself
    ("shell_caps", "cap_perfmon cap_syslog"), ("shell_caps", "cap_perfmon,$(id)"), ("shell_caps", ""),
])
def test_unsafe_values_are_refused(name: str, value: object) -> None:
    with pytest.raises(ValueError, match=name):
        artifacts.render(ctx(**{name: value}))


def test_templates_dir_override_and_checkout(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("PERFGROUP_TEMPLATES", raising=False)
    assert artifacts.templates_dir() == ROOT / "templates"
    monkeypatch.setenv("PERFGROUP_TEMPLATES", str(tmp_path))
    assert artifacts.templates_dir() == tmp_path
    (tmp_path / "apt-hook.j2").write_text("// Managed by perfgroup for group {{ group }}: do not edit\n")
    (hook,) = artifacts.render(ctx(), {"apt"})
    assert hook.content == f"// {HEADER}\n"


# -- systemd ------------------------------------------------------------------------------------

def verify_units(directory: Path, *units: str, dump: bool = False) -> tuple[int, str]:
    """systemd-analyze verify, read-only: it loads the given units (and systemd's own) into a
    private manager; with dump (debug level) it also prints each loaded unit's settings."""
    tool = shutil.which("systemd-analyze")
    if tool is None:
        pytest.skip("systemd-analyze is not installed")
    env = {**os.environ, "SYSTEMD_UNIT_PATH": f"{directory}:"}
    if dump:
        env["SYSTEMD_LOG_LEVEL"] = "debug"
    result = subprocess.run([tool, "verify", "--man=no", *units], capture_output=True, text=True, timeout=120,
                            env=env, check=False)
    return result.returncode, result.stdout + result.stderr


def test_systemd_units_verify(tmp_path: Path) -> None:
    command = stub(tmp_path, "perfgroup-node", "exit 0\n")  # verify insists ExecStart= exists
    units = tmp_path / "units"
    units.mkdir()
    for artifact in artifacts.render(ctx(node_command=command), {"boot", "prometheus"}):
        (units / os.path.basename(artifact.path)).write_text(artifact.content)
    names = sorted(p.name for p in units.iterdir())
    assert len(names) == 3
    code, output = verify_units(units, *(str(units / n) for n in names))
    assert (code, output) == (0, "")  # any unknown key, bad value or missing command is a warning here
    code, output = verify_units(units, *(str(units / n) for n in names), dump=True)
    assert "OnUnitActiveSec: 5min" in output  # the loaded timer, as systemd understood it
    (units / names[0]).write_text((units / names[0]).read_text().replace("RemainAfterExit=", "RemainAfterExot="))
    assert "Unknown key" in verify_units(units, str(units / names[0]))[1]


def test_heal_unit_ordering_and_failure_are_as_documented() -> None:
    unit = one("boot").content
    assert f"ExecStart=/usr/local/sbin/perfgroup-node heal --group {GROUP}\n" in unit
    after = re.search(r"^After=(.*)$", unit, re.M)
    before = re.search(r"^Before=(.*)$", unit, re.M)
    assert after and {"local-fs.target", "systemd-sysctl.service", "sys-kernel-tracing.mount"} <= set(
        after.group(1).split())
    assert before and {"systemd-user-sessions.service", "slurmd.service", "nhc.service"} <= set(before.group(1).split())
    for line in ("Type=oneshot", "RemainAfterExit=yes", "WantedBy=multi-user.target",
                 "StandardOutput=journal+console"):
        assert f"\n{line}\n" in unit
    assert "SuccessExitStatus" not in unit  # any non-zero exit leaves the unit failed


def test_tracefs_dropin_replaces_options_and_keeps_systemds_own(tmp_path: Path) -> None:
    stock = Path("/usr/lib/systemd/system/sys-kernel-tracing.mount")
    if not stock.exists():
        pytest.skip("this systemd ships no sys-kernel-tracing.mount")
    own = re.search(r"^Options=(.*)$", stock.read_text(), re.M)
    assert own is not None
    units = tmp_path / "units"
    (units / "sys-kernel-tracing.mount.d").mkdir(parents=True)
    shutil.copy(stock, units)
    dropin = units / "sys-kernel-tracing.mount.d" / "perfgroup.conf"
    # First prove the premise: a drop-in's Options= replaces the unit's (it is not appended).
    dropin.write_text("[Mount]\nOptions=gid=7\n")
    output = verify_units(units, "sys-kernel-tracing.mount", dump=True)[1]
    assert re.search(r"^\s*Options: gid=7$", output, re.M), output
    dropin.write_text(one("tracefs").content)
    assert verify_units(units, "sys-kernel-tracing.mount") == (0, "")
    output = verify_units(units, "sys-kernel-tracing.mount", dump=True)[1]
    loaded = re.search(r"^\s*Options: (.*)$", output, re.M)
    assert loaded is not None and str(dropin) in output
    assert set(loaded.group(1).split(",")) == set(own.group(1).split(",")) | {"gid=995", "mode=0750"}


def test_textfile_service_runs_the_prometheus_audit_and_tolerates_nagios_results() -> None:
    service = one("prometheus").content
    assert ("ExecStart=/usr/local/sbin/perfgroup-node audit --group perf_users --format prometheus "
            "--textfile-dir /var/lib/prometheus/node-exporter\n") in service
    assert "\nSuccessExitStatus=1 2\n" in service
    timer = artifacts.render(ctx(timer_interval="15min"), {"prometheus"})[1].content
    assert "\nOnUnitActiveSec=15min\n" in timer and "\nWantedBy=timers.target\n" in timer


# -- shells: sh/dash/bash/csh/tcsh syntax ----------------------------------------------------------

@pytest.mark.parametrize(("kind", "shells"), [
    ("wrapper", ("sh", "dash", "bash")),
    ("shell", ("sh", "dash", "bash")),
    ("shell-helper", ("sh", "dash", "bash")),
    ("nhc", ("bash",)),
    ("csh", ("csh", "tcsh")),
])
def test_shell_syntax(kind: str, shells: tuple[str, ...], tmp_path: Path) -> None:
    script = tmp_path / "script"
    script.write_text(one(kind).content)
    for shell in shells:
        result = subprocess.run([need(shell), "-n", str(script)], capture_output=True, text=True, check=False)
        assert result.returncode == 0, (shell, result.stderr)
    broken = tmp_path / "broken"
    broken.write_text(one(kind).content + 'echo "unterminated\n')
    assert any(subprocess.run([need(s), "-n", str(broken)], capture_output=True, check=False).returncode
               for s in shells), "the syntax check cannot fail"


def csh_path(tmp_path: Path, shell: str, group: str, path: str, times: int = 1) -> str:
    snippet = tmp_path / "perfgroup.csh"
    snippet.write_text(one("csh", group=group).content)
    script = f"source {snippet}\n" * times + 'echo "$PATH"\n'
    result = subprocess.run([need(shell), "-f", "-c", script.replace("\n", "; ")], capture_output=True, text=True,
                            env={"PATH": path, "HOME": str(tmp_path)}, check=False)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


@pytest.mark.parametrize("shell", ["csh", "tcsh"])
def test_csh_snippet_prepends_only_for_members_and_only_once(shell: str, tmp_path: Path) -> None:
    own_group = subprocess.run(["id", "-gn"], capture_output=True, text=True, check=True).stdout.strip()
    directory = str(CONTEXT["dest_dir"])
    assert csh_path(tmp_path, shell, own_group, "/usr/bin:/bin") == f"{directory}:/usr/bin:/bin"
    assert csh_path(tmp_path, shell, own_group, "/usr/bin:/bin", times=2) == f"{directory}:/usr/bin:/bin"
    assert csh_path(tmp_path, shell, "nosuchgroup_pg", "/usr/bin:/bin") == "/usr/bin:/bin"


# -- apt and dnf hooks ------------------------------------------------------------------------------

def hook_runs(command: str) -> int:
    return subprocess.run(["sh", "-c", command], capture_output=True, check=False).returncode


def test_apt_hook_parses_and_never_fails_the_apt_run(tmp_path: Path) -> None:
    log = tmp_path / "calls"
    command = stub(tmp_path, "perfgroup-node", f'echo "$*" >> {log}\nexit "$(cat {tmp_path}/code)"\n')
    conf = tmp_path / "80perfgroup"
    conf.write_text(one("apt", node_command=command).content)
    result = subprocess.run([need("apt-config"), "-c", str(conf), "dump", "DPkg::Post-Invoke"], capture_output=True,
                            text=True, check=True)
    # apt-config also shows this machine's own hooks: keep ours.
    values = [v for v in re.findall(r'^DPkg::Post-Invoke:: "(.*)";$', result.stdout, re.M) if command in v]
    assert len(values) == 1, result.stdout
    hook = values[0].replace('\\"', '"')
    for code in (0, 1, 2, 3):
        (tmp_path / "code").write_text(str(code))
        assert hook_runs(hook) == 0
    assert log.read_text().splitlines() == [f"heal --group {GROUP} --if-source-changed"] * 4
    os.unlink(command)  # perfgroup removed, hook left behind: still harmless
    assert hook_runs(hook) == 0


def test_dnf4_action_lines(tmp_path: Path) -> None:
    log = tmp_path / "calls"
    command = stub(tmp_path, "perfgroup-node", f'echo "$*" >> {log}\nexit 1\n')
    lines = [line for line in one("dnf", node_command=command).content.splitlines()
             if line.strip() and not line.startswith("#")]
    keys = []
    for line in lines:  # exactly as dnf-plugins-core's post-transaction-actions.py parses them
        key, state, shell = line.split(":", 2)
        assert state == "in" and "$" not in shell
        keys.append(key)
        assert hook_runs(shell) == 0
    assert keys == ["perf", "linux-perf*", "linux-tools-*", "/usr/bin/perf"]
    assert log.read_text().splitlines() == [f"heal --group {GROUP} --if-source-changed"] * 4


def dnf5_argv(command: str) -> list[str]:
    """libdnf5 actions: arguments split on unescaped spaces, then unescaped."""
    argv, current, escaped = [], "", False
    specials = {"a": "\a", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t", "v": "\v"}
    for char in command:
        if escaped:
            current += specials.get(char, char)
            escaped = False
        elif char == "\\":
            escaped = True
        elif char == " ":
            if current:
                argv.append(current)
            current = ""
        else:
            current += char
    return [*argv, current] if current else argv


def test_dnf5_action_lines(tmp_path: Path) -> None:
    log = tmp_path / "calls"
    command = stub(tmp_path, "perfgroup-node", f'echo "$*" >> {log}\necho tmp.bogus=1\nexit 1\n')
    rendered = one("dnf", node_command=command)
    dnf5 = artifacts.render(ctx(node_command=command), {"dnf"})[1]
    assert dnf5.path.endswith(".actions") and rendered.path.endswith(".action")
    lines = [line for line in dnf5.content.splitlines() if line.strip() and not line.startswith("#")]
    filters = []
    for line in lines:
        callback, package_filter, direction, options, cmd = line.split(":", 4)
        assert (callback, direction, options) == ("post_transaction", "in", "")
        filters.append(package_filter)
        argv = dnf5_argv(cmd)
        assert argv[:2] == ["/bin/sh", "-c"] and len(argv) == 3
        result = subprocess.run(argv, capture_output=True, text=True, check=False)
        assert result.returncode == 0 and result.stdout == ""  # stdout is the plugin's protocol
    assert filters == ["perf", "linux-perf*", "linux-tools-*", "/usr/bin/perf"]
    assert log.read_text().splitlines() == [f"heal --group {GROUP} --if-source-changed"] * 4


# -- NHC --------------------------------------------------------------------------------------------

NAGIOS_LINE = {
    0: "PERFGROUP OK - 20 checks ok | 'critical'=0;;;0 'warning'=0;;;0 'ok'=20;;;0",
    1: "PERFGROUP WARNING - sysctl.missing: no drop-in | 'critical'=0;;;0 'warning'=1;;;0 'ok'=19;;;0",
    2: "PERFGROUP CRITICAL - copy.world_access: others can run it | 'critical'=1;;;0 'warning'=0;;;0 'ok'=19;;;0",
    3: "PERFGROUP UNKNOWN - state.unusable: garbage | 'critical'=0;;;0 'warning'=0;;;0 'ok'=0;;;0",
}


def run_nhc_check(tmp_path: Path, code: int | None, args: str = "") -> tuple[int, list[str]]:
    """Source the rendered check in bash with NHC's `die` stubbed, as nhc does, and call it."""
    node_command = tmp_path / "perfgroup-node"
    if code is not None:
        stub(tmp_path, "perfgroup-node",
             f'echo "$*" > {tmp_path}/args\nprintf "%s\\n" "{NAGIOS_LINE[code]}" "LONG line"\nexit {code}\n')
    elif node_command.exists():
        node_command.unlink()
    script = tmp_path / "perfgroup.nhc"
    script.write_text(one("nhc", node_command=str(node_command)).content)
    driver = f'die() {{ echo "DIE $1 $2"; }}\nsource {script}\ncheck_perfgroup {args}\necho "RET $?"\n'
    result = subprocess.run([need("bash"), "-c", driver], capture_output=True, text=True, check=False)
    return result.returncode, result.stdout.splitlines()


@pytest.mark.parametrize(("code", "args", "dies"), [
    (0, "", False), (1, "", False), (2, "", True), (3, "", False),
    (0, "-w", False), (1, "-w", True), (2, "-w", True),
    (3, "-u", True), (1, "-u", False), (2, "-w -u", True),
])
def test_nhc_check_dies_on_critical_and_optionally_warning(tmp_path: Path, code: int, args: str, dies: bool) -> None:
    rc, out = run_nhc_check(tmp_path, code, args)
    assert rc == 0
    if dies:
        reason = NAGIOS_LINE[code].split(" | ")[0]
        assert out == [f"DIE 1 check_perfgroup:  group {GROUP}: {reason}", "RET 1"]
    else:
        assert out == ["RET 0"]
    assert (tmp_path / "args").read_text().split() == ["audit", "--group", GROUP, "--format", "nagios"]


def test_nhc_check_takes_another_group_and_fails_when_the_command_is_missing(tmp_path: Path) -> None:
    run_nhc_check(tmp_path, 0, "other_grp")
    assert (tmp_path / "args").read_text().split()[:3] == ["audit", "--group", "other_grp"]
    _, out = run_nhc_check(tmp_path, None)
    assert out[-1] == "RET 1" and out[0].startswith("DIE 1 check_perfgroup:  ") and "missing" in out[0]
    _, out = run_nhc_check(tmp_path, 0, "-x")
    assert out == ["DIE 1 check_perfgroup:  Invalid option:  -x", "RET 1"]


def test_nhc_conf_line() -> None:
    lines = [line for line in one("nhc-conf").content.splitlines() if not line.startswith("#")]
    assert lines == [f"* || check_perfgroup {GROUP}"]


# -- environment modules ------------------------------------------------------------------------------

LUA_HARNESS = r"""
local member, lmod85, mode_name, file = arg[1] == "1", arg[2] == "1", arg[3], arg[4]
local out = {}
function mode() return mode_name end
if lmod85 then function userInGroups(g) out[#out + 1] = "asked:" .. g; return member end
else function userInGroup(g) out[#out + 1] = "asked:" .. g; return member end end
function LmodError(...) io.write("ERROR:" .. table.concat({...})) os.exit(3) end
function prepend_path(var, value) out[#out + 1] = var .. "=" .. value end
function help(text) out[#out + 1] = "help" end
function whatis(text) out[#out + 1] = "whatis" end
dofile(file)
io.write(table.concat(out, " "))
"""


def test_lua_modulefile_compiles_and_refuses_non_members(tmp_path: Path) -> None:
    luac = next((shutil.which(t) for t in ("luac5.4", "luac5.3", "luac5.1", "luac") if shutil.which(t)), None)
    lua = next((shutil.which(t) for t in ("lua5.4", "lua5.3", "lua5.1", "lua") if shutil.which(t)), None)
    if luac is None or lua is None:
        pytest.skip("no Lua installed (apt-get install lua5.4)")
    modulefile = tmp_path / "privileged.lua"
    modulefile.write_text(one("lmod").content)
    assert subprocess.run([luac, "-p", str(modulefile)], capture_output=True, check=False).returncode == 0
    (tmp_path / "broken.lua").write_text(one("lmod").content.replace("end\n", "", 1))
    assert subprocess.run([luac, "-p", str(tmp_path / "broken.lua")], capture_output=True, check=False).returncode
    harness = tmp_path / "harness.lua"
    harness.write_text(LUA_HARNESS)
    path = f"PATH={CONTEXT['dest_dir']}"
    for member, lmod85, mode, code, expected in [
        ("1", "1", "load", 0, f"help whatis whatis whatis asked:{GROUP} {path}"),
        ("1", "0", "load", 0, f"help whatis whatis whatis asked:{GROUP} {path}"),
        ("0", "1", "unload", 0, f"help whatis whatis whatis {path}"),  # unloading never refuses
        ("0", "1", "spider", 0, f"help whatis whatis whatis {path}"),
    ]:
        result = subprocess.run([lua, str(harness), member, lmod85, mode, str(modulefile)], capture_output=True,
                                text=True, check=False)
        assert (result.returncode, result.stdout) == (code, expected), result.stderr
    refused = subprocess.run([lua, str(harness), "0", "1", "load", str(modulefile)], capture_output=True, text=True,
                             check=False)
    assert refused.returncode == 3
    assert refused.stdout.startswith(f"ERROR:perf/privileged is only for members of the group {GROUP}.")


def test_tcl_modulefile_is_complete_tcl(tmp_path: Path) -> None:
    tclsh = need("tclsh")
    for name, text, complete in [("ok", one("tcl-module").content, "1"),
                                 ("broken", one("tcl-module").content.replace("}\n", "", 1), "0")]:
        path = tmp_path / name
        path.write_text(text)
        check = f"set f [open {{{path}}}]; puts [info complete [read $f]]"
        result = subprocess.run([tclsh], input=check, capture_output=True, text=True, check=False)
        assert result.stdout.strip() == complete, (name, result.stderr)
    assert one("tcl-module").content.startswith("#%Module1.0\n")


def modulecmd(tmp_path: Path, group: str) -> subprocess.CompletedProcess[str]:
    tool = need("modulecmd")
    directory = tmp_path / "modules" / "perf"
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "privileged").write_text(one("tcl-module", group=group).content)
    env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path), "MODULEPATH": str(tmp_path / "modules")}
    return subprocess.run([tool, "sh", "load", "perf/privileged"], capture_output=True, text=True, env=env,
                          check=False)


def test_tcl_modulefile_loads_for_members_and_refuses_others(tmp_path: Path) -> None:
    own_group = subprocess.run(["id", "-gn"], capture_output=True, text=True, check=True).stdout.strip()
    loaded = modulecmd(tmp_path, own_group)
    assert str(CONTEXT["dest_dir"]) in loaded.stdout and "PATH" in loaded.stdout, loaded.stderr
    refused = modulecmd(tmp_path, "nosuchgroup_pg")
    assert "only for members of the group nosuchgroup_pg" in refused.stderr
    assert str(CONTEXT["dest_dir"]) not in refused.stdout


# -- the perf wrapper, for real, in a throwaway node -------------------------------------------------

MEMBER, OUTSIDER, GRP = "pgmember", "pgoutsider", "pgperf"
DEST_DIR = f"/usr/local/libexec/perfgroup/{GRP}"


def wrapper_node(make_node: Callable[..., Node], stock: str = "/usr/bin/perf") -> Node:
    node = make_node()
    wrapper = one("wrapper", group=GRP, dest=f"{DEST_DIR}/perf", dest_dir=DEST_DIR, stock_perf=stock).content
    node.ok(f"groupadd {GRP} && useradd -m {MEMBER} && useradd -m {OUTSIDER} && gpasswd -a {MEMBER} {GRP} >/dev/null"
            f" && mkdir -p {DEST_DIR} && printf '#!/bin/sh\\necho PRIVILEGED \"$@\"\\n' > {DEST_DIR}/perf"
            f" && chown root:{GRP} {DEST_DIR}/perf && chmod 0750 {DEST_DIR}/perf")
    node.run(["sh", "-c", "cat > /usr/local/bin/perf && chmod 0755 /usr/local/bin/perf"], input=wrapper)
    mode = os.stat(node.path("/usr/local/bin/perf")).st_mode
    assert stat.S_IMODE(mode) == 0o755
    return node


@pytest.mark.integration
def test_wrapper_gives_members_the_privileged_perf_in_every_shell(make_node: Callable[..., Node]) -> None:
    node = wrapper_node(make_node)
    stock = node.run(["/usr/bin/perf", "--version"]).stdout
    assert stock.startswith("perf version")
    cases = [
        ("setpriv login-like", node.run(["perf", "--version"], user=MEMBER), "PRIVILEGED --version"),
        ("non-login sh -c", node.run(["sh", "-c", "perf --version"], user=MEMBER), "PRIVILEGED --version"),
        ("su member -c", node.run(["su", MEMBER, "-c", "perf --version"]), "PRIVILEGED --version"),
        ("non-member", node.run(["perf", "--version"], user=OUTSIDER), stock.strip()),
        ("su non-member -c", node.run(["su", OUTSIDER, "-c", "perf --version"]), stock.strip()),
        # A member whose process does not hold the group yet (no new login, no newgrp).
        ("member without the group", node.run(["setpriv", f"--reuid={MEMBER}", f"--regid={MEMBER}",
                                               "--clear-groups", "--", "/bin/sh", "-c", "perf --version"]),
         stock.strip()),
    ]
    for name, result, expected in cases:
        assert (result.returncode, result.stdout.strip()) == (0, expected), (name, result.stderr)
        # Non-members hear first, in one line, why they get the stock perf; members hear nothing.
        told = [line for line in result.stderr.splitlines() if f"members of group {GRP}" in line]
        assert len(told) == (0 if expected.startswith("PRIVILEGED") else 1), (name, result.stderr)
    # The outsider really is locked out of the copy (the wrapper adds no privilege).
    direct = node.run([f"{DEST_DIR}/perf"], user=OUTSIDER)
    assert direct.returncode != 0 and "ermission denied" in direct.stderr


@pytest.mark.integration
def test_wrapper_refuses_to_exec_itself(make_node: Callable[..., Node]) -> None:
    node = wrapper_node(make_node, stock="/usr/bin/perf")
    node.ok("rm /usr/bin/perf && ln -s /usr/local/bin/perf /usr/bin/perf")  # stock perf now IS the wrapper
    result = node.run(["perf", "--version"], user=OUTSIDER, timeout=20)
    assert result.returncode == 127
    assert "is this wrapper" in result.stderr
    assert node.run(["perf", "--version"], user=MEMBER).stdout.strip() == "PRIVILEGED --version"
