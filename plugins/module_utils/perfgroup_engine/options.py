"""Every option an administrator can give, defined once.

The click options of each command, the Ansible modules' argument specs and DOCUMENTATION, the
role's `defaults/main.yml` and `meta/argument_specs.yml` are all built from OPTIONS (the
generated Ansible files are checked by a unit test and rewritten by
`python -m perfgroup.ansible_spec --write`). Adding an option is: a row here, the engine code that
uses it, its tests.
"""

from __future__ import annotations

from .capabilities import ROOT_EQUIVALENT_CAPS
from .tuples import NamedTuple

TYPE_CHECKING = False  # as typing.TYPE_CHECKING (mypy knows the name), without importing typing at run time
if TYPE_CHECKING:
    from typing import Any, Callable

# How long a changing command waits for another perfgroup run before giving up (exit "busy").
LOCK_WAIT_SECONDS = 120.0
ROLE_PREFIX = "perf_users_"
# What --job-paranoid may lower perf_event_paranoid to for an exclusive job (validate.check_job_options;
# the prolog's `perfgroup-node job-grant --paranoid` takes the same).
JOB_PARANOID_VALUES = (0, 1)
# A --job-feature name (validate.check_job_options): these characters, as the prolog's tokenizer
# reads a constraint (job_rules.FEATURE_CHARS), at most 64, not starting with . or -.
JOB_FEATURE_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-")
JOB_FEATURE_MAX = 64


class Option(NamedTuple):
    name: str  # keyword of desired_from_input / Ansible module parameter
    kind: str  # "str", "int", "bool" or "list" (of str)
    default: Any
    help: str
    commands: tuple[str, ...]  # CLI commands taking it
    entry_points: tuple[str, ...] = ()  # role entry points (and their modules) taking it
    flag: str = ""  # CLI spelling when it differs from --name-with-dashes
    metavar: str = ""
    choices: tuple[str, ...] = ()
    role_default: Any = "same"  # the role's default when a declarative default differs from the CLI's
    desired: bool = True  # part of what the node should look like (else a run option such as verify)
    not_in_role: str = ""  # why a setup option has no role variable (the role must otherwise do all setup can)
    # The value the setup record remembers (State -> the value as typed), for heal and the boot
    # unit, which have only the record; None: not remembered (heal uses the default).
    from_record: Callable[[Any], Any] | None = None
    # The click-free parsers that read it (perfgroup's plain audit, perfgroup-node's): commands.
    plain: tuple[str, ...] = ()
    old_flags: tuple[str, ...] = ()  # earlier CLI spellings, still accepted (not shown in --help)
    # A role variable no module takes: the role's own tasks act on it (builtin modules).
    role_only: bool = False

    @property
    def cli_flag(self) -> str:
        return self.flag or "--" + self.name.replace("_", "-")

    @property
    def role_var(self) -> str:
        return ROLE_PREFIX + self.name

    @property
    def ansible_default(self) -> Any:
        value = self.default if self.role_default == "same" else self.role_default
        return list(value) if isinstance(value, tuple) else value


