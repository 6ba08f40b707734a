"""Node-side artifacts (systemd units, package-manager hooks, NHC check, modulefiles, shell
snippets, the perf wrapper) rendered from the jinja2 templates in `templates/`.

Rendered at setup time on the controller, never at audit time: by `perfgroup setup`, and by the
collection's action plugin for the role (this very file is plugins/plugin_utils/artifacts.py,
so it imports nothing from the perfgroup package: stdlib and jinja2 only). Every value that
goes into a template is checked first against a deliberately small alphabet: the same value
lands in eight syntaxes (systemd, sh, csh, Lua, Tcl, apt.conf, dnf action lines, bash), and
none of them then needs quoting. Templates come from PERFGROUP_TEMPLATES, the checkout's
`templates/` beside this package, the collection's `templates/` (beside plugins/), or the copy an
installed wheel puts under `<prefix>/share/perfgroup/templates`.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import jinja2


def templates_dir() -> Path:
    if os.environ.get("PERFGROUP_TEMPLATES"):
        return Path(os.environ["PERFGROUP_TEMPLATES"])
    here = Path(__file__).resolve()
    for candidate in (here.parent.parent / "templates", here.parents[2] / "templates"):  # checkout, collection
        if candidate.is_dir():
            return candidate
    return Path(sys.prefix) / "share" / "perfgroup" / "templates"


TEMPLATES_DIR = templates_dir()

# Where the perf wrapper goes: /usr/local/bin precedes /usr/bin in every default PATH.
WRAPPER_PATH = "/usr/local/bin/perf"


@dataclass(frozen=True)
class Artifact:
    path: str  # node path; may contain jinja2 expressions ({{ group }}, {{ module_name }}, ...)
    template: str  # file name under templates/
    mode: int
    kind: str


@dataclass(frozen=True)
class RenderedArtifact:
    path: str
    content: str
    mode: int
    kind: str


ARTIFACTS: tuple[Artifact, ...] = (
    Artifact("/etc/systemd/system/perfgroup-heal-{{ group }}.service", "perfgroup-heal.service.j2", 0o644, "boot"),
    Artifact("/etc/systemd/system/sys-kernel-tracing.mount.d/perfgroup.conf", "tracefs-perfgroup.conf.j2", 0o644,
             "tracefs"),
    Artifact("/etc/systemd/system/perfgroup-textfile-{{ group }}.service", "perfgroup-textfile.service.j2", 0o644,
             "prometheus"),
    Artifact("/etc/systemd/system/perfgroup-textfile-{{ group }}.timer", "perfgroup-textfile.timer.j2", 0o644,
             "prometheus"),
    Artifact("/etc/apt/apt.conf.d/80perfgroup-{{ group }}", "apt-hook.j2", 0o644, "apt"),
    Artifact("/etc/dnf/plugins/post-transaction-actions.d/perfgroup-{{ group }}.action",
             "dnf4-post-transaction.action.j2", 0o644, "dnf"),
    Artifact("/etc/dnf/libdnf5-plugins/actions.d/perfgroup-{{ group }}.actions", "dnf5-actions.actions.j2", 0o644,
             "dnf"),
    Artifact("/etc/nhc/scripts/perfgroup.nhc", "nhc-check.nhc.j2", 0o644, "nhc"),
    # Not installed as such: the line to add to /etc/nhc/nhc.conf (a file NHC and sites own).
    Artifact("/etc/nhc/nhc.conf.d/perfgroup-{{ group }}.conf", "nhc.conf.j2", 0o644, "nhc-conf"),
    Artifact("/etc/lmod/modules/{{ module_name }}.lua", "modulefile.lua.j2", 0o644, "lmod"),
    Artifact("/etc/environment-modules/modules/{{ module_name }}", "modulefile.tcl.j2", 0o644, "tcl-module"),
    Artifact("/etc/profile.d/perfgroup-{{ group }}.csh", "profile.csh.j2", 0o644, "csh"),
    Artifact(WRAPPER_PATH, "perf-wrapper.sh.j2", 0o755, "wrapper"),
    # perf-shell (setup --shell): the helper first, the drop-in that lets the group run it next,
    # the command members type last (engine.paths.shell_paths; visudo checks the drop-in first).
    Artifact("{{ helper_path }}", "perf-shell-helper.sh.j2", 0o755, "shell-helper"),
    Artifact("{{ sudoers_path }}", "sudoers.j2", 0o440, "sudoers"),
    Artifact("{{ shell_command }}", "perf-shell.sh.j2", 0o755, "shell"),
    Artifact("/etc/slurm/prolog.d/50-perfgroup-{{ group }}", "slurm-prolog.sh.j2", 0o755, "slurm"),
    Artifact("/etc/slurm/epilog.d/50-perfgroup-{{ group }}", "slurm-epilog.sh.j2", 0o755, "slurm"),
)
SHELL_KINDS = ("shell-helper", "sudoers", "shell")
# For slurmctld's job_submit.lua (the site's file): rendered for the docs and the site, never installed.
JOB_SUBMIT_TEMPLATE = "job_submit_perfgroup.lua.j2"

KINDS = frozenset(artifact.kind for artifact in ARTIFACTS)

_GROUP = re.compile(r"[a-z_][a-z0-9_-]{0,31}\Z")  # the engine's own rule (validate.NAME_RE)
_PATH = re.compile(r"(/[A-Za-z0-9_.+-]+)+\Z")
_CHECKS: dict[str, re.Pattern[str]] = {
    "group": _GROUP,
    "dest": _PATH,
    "dest_dir": _PATH,
    "stock_perf": _PATH,
    "node_command": _PATH,
    "textfile_dir": _PATH,
    "timer_interval": re.compile(r"[0-9]+ ?(us|ms|s|sec|m|min|h|hr|d|w)?( ?[0-9]+ ?(us|ms|s|sec|m|min|h|hr|d|w)?)*\Z"),
    "module_name": re.compile(r"[A-Za-z0-9_+-]+(/[A-Za-z0-9_.+-]+)*\Z"),
    "tracefs_mode": re.compile(r"0?[0-7]{3}\Z"),
    "shell_caps": re.compile(r"cap_[a-z_]+(,cap_[a-z_]+)*\Z"),
    # validate.check_job_options refuses first (test_node_files_plan keeps the two rules equal).
    "job_feature": re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}\Z"),
    "job_paranoid": re.compile(r"[01]?\Z"),
}
_INTS = ("gid", "tracefs_gid")


def check_context(context: Mapping[str, object]) -> None:
    """Refuse (ValueError) a value that would need quoting somewhere. Missing values are left to
    StrictUndefined, which names them when a template uses them."""
    for name, pattern in _CHECKS.items():
        if name in context:
            value = context[name]
            if not isinstance(value, str) or not pattern.match(value) or "/../" in f"{value}/" or "/./" in f"{value}/":
                raise ValueError(f"artifact variable {name}={value!r} is not allowed in node artifacts")
    for name in _INTS:
        if name in context:
            value = context[name]
            if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value < 2**32 - 1:
                raise ValueError(f"artifact variable {name}={value!r} must be an integer gid")
    if context.get("stock_perf") == WRAPPER_PATH:
        raise ValueError(f"stock_perf {WRAPPER_PATH} is where the perf wrapper goes: name the distribution perf")


def environment(directory: Path | None = None) -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(directory or templates_dir())),
        undefined=jinja2.StrictUndefined,
        autoescape=False,  # none of these files is HTML
        keep_trailing_newline=True,
    )


def render(context: dict[str, object], kinds: set[str] | None = None,
           directory: Path | None = None) -> list[RenderedArtifact]:
    """Every artifact of the given kinds (all by default), in table order. Raises
    jinja2.UndefinedError for a missing variable, ValueError for an unsafe value or unknown kind."""
    if kinds is not None and not kinds <= KINDS:
        raise ValueError(f"unknown artifact kinds: {', '.join(sorted(kinds - KINDS))}")
    check_context(context)
    env = environment(directory)
    full = {"wrapper_path": WRAPPER_PATH, **_shell_context(context), **context}
    rendered = []
    for artifact in ARTIFACTS:
        if kinds is not None and artifact.kind not in kinds:
            continue
        path = env.from_string(artifact.path).render(full)
        content = env.get_template(artifact.template).render(full)
        rendered.append(RenderedArtifact(path, content, artifact.mode, artifact.kind))
    return rendered


SHELL_COMMAND = "/usr/local/bin/perf-shell"  # engine.paths.SHELL_COMMAND (a unit test keeps them equal)


def _shell_context(context: Mapping[str, object]) -> dict[str, object]:
    """perf-shell's paths for the group, and capsh's --iab from the session's capabilities."""
    group = str(context.get("group", ""))
    out: dict[str, object] = {"helper_path": f"/usr/local/libexec/perfgroup/{group}/perf-shell",
                              "sudoers_path": f"/etc/sudoers.d/perfgroup-{group}", "shell_command": SHELL_COMMAND}
    if "shell_caps" in context:
        out["shell_iab"] = ",".join("^" + cap for cap in str(context["shell_caps"]).split(","))
    return out


