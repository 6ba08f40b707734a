"""Running the perfgroup.hpc collection's playbooks with ansible-playbook.

ansible-playbook, not ansible-runner: it is already what admins run, it streams per-host progress
through the collection's stdout callback, and it adds no dependency (ansible-runner would add
pexpect and a private-data-dir layout). The collection comes from PERFGROUP_COLLECTIONS, the
checkout beside this package (the repository root is the collection root), or the copy an
installed wheel puts under <prefix>/share/perfgroup/collections; ANSIBLE_COLLECTIONS_PATH points
at it for the run, ahead of any path the caller already set."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
from pathlib import Path
from typing import Any

from . import collection
from .engine.errors import RefusedError

# The oldest ansible-core tested; the newest tested is in meta/runtime.yml's comment.
ANSIBLE_CORE = "ansible-core>=2.16"
CALLBACK = f"{collection.FQCN}.perfgroup_json"
KIND_KEY = "perfgroup_result_kind"


class DeployError(RefusedError):
    """Ansible could not be run as asked (missing tool, inventory or playbook)."""


class NoHostsMatched(DeployError):
    pass


# ansible-core 2.16, the oldest supported, runs its controller on Python 3.10 and newer.
CONTROLLER_PYTHON = (3, 10)


def install_hint(version_info: tuple[int, ...] | None = None, executable: str | None = None,
                 source: str | None = None) -> str:
    """Exactly what to install on this controller. On a Python no supported ansible-core runs on
    (3.9, RHEL 9's), pip cannot help: perfgroup itself goes under a newer Python."""
    major, minor = (version_info or sys.version_info)[:2]
    executable = executable or sys.executable
    if (major, minor) >= CONTROLLER_PYTHON:
        return (f"run {executable} -m pip install '{ANSIBLE_CORE}' "
                f"(ansible-core needs a Python >= 3.10 controller; this one is {major}.{minor})")
    return (f"{ANSIBLE_CORE} needs Python 3.10 or newer on the controller and this perfgroup runs on "
            f"{major}.{minor} ({executable}): install perfgroup under a newer Python, e.g. "
            f"python3.11 -m venv /opt/perfgroup && /opt/perfgroup/bin/pip install {source or installed_from()} "
            "&& ln -sf /opt/perfgroup/bin/perfgroup /usr/local/bin/perfgroup (RHEL 9: dnf install -y python3.11)")


def installed_from() -> str:
    """Where this perfgroup was installed from (pip's direct_url.json: the checkout or wheel file)."""
    from importlib import metadata

    try:
        url = json.loads(metadata.distribution("perfgroup").read_text("direct_url.json") or "{}").get("url", "")
    except (metadata.PackageNotFoundError, ValueError):
        url = ""
    return url[len("file://"):] if url.startswith("file://") else url or "PERFGROUP_CHECKOUT_OR_WHEEL"


def ansible_tool(name: str) -> str:
    sibling = Path(sys.executable).with_name(name)
    found = str(sibling) if sibling.exists() else shutil.which(name)
    if not found:
        raise DeployError(f"{name} not found: {install_hint()}")
    return found


def ansible_playbook() -> str:
    return ansible_tool("ansible-playbook")


def environment(collections: Path, verbose: int = 0) -> dict[str, str]:
    """The Ansible tools' environment. stdout is the callback's JSON only: -v's messages go to stderr
    with the progress lines. Without -v, Python warnings are off in Ansible's processes: ansible-core
    imports cryptography at start, and a newer cryptography warns about it (e.g.
    CryptographyDeprecationWarning: DSA is deprecated) on every run, which is not the user's to fix.
    PYTHONWARNINGS is read before any import (sitecustomize included); -v keeps the caller's own."""
    existing = os.environ.get("ANSIBLE_COLLECTIONS_PATH") or os.environ.get("ANSIBLE_COLLECTIONS_PATHS")
    env = {
        **os.environ,
        "ANSIBLE_COLLECTIONS_PATH": str(collections) + (f":{existing}" if existing else ""),
        "ANSIBLE_STDOUT_CALLBACK": CALLBACK,
        "ANSIBLE_PIPELINING": os.environ.get("ANSIBLE_PIPELINING", "True"),
        "ANSIBLE_SSH_ARGS": os.environ.get("ANSIBLE_SSH_ARGS", "-o ControlMaster=auto -o ControlPersist=60s"),
        "ANSIBLE_VERBOSE_TO_STDERR": "True",
    }
    if not verbose:
        env["PYTHONWARNINGS"] = "ignore"
    return env


def no_match_message(hosts: str, limit: str | None, inventory: str, fix: str) -> str:
    where = f"'{hosts}'" + (f" with --limit '{limit}'" if limit else "")
    return f"no host of {inventory} matches {where}: {fix}"


def run(playbook: str, inventory: str, limit: str | None, extra: list[str], forks: int | None,
        hosts: str = "all", no_match_fix: str = "check the inventory and --limit", verbose: int = 0) -> dict[str, Any]:
    """Run one of the collection's playbooks on `hosts` (the play's hosts: pattern); progress lines
    go to our stderr as they happen; returns the JSON report. NoHostsMatched when nothing is targeted.
    `verbose` is the number of -v passed on (Ansible's messages and Python's warnings on stderr)."""
    if not os.path.exists(inventory):
        raise DeployError(f"inventory {inventory} not found")
    executable = ansible_playbook()
    with tempfile.TemporaryDirectory(prefix="perfgroup-ansible-") as scratch:
        collections = collection.collections_path(Path(scratch))
        path = collection.collection_dir(collections) / "playbooks" / playbook
        if not path.exists():
            raise DeployError(f"{path} not found (set PERFGROUP_COLLECTIONS to a directory holding "
                              f"ansible_collections/{collection.NAMESPACE}/{collection.NAME})")
        argv = [executable, "-i", inventory, str(path), "-e", json.dumps({"perf_users_hosts": hosts}), *extra]
        argv += ["--limit", limit] if limit else []
        argv += ["--forks", str(forks)] if forks else []
        argv += ["-" + "v" * verbose] if verbose else []
        env = environment(collections, verbose)
        returncode, stdout, held = run_streaming(argv, env)
        try:
            report = dict(json.loads(stdout.strip().splitlines()[-1]))
        except (ValueError, IndexError):
            # ansible-playbook stops before any play when --limit matches nothing; only then pay
            # for a second ansible start to tell that apart from other failures.
            if limit and not matched_hosts(inventory, hosts, limit, env):
                raise NoHostsMatched(no_match_message(hosts, limit, inventory, no_match_fix)) from None
            sys.stderr.writelines(held)
            raise DeployError(f"ansible-playbook exited {returncode} without a result "
                              "(see messages above)") from None
    plays = report.get("plays", [])
    if plays and all(play.get("no_hosts_matched") for play in plays):
        raise NoHostsMatched(no_match_message(hosts, limit, inventory, no_match_fix))
    sys.stderr.writelines(held)
    return report


# Ansible's own words for "nothing matched": held back, and replaced by one line of ours when
# nothing is targeted (printed after the run otherwise).
NO_MATCH_LINES = (
    "[WARNING]: Could not match supplied host pattern",
    "[WARNING]: No hosts matched",
    "[ERROR]: Specified inventory, host pattern and/or --limit leaves us with no hosts",
    "ERROR! Specified inventory, host pattern and/or --limit leaves us with no hosts",
)


def run_streaming(argv: list[str], env: dict[str, str]) -> tuple[int, str, list[str]]:
    """Run ansible-playbook: its stderr (the callback's progress lines, Ansible's messages) goes to
    ours line by line as it comes, except the no-match lines; returns (exit code, stdout, held lines)."""
    with subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) as process:
        assert process.stdout is not None and process.stderr is not None
        stdout: list[str] = []
        reader = threading.Thread(target=lambda: stdout.append(process.stdout.read() if process.stdout else ""))
        reader.start()
        held = []
        for line in process.stderr:
            if line.startswith(NO_MATCH_LINES):
                held.append(line)
            else:
                sys.stderr.write(line)
                sys.stderr.flush()
        reader.join()
        returncode = process.wait()
    return returncode, "".join(stdout), held


def matched_hosts(inventory: str, hosts: str, limit: str | None, env: dict[str, str]) -> list[str]:
    argv = [ansible_tool("ansible"), "-i", inventory, hosts, "--list-hosts"] + (["--limit", limit] if limit else [])
    listed = subprocess.run(argv, env=env, capture_output=True, text=True, check=False)
    lines = [line.strip() for line in listed.stdout.splitlines()]
    return [line for line in lines if line and not line.startswith("hosts (")]


def host_results(report: dict[str, Any], kind: str) -> dict[str, dict[str, Any]]:
    """Per host: the result of the module of this kind ("converge" or "audit", the modules'
    perfgroup_result_kind), or a failure of the host after or before it (unreachable, the post-change
    audit). Task names play no part."""
    hosts: dict[str, dict[str, Any]] = {}
    for play in report.get("plays", []):
        for task in play.get("tasks", []):
            for host, data in task["hosts"].items():
                if data.get(KIND_KEY) == kind or data.get("failed") or data.get("unreachable"):
                    hosts[host] = data
    return hosts
