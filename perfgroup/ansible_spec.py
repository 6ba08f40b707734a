"""The Ansible files that describe perfgroup's options, generated from the engine's one table.

`python -m perfgroup.ansible_spec --write` rewrites them; `--check` (and a unit test) fails when
one drifted. Generated: the role's defaults/main.yml and meta/argument_specs.yml, the module call
in tasks/main.yml, and the `options:` block of each module's DOCUMENTATION.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from .engine import options

REPO = Path(__file__).resolve().parent.parent
ROLE = REPO / "roles" / "perf_users"
MODULES = {"main": "perf_users", "audit": "perf_users_audit"}
MODULE_DIRS = (REPO / "plugins" / "modules", ROLE / "library")
BEGIN, END = "# BEGIN generated options", "# END generated options"
DESCRIPTIONS = {
    "main": ("Privileged perf users group on every node",
             "Runs the perfgroup engine on each node in one module call, then verifies with a real perf run."),
    "audit": ("Read-only perfgroup audit of every node",
              "Returns the node's findings as the fact perf_users_audit; changes nothing."),
    "prometheus_rules": ("perfgroup's Prometheus rules on a Prometheus host",
                         "Installs monitoring/prometheus/perfgroup-rules.yml into perf_users_prometheus_rules_dir."),
}


def scalar(value: Any) -> str:
    """A YAML scalar (JSON is valid YAML, and quoting every string keeps it unambiguous)."""
    if value is None:
        return "null"
    return json.dumps(value)


def _wrapped(text: str, indent: str) -> list[str]:
    import textwrap

    return [indent + line for line in textwrap.wrap(text, 100)]


def _option_lines(option: options.Option, indent: str, name: str) -> list[str]:
    lines = [f"{indent}{name}:", f"{indent}  description: >-", *_wrapped(option.help, indent + "    "),
             f"{indent}  type: {option.kind}"]
    if option.kind == "list":
        lines.append(f"{indent}  elements: str")
    if option.ansible_default is not None:
        lines.append(f"{indent}  default: {scalar(option.ansible_default)}")
    if option.choices:
        lines.append(f"{indent}  choices: {scalar(list(option.choices))}")
    return lines


def defaults_yml() -> str:
    lines = ["---", "# Generated from perfgroup/engine/options.py by `python -m perfgroup.ansible_spec --write`."]
    for option in options.OPTIONS:
        if option.entry_points:
            lines += [*_wrapped(option.help, "# "), f"{option.role_var}: {scalar(option.ansible_default)}"]
    return "\n".join(lines) + "\n"


def argument_specs_yml() -> str:
    lines = ["---", "# Generated from perfgroup/engine/options.py by `python -m perfgroup.ansible_spec --write`.",
             "argument_specs:"]
    for entry_point, (short, long) in DESCRIPTIONS.items():
        lines += [f"  {entry_point}:", f"    short_description: {scalar(short)}", "    description:",
                  f"      - {scalar(long)}", "    options:"]
        for option in options.for_entry_point(entry_point):
            lines += _option_lines(option, "      ", option.role_var)
    return "\n".join(lines) + "\n"


def documentation_options(entry_point: str) -> str:
    lines = [BEGIN, "options:"]
    for option in options.for_module(entry_point):
        lines += _option_lines(option, "  ", option.name)
    for option in options.INTERNAL.get(entry_point, ()):
        lines += _option_lines(option, "  ", option.name)
        if option.kind == "list":
            lines[-1] = lines[-1].replace("elements: str", "elements: dict")
    return "\n".join([*lines, END])


def _module_value(option: options.Option) -> str:
    """A role variable as the module gets it: unset (null, '') means the module's default. Not
    `default(omit, true)` for a number: 0 is falsy to it, and --job-paranoid 0 a value."""
    if option.ansible_default not in (None, ""):
        return option.role_var
    if option.kind == "int":
        return f"omit if {option.role_var} in [none, ''] else {option.role_var}"
    return f"{option.role_var} | default(omit, true)"


def module_call(entry_point: str) -> str:
    """The role's call of a module: every option passed from its role variable."""
    lines = [f"    {BEGIN}"]
    for option in options.for_module(entry_point):
        value = _module_value(option)
        lines.append(f'    {option.name}: "{{{{ {value} }}}}"')
    return "\n".join([*lines, f"    {END}"])


def readme_table() -> str:
    """The role README's variable table (in HTML comments, so Markdown shows only the table)."""
    lines = [f"<!-- {BEGIN} -->", "| variable | default | entry points | description |", "|---|---|---|---|"]
    for option in options.OPTIONS:
        if option.entry_points:
            value = option.ansible_default
            default = value if isinstance(value, str) and value else scalar(value)
            lines.append(f"| `{option.role_var}` | `{default}` | {', '.join(option.entry_points)} | {option.help} |")
    return "\n".join([*lines, f"<!-- {END} -->"])


def _replace_block(text: str, block: str, indent: str = "") -> str:
    start = text.index(indent + BEGIN)
    end = text.index(END, start) + len(END)
    return text[:start] + block + text[end:]


def _replace_html_block(text: str, block: str) -> str:
    start = text.index(f"<!-- {BEGIN} -->")
    end = text.index(f"{END} -->", start) + len(END) + 4
    return text[:start] + block + text[end:]


def module_path(name: str) -> Path:
    for directory in MODULE_DIRS:
        if (directory / f"{name}.py").exists():
            return directory / f"{name}.py"
    raise FileNotFoundError(f"module {name} not found in {', '.join(map(str, MODULE_DIRS))}")


def expected() -> dict[Path, str]:
    """Every generated file with the content it must have."""
    files = {ROLE / "defaults" / "main.yml": defaults_yml(), ROLE / "meta" / "argument_specs.yml": argument_specs_yml()}
    readme = ROLE / "README.md"
    files[readme] = _replace_html_block(readme.read_text(), readme_table())
    for entry_point, name in MODULES.items():
        path = module_path(name)
        files[path] = _replace_block(path.read_text(), documentation_options(entry_point))
        tasks = ROLE / "tasks" / f"{entry_point}.yml"
        files[tasks] = _replace_block(tasks.read_text(), module_call(entry_point), indent="    ")
    return files


def drifted() -> list[Path]:
    return [path for path, text in expected().items() if not path.exists() or path.read_text() != text]


def main(argv: list[str]) -> int:
    if argv[1:] == ["--write"]:
        for path, text in expected().items():
            path.write_text(text)
        return 0
    stale = drifted()
    for path in stale:
        print(f"{path.relative_to(REPO)} differs from perfgroup/engine/options.py: "
              "run python -m perfgroup.ansible_spec --write", file=sys.stderr)
    return 1 if stale else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
