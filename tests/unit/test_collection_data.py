"""The collection's plain-data contracts: one version, docs that match the code, result selection
from recorded callback output, the deploy table."""

from __future__ import annotations

import ast
import json
from pathlib import Path
from typing import Any

import pytest
import tomllib
import yaml

from perfgroup import ansible_run, collection, release
from perfgroup.commands.deploy import diff_lines, table_lines, table_rows
from perfgroup.engine import VERSION

REPO = Path(__file__).resolve().parents[2]
DATA = Path(__file__).parent / "data"
ROLE = REPO / "roles" / "perf_users"


def load(name: str) -> dict[str, Any]:
    return dict(json.loads((DATA / name).read_text()))


def test_one_version_everywhere() -> None:
    galaxy = yaml.safe_load((REPO / "galaxy.yml").read_text())
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    assert galaxy["version"] == VERSION == collection.galaxy_version()
    assert pyproject["tool"]["setuptools"]["dynamic"]["version"] == {"attr": "perfgroup.engine.VERSION"}
    assert (galaxy["namespace"], galaxy["name"]) == (collection.NAMESPACE, collection.NAME)


def test_the_package_links_to_the_collections_files_not_copies() -> None:
    """The collection holds real files (a tarball must not carry links); the package links to them."""
    for package_path, collection_path in (("perfgroup/engine", "plugins/module_utils/perfgroup_engine"),
                                          ("perfgroup/artifacts.py", "plugins/plugin_utils/artifacts.py")):
        link, real = REPO / package_path, REPO / collection_path
        assert link.is_symlink() and link.resolve() == real.resolve(), package_path
        assert not real.is_symlink(), collection_path


def module_parts(name: str) -> tuple[dict[str, Any], dict[str, Any], list[Any], dict[str, Any]]:
    """DOCUMENTATION, RETURN and EXAMPLES parsed, and the argument spec the module really uses."""
    tree = ast.parse((REPO / "plugins" / "modules" / f"{name}.py").read_text())
    strings: dict[str, Any] = {}
    spec: dict[str, Any] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign | ast.AnnAssign):
            target = node.targets[0] if isinstance(node, ast.Assign) else node.target
            if isinstance(target, ast.Name) and node.value is not None and target.id in (
                    "DOCUMENTATION", "RETURN", "EXAMPLES"):
                strings[target.id] = ast.literal_eval(node.value)
    # The modules build their argument spec from the engine's options table (perfgroup.engine.options).
    from perfgroup.ansible_spec import MODULES
    from perfgroup.engine import options

    entry_point = next(entry for entry, module in MODULES.items() if module == name)
    spec = options.argument_spec(entry_point)
    return (yaml.safe_load(strings["DOCUMENTATION"]), yaml.safe_load(strings["RETURN"]),
            yaml.safe_load(strings["EXAMPLES"]), spec)


@pytest.mark.parametrize("name", ["perf_users", "perf_users_audit"])
def test_module_docs_match_the_argument_spec(name: str) -> None:
    doc, returned, examples, spec = module_parts(name)
    assert doc["module"] == name
    assert set(doc["options"]) == set(spec)
    for option, rules in spec.items():
        documented = doc["options"][option]
        assert documented["type"] == rules["type"], option
        assert documented.get("default") == rules.get("default"), option
        assert documented.get("elements") == rules.get("elements"), option
    assert "perfgroup_result_kind" in returned
    assert all(f"perfgroup.hpc.{name}" in task for task in examples)


def test_role_readme_documents_every_variable_of_every_entry_point() -> None:
    specs = yaml.safe_load((ROLE / "meta" / "argument_specs.yml").read_text())["argument_specs"]
    defaults = yaml.safe_load((ROLE / "defaults" / "main.yml").read_text())
    readme = (ROLE / "README.md").read_text()
    assert set(specs) == {"main", "audit", "prometheus_rules"}
    documented = set().union(*(spec["options"] for spec in specs.values()))
    assert documented == set(defaults)
    for variable in documented:
        row = next(line for line in readme.splitlines() if line.startswith(f"| `{variable}` |"))
        default = defaults[variable]
        shown = "null" if default is None else json.dumps(default) if not isinstance(default, bool) else str(default).lower()
        assert f"`{shown.strip(chr(34)) if isinstance(default, str) and default else shown}`" in row, row
        for spec in specs.values():
            if variable in spec["options"]:
                assert spec["options"][variable].get("default") == default, variable


HOST_RESULTS = [
    # fixture, kind, host -> (changed, failed, first words of msg)
    ("deploy_first.json", "converge", {"std": (True, None, ""), "nosuid": (False, True, "--dest")}),
    ("deploy_check_drift.json", "converge", {"std": (True, None, ""), "nosuid": (False, True, "--dest")}),
    ("audit_with_unreachable.json", "audit", {"std": (False, None, ""), "nosuid": (False, None, ""),
                                             "dead": (False, True, "Task failed")}),
    # the post-change handler's audit, and the refused host's failure
    ("deploy_first.json", "audit", {"std": (False, None, ""), "nosuid": (False, True, "--dest")}),
]


@pytest.mark.parametrize(("fixture", "kind", "expected"), HOST_RESULTS)
def test_host_results_select_by_result_kind(fixture: str, kind: str, expected: dict[str, Any]) -> None:
    results = ansible_run.host_results(load(fixture), kind)
    got = {host: (data.get("changed"), data.get("failed"), str(data.get("msg", ""))[:len(expected[host][2])])
           for host, data in results.items()}
    assert got == expected