OPTIONS: tuple[Option, ...] = (
    Option("group", "str", "perf_users", "Group whose members may run the privileged perf.",
           ("setup", "audit", "verify", "remove", "members"), ("main", "audit"), metavar="NAME",
           from_record=lambda state: state.group, plain=("audit",)),
    Option("members", "list", (), "Users to add to the group (repeatable on the command line).",
           ("setup",), ("main",), flag="--member", metavar="USER"),
    Option("members_exclusive", "bool", False,
           "The members given are the whole list: remove every other member of the local group "
           "(default: only add; nobody is ever removed unless this is set).", ("setup",), ("main",)),
    Option("gid", "int", None, "Numeric gid for a new group; keep it the same on every node.",
           ("setup",), ("main",), metavar="N"),
    Option("source", "str", None, "perf to copy (default: the system perf; wrapper scripts are followed to the ELF).",
           ("setup",), ("main",), flag="--perf", metavar="SRC"),
    Option("dest", "str", None,
           "Path of the privileged copy [default: from the setup record, else /usr/local/libexec/perfgroup/GROUP/perf].",
           ("setup", "audit", "verify"), ("main", "audit"), metavar="PATH",
           from_record=lambda state: state.dest, plain=("audit",)),
    Option("caps", "str", None,
           "auto (least set for this kernel) or a list such as cap_perfmon,cap_syslog,cap_ipc_lock. "
           "On the command line an explicit list is remembered until --caps auto.",
           ("setup",), ("main",), metavar="auto|LIST", role_default="auto",
           from_record=lambda state: ",".join(state.caps) if state.caps_override else None),
    Option("keep_paranoid", "bool", False, "Leave kernel.perf_event_paranoid as it is, live and at boot.",
           ("setup",), ("main",), from_record=lambda state: state.keep_paranoid),
    Option("install_perf", "bool", False, "Install the distribution's perf package if perf is missing.",
           ("setup",), ("main",)),
    Option("allow_privileged_group", "bool", False,
           "Allow a group such as wheel or sudo: ALL its members get kernel profiling rights.",
           ("setup",), ("main",), old_flags=("--adopt-privileged-group",),
           from_record=lambda state: True),  # setup refused an unasked privileged group before recording it
    Option("allow_root_equivalent", "bool", False,
           "Allow capabilities that let members become root (cap_sys_admin, cap_sys_ptrace, cap_setuid, ...), "
           "by --caps or because the kernel lacks CAP_PERFMON. Every member can then become root.",
           ("setup",), ("main",),
           from_record=lambda state: bool(state.root_equivalent_caps) or bool(ROOT_EQUIVALENT_CAPS & set(state.shell_caps))),
    Option("tracefs", "bool", True,
           "Give the group read access to tracefs (tracepoints, perf trace): mount options gid=GROUP,mode=0750, "
           "live and at boot. Machine-wide; never opened to everyone. --no-tracefs keeps tracefs as it is.",
           ("setup",), ("main",), from_record=lambda state: not state.tracefs_kept),
    Option("shell", "bool", False,
           "Install perf-shell: members get a shell (or one command) whose processes hold cap_perfmon, for "
           "programs that call perf_event_open themselves (PAPI, LIKWID), through a sudoers drop-in for the "
           "group and capsh. Also what members use where file capabilities cannot work (nosuid, no xattrs).",
           ("setup",), ("main",), from_record=lambda state: state.shell),
    Option("shell_caps", "str", None,
           "Capabilities perf-shell sessions hold beyond cap_perfmon, e.g. cap_syslog; cap_sys_ptrace (kernels "
           "before 5.9 watching other users' processes) and other root-equivalent ones also need "
           "--allow-root-equivalent.", ("setup",), ("main",), metavar="LIST",
           from_record=lambda state: ",".join(state.shell_caps) or None),
    Option("root", "str", None,
           "Work on a node image directory instead of this machine (Warewulf image, xCAT rootimg, any Linux root "
           "with python3): its own /etc/group, perf and files, chrooted, never this machine's kernel.",
           ("setup", "audit", "remove"), metavar="DIR", desired=False,
           not_in_role="the role converges running nodes; images are prepared on the image build host"),
    Option("verify", "bool", True, "Run perf as a member and as a non-member after converging.",
           ("setup",), ("main",), desired=False),
    Option("format", "str", "text", "Output: text, json (same as --json), nagios (one line + perfdata) or "
           "prometheus (node_exporter textfile format).", ("audit",), choices=("text", "json", "nagios", "prometheus"),
           desired=False, plain=("audit",)),
    Option("textfile_dir", "str", None, "node_exporter's textfile collector directory. audit --format prometheus: "
           "write GROUP's .prom file there atomically instead of printing it. setup and the role: install "
           "perfgroup-textfile-GROUP.timer (enabled), which writes it there every 5 minutes.", ("audit", "setup"),
           ("main",), metavar="DIR", desired=False, plain=("audit",)),
    Option("nhc", "bool", False, "Install the LBNL NHC check /etc/nhc/scripts/perfgroup.nhc (check_perfgroup); "
           "add the line `* || check_perfgroup GROUP` to /etc/nhc/nhc.conf to drain a node whose group is broken.",
           ("setup",), ("main",), desired=False),
    Option("job_feature", "str", None,
           "Slurm node feature (e.g. perf) that grants a job's user the privileged perf for the length of the job: "
           "installs /etc/slurm/prolog.d/50-perfgroup-GROUP and epilog.d/50-perfgroup-GROUP (exclusive jobs only; "
           "docs/slurm.md).", ("setup",), ("main",), metavar="FEATURE", desired=False),
    Option("job_paranoid", "int", None,
           "With --job-feature: also lower kernel.perf_event_paranoid to N (0 or 1) for the job (LIKWID, PAPI); "
           "for that time every process on the node may profile beyond its own, so exclusive jobs only.",
           ("setup",), ("main",), metavar="N", desired=False),
    Option("functional", "bool", False, "Also run perf as a member and as a non-member (needs root).",
           ("audit",), ("audit",), desired=False),
    Option("prometheus_rules_dir", "str", None,
           "On a Prometheus host (entry point prometheus_rules): install the collection's "
           "monitoring/prometheus/perfgroup-rules.yml (alerts and records, docs/monitoring.md) into this directory, "
           "which prometheus.yml's rule_files must cover; reload Prometheus after a change.",
           (), ("prometheus_rules",), metavar="DIR", desired=False, role_only=True),
)
BY_NAME: dict[str, Option] = {option.name: option for option in OPTIONS}
# Module parameters no administrator sets: the collection's action plugin (plugins/action) fills
# them in on the controller. In the module's argument spec and DOCUMENTATION, not in the role.
INTERNAL: dict[str, tuple[Option, ...]] = {
    "main": (
        Option("artifacts", "list", None, "Set by the action plugin: the rendered node artifacts (dicts of path, "
               "content, mode, kind, link, requires) and the node entry point's files. Never set it in a task.", ()),
        Option("artifacts_error", "str", None, "Set by the action plugin when it could not render the artifacts: "
               "the module refuses with it, after the engine's own checks. Never set it in a task.", ()),
    ),
}


