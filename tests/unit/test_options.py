"""One definition per option: the click options, the Ansible module specs and the role's files
are all built from perfgroup/engine/options.py and checked here."""

from __future__ import annotations

import ast
from pathlib import Path

import click
import pytest
import yaml

from perfgroup import ansible_spec
from perfgroup.cli import main
from perfgroup.engine import options
from perfgroup.engine.validate import desired_from_input

REPO = Path(__file__).resolve().parents[2]


def test_generated_ansible_files_match_the_table() -> None:
    assert ansible_spec.drifted() == [], "run: python -m perfgroup.ansible_spec --write"


@pytest.mark.parametrize("command", ["setup", "audit", "verify", "remove"])
def test_every_cli_option_comes_from_the_table(command: str) -> None:
    cmd = main.get_command(click.Context(main), command)
    assert cmd is not None
    params = {p.name for p in cmd.params if isinstance(p, click.Option)}
    assert {o.name for o in options.for_command(command)} <= params


def test_desired_from_input_takes_every_desired_option_and_nothing_else() -> None:
    """desired_from_input is built from the table: each desired row is a keyword, defaults are
    the table's, and anything else is a programming error, not a silently ignored input."""
    desired = desired_from_input(group="g")
    for option in options.OPTIONS:
        if option.desired and option.name in type(desired)._fields:
            assert getattr(desired, option.name) == (tuple(option.default) if option.kind == "list" else option.default) \
                or option.name in ("dest", "group"), option.name
    assert {o.name for o in options.OPTIONS if o.desired} == {o.name for o in options.for_command("setup") if o.desired}
    with pytest.raises(TypeError):
        desired_from_input(group="g", verify=False)


def test_heal_asks_for_what_the_record_remembers_with_the_same_checks() -> None:
    """heal's Desired is desired_from_input over options.from_record: --no-tracefs, a kept
    paranoid and an explicit --caps survive a heal; a record asking what setup refuses is refused."""
    from factsdata import state

    from perfgroup.engine.errors import RefusedError

    record = state()._replace(tracefs_kept=True, keep_paranoid=True, caps_override=True,
                              caps=("cap_perfmon", "cap_syslog"))
    desired = desired_from_input(**options.from_record(record))
    assert (desired.tracefs, desired.keep_paranoid, desired.caps_override) == (
        False, True, frozenset({"cap_perfmon", "cap_syslog"}))
    forged = record._replace(caps=("cap_perfmon", "cap_sys_admin"), root_equivalent_caps=())
    with pytest.raises(RefusedError):
        desired_from_input(**options.from_record(forged))


def test_the_role_can_do_everything_setup_can() -> None:
    setup = {o.name for o in options.for_command("setup") if not o.not_in_role}
    role = {o.name for o in options.for_entry_point("main")}
    assert setup <= role
    assert not any(o.not_in_role for o in options.for_entry_point("main"))


def test_role_only_variables_reach_no_module() -> None:
    """perf_users_prometheus_rules_dir is the role's own (a copy on a Prometheus host): no module
    takes it, every entry point without a module has a task file, and that file reads it."""
    role_only = [o for o in options.OPTIONS if o.role_only]
    assert [o.role_var for o in role_only] == ["perf_users_prometheus_rules_dir"]
    for option in role_only:
        for entry_point in option.entry_points:
            assert entry_point not in ansible_spec.MODULES
            assert option.role_var in (REPO / "roles/perf_users/tasks" / f"{entry_point}.yml").read_text()
        for entry_point in ansible_spec.MODULES:
            assert option.name not in options.argument_spec(entry_point)


def _module_documentation(name: str) -> dict[str, object]:
    path = ansible_spec.module_path(name)
    tree = ast.parse(path.read_text())
    for node in tree.body:
        if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", "") == "DOCUMENTATION":
            return dict(yaml.safe_load(ast.literal_eval(node.value)))
    raise AssertionError(f"{path} has no DOCUMENTATION")


@pytest.mark.parametrize(("entry_point", "module"), list(ansible_spec.MODULES.items()))
def test_module_documentation_agrees_with_argument_spec(entry_point: str, module: str) -> None:
    documented = _module_documentation(module)["options"]
    spec = options.argument_spec(entry_point)
    assert isinstance(documented, dict) and set(documented) == set(spec)
    for name, entry in spec.items():
        assert documented[name]["type"] == entry["type"]
        assert documented[name].get("default") == entry.get("default")


def test_role_defaults_and_argument_specs_agree() -> None:
    defaults = yaml.safe_load((REPO / "roles/perf_users/defaults/main.yml").read_text())
    specs = yaml.safe_load((REPO / "roles/perf_users/meta/argument_specs.yml").read_text())["argument_specs"]
    for entry_point in ansible_spec.DESCRIPTIONS:
        documented = specs[entry_point]["options"]
        assert set(documented) == {o.role_var for o in options.for_entry_point(entry_point)}
        for var, entry in documented.items():
            assert defaults[var] == entry.get("default")


@pytest.mark.parametrize(("params", "expected"), [
    ({"group": "g", "dest": "", "members": None, "caps": "auto"}, {"group": "g", "dest": None, "members": (), "caps": "auto"}),
    ({"group": "g", "members": ["a", "b"], "gid": 5}, {"members": ("a", "b"), "gid": 5}),
])
def test_module_params_become_desired_keywords(params: dict[str, object], expected: dict[str, object]) -> None:
    kwargs = options.desired_kwargs(params, "main")
    assert "verify" not in kwargs
    for key, value in expected.items():
        assert kwargs[key] == value
    desired_from_input(**kwargs)