def test_host_results_ignore_task_names() -> None:
    report = load("deploy_first.json")
    for play in report["plays"]:
        for task in play["tasks"]:
            task["task"]["name"] = "renamed by someone"
    assert ansible_run.host_results(report, "converge")["std"]["caps"] == ["cap_perfmon"]


TABLES = [
    ("deploy_first.json", False, [
        "nosuid               no                                                    NO        --dest /usr/local/libexec/perfgroup/perf_users/perf is on a nosuid mount",
        "std                  yes          cap_perfmon                              yes       ",
    ]),
    ("deploy_check_drift.json", True, [
        "nosuid               no                                                    -         --dest /usr/local/libexec/perfgroup/perf_users/perf is on a nosuid mount",
        "std                  would change cap_perfmon                              -         ",
    ]),
    # Issue 9: the change was applied, then the record write failed: failed AND changed, step named.
    ("deploy_failed_record.json", False, [
        "nosuid               no                                                    NO        --dest ",
        "std                  yes          cap_perfmon,cap_syslog                   NO        could not converge at step "
        "write_state: cannot write in /var/lib/perfgroup: Read-only file system (applied before it: set ",
    ]),
]


@pytest.mark.parametrize(("fixture", "check", "lines"), TABLES)
def test_deploy_table(fixture: str, check: bool, lines: list[str]) -> None:
    rows = table_rows(ansible_run.host_results(load(fixture), "converge"), check)
    rendered = table_lines(rows, check)
    assert rendered[0].split() == ["host", "changed", "caps", "verified", "error"]
    assert [line[:len(want)] for line, want in zip(rendered[1:], lines, strict=True)] == lines


def test_deploy_diff_is_each_hosts_unified_diff() -> None:
    """`perfgroup deploy --diff`: the module's diff entries (recorded --check --diff run), as text."""
    lines = diff_lines(ansible_run.host_results(load("deploy_check_drift.json"), "converge"))
    header = "/usr/local/libexec/perfgroup/perf_users/perf (fix_copy)"
    assert lines == [f"--- std: {header}", f"+++ std: {header}", "@@ -1 +1 @@", "-mode 0751",
                     "+root:perf_users 0750 cap_perfmon=ep"]
    hostile = {"n1": {"diff": [{"before_header": "f", "after_header": "f", "before": "", "after": "x\x1b[2J\n"}, "junk"]}}
    assert diff_lines(hostile)[-1] == "+x\\x1b[2J"


def test_one_release_version_and_no_placeholder_metadata() -> None:
    """Issue 22 item 8: the release's checks pass on the committed tree (perfgroup.release)."""
    assert release.placeholders(REPO) == [] and release.check(REPO) == VERSION


def test_a_release_is_built_only_from_tracked_files(tmp_path: Path) -> None:
    (tmp_path / "galaxy.yml").write_text("version: 0.1.0\n")
    with pytest.raises(release.RefusedError, match="not a git checkout"):
        release.tracked_copy(tmp_path, tmp_path / "copy")
    with pytest.raises(release.RefusedError, match=r"galaxy\.yml is not a directory"):
        release.build(tmp_path / "galaxy.yml", root=tmp_path)


def test_deploy_table_escapes_what_the_nodes_sent() -> None:
    results = {"n\x1b[2J1": {"failed": True, "msg": "unknown user \x1b[31mroot\rbob", "caps": ["cap_perf\x07"]}}
    rendered = "\n".join(table_lines(table_rows(results, False), False))
    assert "\x1b" not in rendered and "\r" not in rendered and "\x07" not in rendered
    assert "n\\x1b[2J1" in rendered and "unknown user \\x1b[31mroot\\rbob" in rendered


@pytest.mark.parametrize(("hosts", "limit", "message"), [
    ("perf_nodes", None, "no host of inv.ini matches 'perf_nodes': FIX"),
    ("perf_nodes", "node1", "no host of inv.ini matches 'perf_nodes' with --limit 'node1': FIX"),
])
def test_no_match_message_is_one_line(hosts: str, limit: str | None, message: str) -> None:
    assert ansible_run.no_match_message(hosts, limit, "inv.ini", "FIX") == message


@pytest.mark.parametrize(("version", "wants"), [
    ((3, 9, 18), "install perfgroup under a newer Python, e.g. python3.11 -m venv /opt/perfgroup && "
                 "/opt/perfgroup/bin/pip install /src/perfgroup && ln -sf"),
    ((3, 10, 13), "run /ctl/python -m pip install 'ansible-core>=2.16' "),
    ((3, 13, 0), "run /ctl/python -m pip install 'ansible-core>=2.16' "),
])
def test_install_hint_names_a_command_that_works_on_this_python(version: tuple[int, ...], wants: str) -> None:
    """Issue 13: no ansible-core>=2.16 exists for Python 3.9, so pip install on it cannot be the hint."""
    hint = ansible_run.install_hint(version, "/ctl/python", "/src/perfgroup")
    assert wants in hint and "\n" not in hint
    assert ("-m pip install 'ansible-core" in hint) == (version >= (3, 10))




@pytest.mark.parametrize("path", sorted((REPO / "plugins").glob("modules/*.py")), ids=lambda p: p.name)
def test_modules_parse_as_python_3_8(path: Path) -> None:
    """They run on nodes: no syntax newer than the oldest node Python."""
    ast.parse(path.read_text(), str(path), feature_version=(3, 8))