def for_command(command: str) -> tuple[Option, ...]:
    return tuple(option for option in OPTIONS if command in option.commands)


def for_entry_point(entry_point: str) -> tuple[Option, ...]:
    return tuple(option for option in OPTIONS if entry_point in option.entry_points)


def for_module(entry_point: str) -> tuple[Option, ...]:
    """The options the module behind a role entry point takes (not the role's own variables)."""
    return tuple(option for option in for_entry_point(entry_point) if not option.role_only)


def argument_spec(entry_point: str) -> dict[str, dict[str, Any]]:
    """AnsibleModule(argument_spec=...) for the module behind a role entry point."""
    spec: dict[str, dict[str, Any]] = {}
    internal = INTERNAL.get(entry_point, ())
    for option in (*for_module(entry_point), *internal):
        entry: dict[str, Any] = {"type": option.kind}
        if option.kind == "list":
            entry["elements"] = "dict" if option in internal else "str"
        if option.ansible_default is not None:
            entry["default"] = option.ansible_default
        if option.choices:
            entry["choices"] = list(option.choices)
        spec[option.name] = entry
    return spec


def desired_kwargs(params: dict[str, Any], entry_point: str) -> dict[str, Any]:
    """The desired_from_input keywords among a module's parameters ("" and [] mean unset)."""
    out: dict[str, Any] = {}
    for option in for_module(entry_point):
        if not option.desired:
            continue
        value: Any | None = params.get(option.name)
        if option.kind == "list":
            value = tuple(value or ())
        elif value == "":
            value = None
        out[option.name] = value
    return out


def from_record(state: Any) -> dict[str, Any]:
    """What setup was last asked for, as desired_from_input keywords, from its record alone."""
    return {option.name: option.from_record(state) for option in OPTIONS if option.from_record is not None}


def plain_args(argv: list[str], command: str, flags: tuple[str, ...] = ()) -> dict[str, str] | None:
    """The options of `command` that the table marks plain, each written out in full and at most
    once, plus `flags` (valueless); else None: abbreviations, --help, repeats, unknown options
    and bad choices go to the full parser (click or argparse), which reads them the same way and
    renders any error. NHC, the textfile timer and cron run the audit every few minutes on every
    node: the plain path spares them click or argparse."""
    by_flag = {option.cli_flag: option for option in OPTIONS if command in option.plain}
    if argv[:1] != [command]:
        return None
    found: dict[str, str] = {}
    rest = argv[1:]
    while rest:
        name = rest.pop(0)
        if name in found:
            return None
        if name in flags:
            found[name] = ""
            continue
        option = by_flag.get(name)
        if option is None or not rest or rest[0].startswith("-"):
            return None
        value = rest.pop(0)
        if option.choices and value not in option.choices:
            return None
        found[name] = value
    return found