def shell_caps_text(extra: str | None) -> str:
    """cap_perfmon and the --shell-caps list, as capsh and the templates take it (the engine
    judges the list; here only its spelling is checked)."""
    names = [name.strip().lower() for name in (extra or "").split(",") if name.strip()]
    return ",".join(dict.fromkeys(["cap_perfmon", *(n if n.startswith("cap_") else "cap_" + n for n in names)]))


NODE_COMMAND = "/usr/local/sbin/perfgroup-node"  # engine.node_files.LAUNCHER
MODULE_NAME = "perf/privileged"  # engine.reach.MODULE_NAME (a unit test keeps them equal)
STOCK_PERF = "/usr/bin/perf"
# Units a setup enables: .wants link directory for each (what `systemctl enable` would make).
_ENABLE = {"boot": "multi-user.target.wants", "prometheus": "timers.target.wants"}
# What setup installs on every node, each kind where the node has what it needs (REQUIRES, decided
# on the node by engine.node_files.select), plus the optional kinds when asked (setup_kinds).
SETUP_KINDS = ("boot", "apt", "dnf", "wrapper", "csh", "lmod", "tcl-module")
REQUIRES = {"apt": "/etc/apt", "dnf": "/etc/dnf"}  # and a modulefile: its module root (module_root)


