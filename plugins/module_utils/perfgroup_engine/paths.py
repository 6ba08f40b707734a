"""Every fixed path perfgroup reads or writes on a node, and the per-group names built from them.

Core layer: strings only. A path defined anywhere else is a second definition.
"""

from __future__ import annotations

# -- perfgroup's own ------------------------------------------------------------------------------
STATE_DIR = "/var/lib/perfgroup"
LIBEXEC_ROOT = "/usr/local/libexec/perfgroup"
LOCK_PATH = "/run/perfgroup.lock"
# Prefix of the temporary files perfgroup writes before renaming them into place.
TMP_PREFIX = ".perfgroup-tmp-"
# The node entry point: a copy of the engine package and its launcher.
LIB_DIR = "/usr/local/lib/perfgroup"
ENGINE_DIR = f"{LIB_DIR}/perfgroup_engine"
LAUNCHER = "/usr/local/sbin/perfgroup-node"
# Per-job grants under Slurm (jobs.py): one record per job, on tmpfs (a reboot ends every job).
GRANTS_DIR = "/run/perfgroup/grants"
SLURM_PROLOG_DIR = "/etc/slurm/prolog.d"
SLURM_EPILOG_DIR = "/etc/slurm/epilog.d"
SCONTROL = "/usr/bin/scontrol"

# -- files setup writes for a group ----------------------------------------------------------------
SYSTEMD_DIR = "/etc/systemd/system"
PROFILE_DIR = "/etc/profile.d"
SYSCTL_DIR = "/etc/sysctl.d"
WRAPPER_PATH = "/usr/local/bin/perf"
MODULE_NAME = "perf/privileged"
MODULEFILES = (f"/etc/lmod/modules/{MODULE_NAME}.lua", f"/etc/environment-modules/modules/{MODULE_NAME}")
DROPIN_PATH = "/etc/systemd/system/sys-kernel-tracing.mount.d/perfgroup.conf"
# Directories where setup may place rendered artifacts (remove deletes recorded files only there,
# and only names that mention the group or are perfgroup's own).
ARTIFACT_DIRS = (
    SYSTEMD_DIR, f"{SYSTEMD_DIR}/multi-user.target.wants", f"{SYSTEMD_DIR}/timers.target.wants",
    "/etc/apt/apt.conf.d", "/etc/dnf/plugins/post-transaction-actions.d", "/etc/dnf/libdnf5-plugins/actions.d",
    "/etc/nhc/scripts", "/etc/nhc/nhc.conf.d", "/etc/systemd/system/sys-kernel-tracing.mount.d",
    "/etc/lmod/modules", "/etc/environment-modules/modules", "/etc/profile.d", "/usr/local/bin", "/etc/sudoers.d",
    SLURM_PROLOG_DIR, SLURM_EPILOG_DIR,
)
# perf-shell (setup --shell): the command members type, the root-owned helper sudo runs, and the
# sudoers drop-in that lets the group run that helper and nothing else.
SHELL_COMMAND = "/usr/local/bin/perf-shell"
SUDOERS_DIR = "/etc/sudoers.d"
VISUDO = "/usr/sbin/visudo"

# -- the system's, read (and where setup must, edited) ---------------------------------------------
FSTAB = "/etc/fstab"
GSHADOW = "/etc/gshadow"
TRACEFS_PATHS = ("/sys/kernel/tracing", "/sys/kernel/debug/tracing")
MOUNT_UNITS = ("/lib/systemd/system/sys-kernel-tracing.mount", "/usr/lib/systemd/system/sys-kernel-tracing.mount")
MOUNTINFO = "/proc/self/mountinfo"


def default_dest(group: str) -> str:
    """One directory per group, outside anything a package manager owns."""
    return f"{LIBEXEC_ROOT}/{group}/perf"


def shell_helper_path(group: str) -> str:
    """Beside the group's default copy: perfgroup's own root-owned tree, whatever --dest says."""
    return f"{LIBEXEC_ROOT}/{group}/perf-shell"


def sudoers_path(group: str) -> str:
    # No '.' or '~' in the name: sudo's @includedir skips such files (the temp file relies on it).
    return f"{SUDOERS_DIR}/perfgroup-{group}"


def shell_paths(group: str) -> tuple[str, ...]:
    """What setup --shell installs (a unit test keeps these equal to perfgroup/artifacts.py)."""
    return (SHELL_COMMAND, shell_helper_path(group), sudoers_path(group))


def state_path(group: str) -> str:
    return f"{STATE_DIR}/{group}.json"


def intent_path(state_path: str) -> str:
    """A failed run's intent, beside the record: GROUP.json -> GROUP.pending."""
    return state_path[: -len(".json")] + ".pending" if state_path.endswith(".json") else state_path + ".pending"


def journal_path(group: str) -> str:
    """The fstab edit journal (fstab.py): written before fstab changes, folded into the record."""
    return f"{STATE_DIR}/{group}.fstab-edits"


def profile_path(group: str) -> str:
    return f"{PROFILE_DIR}/perfgroup-{group}.sh"


def sysctl_path(group: str) -> str:
    # 90- sorts after distribution defaults (10-, 50-) so the value wins at boot.
    return f"{SYSCTL_DIR}/90-perfgroup-{group}.conf"


def artifact_paths(group: str) -> tuple[str, ...]:
    """Where the caller-rendered artifacts go (perfgroup/artifacts.py; a unit test keeps them equal)."""
    return (WRAPPER_PATH, f"/etc/profile.d/perfgroup-{group}.csh", *MODULEFILES)


def optional_paths(group: str) -> tuple[str, ...]:
    """The artifacts setup installs only when asked (--textfile-dir, --nhc, --shell): a run that rendered
    artifacts without them retires them (a unit test keeps these equal to perfgroup/artifacts.py)."""
    unit = f"/etc/systemd/system/perfgroup-textfile-{group}"
    return (f"{unit}.service", f"{unit}.timer", f"/etc/systemd/system/timers.target.wants/perfgroup-textfile-{group}.timer",
            "/etc/nhc/scripts/perfgroup.nhc", *shell_paths(group), *job_script_paths(group))


def job_script_paths(group: str) -> tuple[str, str]:
    """The Slurm prolog and epilog of --job-feature (50-: before a site's own scripts that may
    expect the grant, after nothing that needs ordering)."""
    return f"{SLURM_PROLOG_DIR}/50-perfgroup-{group}", f"{SLURM_EPILOG_DIR}/50-perfgroup-{group}"


def grant_path(job: str) -> str:
    return f"{GRANTS_DIR}/{job}"