class Candidate(NamedTuple):
    """A rendered artifact as the engine's NodeArtifact takes it (same field names)."""

    path: str
    content: str
    mode: int
    kind: str
    link: str = ""
    requires: str = ""


def module_root(path: str) -> str:
    """/etc/lmod/modules for /etc/lmod/modules/perf/privileged.lua."""
    return path[: path.rindex("/" + MODULE_NAME)]


def setup_kinds(textfile_dir: str | None = None, nhc: bool = False, perf_shell: bool = False,
                job_feature: str | None = None) -> set[str]:
    """The artifact kinds `perfgroup setup` and the role render: the node decides which of them it
    installs (REQUIRES); the textfile timer, the NHC check and perf-shell only when asked."""
    kinds = set(SETUP_KINDS)
    if textfile_dir:
        kinds.add("prometheus")
    if nhc:
        kinds.add("nhc")
    if perf_shell:
        kinds.update(SHELL_KINDS)
    if job_feature:
        kinds.add("slurm")
    return kinds


def setup_artifacts(group: str, dest: str, source: str | None = None, textfile_dir: str | None = None,
                    nhc: bool = False, timer_interval: str = "5min", perf_shell: bool = False,
                    shell_caps: str | None = None, job_feature: str | None = None,
                    job_paranoid: int | None = None) -> tuple[Candidate, ...]:
    """Every candidate artifact of a setup, with the enablement link of each enabled unit and the
    node-side condition of each. The wrapper falls back to the stock perf; where a --perf source
    was given, the node picks the variant: /usr/bin/perf if it has one, else that source."""
    if job_paranoid is not None and not job_feature:
        raise ValueError("--job-paranoid goes with --job-feature")
    kinds = setup_kinds(textfile_dir, nhc, perf_shell, job_feature)
    stocks = [("", STOCK_PERF)] if source in (None, STOCK_PERF) else [(STOCK_PERF, STOCK_PERF), ("!" + STOCK_PERF, source)]
    out: list[Candidate] = []
    for requires, stock in stocks:
        wrapper_only = requires != stocks[0][0]
        rendered = node_artifacts(group, dest, {"wrapper"} if wrapper_only else kinds, textfile_dir=textfile_dir,
                                  timer_interval=timer_interval, stock_perf=str(stock),
                                  shell_caps=shell_caps_text(shell_caps), job_feature=job_feature,
                                  job_paranoid=job_paranoid)
        for item in rendered:
            need = requires if item.kind == "wrapper" else REQUIRES.get(item.kind, "")
            if item.kind in ("lmod", "tcl-module"):
                need = module_root(item.path)
            out.append(item._replace(requires=need))
    return tuple(out)


def node_artifacts(group: str, dest: str, kinds: set[str], textfile_dir: str | None = None,
                   timer_interval: str = "5min", stock_perf: str = STOCK_PERF,
                   shell_caps: str = "cap_perfmon", job_feature: str | None = None,
                   job_paranoid: int | None = None) -> tuple[Candidate, ...]:
    """Rendered artifacts of the given kinds, with the enablement symlink of each unit that is
    installed enabled (the engine never renders)."""
    context: dict[str, object] = {
        "group": group, "dest": dest, "dest_dir": os.path.dirname(dest), "node_command": NODE_COMMAND,
        "stock_perf": stock_perf, "textfile_dir": textfile_dir or "/var/lib/prometheus/node-exporter",
        "timer_interval": timer_interval, "module_name": MODULE_NAME, "shell_caps": shell_caps,
        "job_feature": job_feature or "perf", "job_paranoid": "" if job_paranoid is None else str(job_paranoid),
    }
    out: list[Candidate] = []
    for item in render(context, kinds):
        out.append(Candidate(item.path, item.content, item.mode, item.kind))
        wants = _ENABLE.get(item.kind)
        if wants and "[Install]" in item.content:
            directory, name = os.path.split(item.path)
            out.append(Candidate(f"{directory}/{wants}/{name}", item.content, item.mode, item.kind, link=item.path))
    return tuple(out)


def job_submit_lua(feature: str) -> str:
    """The job_submit.lua snippet that rejects a job asking for `feature` without --exclusive."""
    check_context({"job_feature": feature})
    return environment().get_template(JOB_SUBMIT_TEMPLATE).render(job_feature=feature)
