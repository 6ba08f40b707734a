#!/usr/bin/python
"""Ansible module: converge one node with the perfgroup engine (the very files the CLI runs)."""

from __future__ import annotations

DOCUMENTATION = r"""
module: perf_users
short_description: Privileged perf users group on a node (perfgroup engine)
version_added: "0.1.0"
description:
  - Creates or adopts the group, installs a dedicated copy of perf (root:GROUP 0750) with the least
    file capabilities this kernel needs, keeps kernel.perf_event_paranoid >= 2, records what it did
    in /var/lib/perfgroup, and verifies by running perf as a member and as a non-member.
  - Same decisions and capability encoding as C(perfgroup setup) - the engine is shipped as module_utils.
  - Bad input (a privileged or malformed group, unknown or escalation capabilities, an unknown member,
    an unsafe destination) fails with the engine's one-line message and C(refused=true), changing nothing.
author:
  - perfgroup maintainers (@perfgroup)
# BEGIN generated options
options:
  group:
    description: >-
      Group whose members may run the privileged perf.
    type: str
    default: "perf_users"
  members:
    description: >-
      Users to add to the group (repeatable on the command line).
    type: list
    elements: str
    default: []
  members_exclusive:
    description: >-
      The members given are the whole list: remove every other member of the local group (default: only
      add; nobody is ever removed unless this is set).
    type: bool
    default: false
  gid:
    description: >-
      Numeric gid for a new group; keep it the same on every node.
    type: int
  source:
    description: >-
      perf to copy (default: the system perf; wrapper scripts are followed to the ELF).
    type: str
  dest:
    description: >-
      Path of the privileged copy [default: from the setup record, else
      /usr/local/libexec/perfgroup/GROUP/perf].
    type: str
  caps:
    description: >-
      auto (least set for this kernel) or a list such as cap_perfmon,cap_syslog,cap_ipc_lock. On the
      command line an explicit list is remembered until --caps auto.
    type: str
    default: "auto"
  keep_paranoid:
    description: >-
      Leave kernel.perf_event_paranoid as it is, live and at boot.
    type: bool
    default: false
  install_perf:
    description: >-
      Install the distribution's perf package if perf is missing.
    type: bool
    default: false
  allow_privileged_group:
    description: >-
      Allow a group such as wheel or sudo: ALL its members get kernel profiling rights.
    type: bool
    default: false
  allow_root_equivalent:
    description: >-
      Allow capabilities that let members become root (cap_sys_admin, cap_sys_ptrace, cap_setuid, ...), by
      --caps or because the kernel lacks CAP_PERFMON. Every member can then become root.
    type: bool
    default: false
  tracefs:
    description: >-
      Give the group read access to tracefs (tracepoints, perf trace): mount options gid=GROUP,mode=0750,
      live and at boot. Machine-wide; never opened to everyone. --no-tracefs keeps tracefs as it is.
    type: bool
    default: true
  shell:
    description: >-
      Install perf-shell: members get a shell (or one command) whose processes hold cap_perfmon, for
      programs that call perf_event_open themselves (PAPI, LIKWID), through a sudoers drop-in for the
      group and capsh. Also what members use where file capabilities cannot work (nosuid, no xattrs).
    type: bool
    default: false
  shell_caps:
    description: >-
      Capabilities perf-shell sessions hold beyond cap_perfmon, e.g. cap_syslog; cap_sys_ptrace (kernels
      before 5.9 watching other users' processes) and other root-equivalent ones also need --allow-root-
      equivalent.
    type: str
  verify:
    description: >-
      Run perf as a member and as a non-member after converging.
    type: bool
    default: true
  textfile_dir:
    description: >-
      node_exporter's textfile collector directory. audit --format prometheus: write GROUP's .prom file
      there atomically instead of printing it. setup and the role: install perfgroup-textfile-GROUP.timer
      (enabled), which writes it there every 5 minutes.
    type: str
  nhc:
    description: >-
      Install the LBNL NHC check /etc/nhc/scripts/perfgroup.nhc (check_perfgroup); add the line `* ||
      check_perfgroup GROUP` to /etc/nhc/nhc.conf to drain a node whose group is broken.
    type: bool
    default: false
  job_feature:
    description: >-
      Slurm node feature (e.g. perf) that grants a job's user the privileged perf for the length of the
      job: installs /etc/slurm/prolog.d/50-perfgroup-GROUP and epilog.d/50-perfgroup-GROUP (exclusive jobs
      only; docs/slurm.md).
    type: str
  job_paranoid:
    description: >-
      With --job-feature: also lower kernel.perf_event_paranoid to N (0 or 1) for the job (LIKWID, PAPI);
      for that time every process on the node may profile beyond its own, so exclusive jobs only.
    type: int
  artifacts:
    description: >-
      Set by the action plugin: the rendered node artifacts (dicts of path, content, mode, kind, link,
      requires) and the node entry point's files. Never set it in a task.
    type: list
    elements: dict
  artifacts_error:
    description: >-
      Set by the action plugin when it could not render the artifacts: the module refuses with it, after
      the engine's own checks. Never set it in a task.
    type: str
# END generated options
attributes:
  check_mode:
    description: Can run in check_mode and return changed status prediction without modifying target.
    support: full
  diff_mode:
    description: Will return details on what has changed (or possibly needs changing in check_mode), when in diff mode.
    support: full
  platform:
    description: Target OS/families that can be operated against.
    support: N/A
    platforms: posix
notes:
  - Needs root on the node (C(become=true)) and Python 3 there; nothing else is installed on the node.
  - One module call per host; a converged node takes no lock and writes nothing.
seealso:
  - module: perfgroup.hpc.perf_users_audit
"""

EXAMPLES = r"""
- name: Converge the privileged perf users group
  perfgroup.hpc.perf_users:
    group: perf_users
    gid: 2950
    members: [alice, bob]

- name: Explicit capabilities for perf top -a on big nodes, no verification run
  perfgroup.hpc.perf_users:
    group: perf_users
    caps: cap_perfmon,cap_ipc_lock
    verify: false
"""

RETURN = r"""
perfgroup_result_kind:
  description: Always C(converge); C(perfgroup deploy) selects this module's results by it.
  returned: always
  type: str
  sample: converge
check_mode:
  description: >-
    True when the module ran in check mode (C(--check), or C(check_mode: true) on the play or task, which
    C(ansible_check_mode) does not show); the role's post-change audit is skipped then.
  returned: always
  type: bool
python:
  description: The node Python version the module ran on.
  returned: always
  type: str
  sample: 3.8.18
caps:
  description: The capabilities the copy carries (or would carry in check mode).
  returned: when the node could be planned
  type: list
  elements: str
  sample: [cap_perfmon]
caps_reason:
  description: Why these capabilities were chosen.
  returned: when the node could be planned
  type: str
group_origin:
  description: Whether the group was C(created), C(adopted) or is from a C(directory) (LDAP/SSSD).
  returned: when the node could be planned
  type: str
plan:
  description: One line per change made (or, in check mode, that would be made).
  returned: when the node could be planned
  type: list
  elements: str
notes:
  description: Remarks on the node (kptr_restrict, SELinux, lockdown, ...).
  returned: when the node could be planned
  type: list
  elements: str
verify:
  description: The functional proof - a member profiled system-wide, a non-member was refused.
  returned: when verify ran (not in check mode, verify=true)
  type: dict
verified:
  description: True when verify ran and both probes behaved.
  returned: always unless refused
  type: bool
refused:
  description: True when bad input or an unsafe situation was refused before any change.
  returned: on refusal
  type: bool
step:
  description: The step that failed while changing the node.
  returned: on a failed step
  type: str
"""

import platform
from typing import Any

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.perfgroup.hpc.plugins.module_utils.perfgroup_engine import (
    converge,
    node_files_rules,
    options,
)
from ansible_collections.perfgroup.hpc.plugins.module_utils.perfgroup_engine.desired import Desired, NodeArtifact
from ansible_collections.perfgroup.hpc.plugins.module_utils.perfgroup_engine.errors import (
    ConvergeError,
    LockedError,
    RefusedError,
    converge_failure,
)
from ansible_collections.perfgroup.hpc.plugins.module_utils.perfgroup_engine.validate import (
    check_job_options,
    desired_from_input,
)

# Every result carries it, failures too: `perfgroup deploy` selects results by it, not by task names.
KIND = "converge"

# artifacts/artifacts_error: set by the action plugin (plugins/action/perf_users.py), which renders
# the node artifacts on the controller; the engine decides here which of them this node takes.
ARGUMENT_SPEC = options.argument_spec("main")
ARTIFACT_FIELDS = {"path": str, "content": str, "mode": int, "kind": str, "link": str, "requires": str}


def artifact_from(item: dict[str, Any]) -> NodeArtifact:
    if set(item) - set(ARTIFACT_FIELDS) or not {"path", "content"} <= set(item) or not all(
            isinstance(value, ARTIFACT_FIELDS[key]) and not isinstance(value, bool) for key, value in item.items()):
        raise RefusedError(f"artifacts: malformed entry (keys {sorted(item)}); the action plugin sets this parameter")
    return NodeArtifact(**item)


def desired_from(params: dict[str, Any]) -> Desired:
    desired = desired_from_input(**options.desired_kwargs(params, "main"))
    check_job_options(params.get("job_feature") or None, params.get("job_paranoid"))
    if params.get("artifacts_error"):
        raise RefusedError(params["artifacts_error"])
    items = tuple(artifact_from(item) for item in params.get("artifacts") or ())
    # The module runs from a zip on the node, where the engine cannot copy itself: the action
    # plugin sends the entry point's files with the artifacts (the controller's engine: the same files).
    shipped = any(node_files_rules.is_entry_point(item.path) for item in items)
    return desired._replace(artifacts=items, node_entry=desired.node_entry and not shipped)


def main() -> None:
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    # On every result: the handler needs check_mode (ansible_check_mode misses check_mode: true on a
    # play or task); python tells which node interpreter really ran the engine (the tests check it).
    common = {"perfgroup_result_kind": KIND, "check_mode": module.check_mode, "python": platform.python_version()}
    result = converge.SetupResult()
    try:
        desired = desired_from(module.params)
        converge.setup(desired, dry_run=module.check_mode, run_checks=module.params["verify"],
                       lock_wait=options.LOCK_WAIT_SECONDS, result=result)
    except RefusedError as error:
        module.fail_json(msg=str(error), refused=True, changed=False, **common)
    except LockedError as error:
        module.fail_json(msg=str(error), changed=False, **common)
    except ConvergeError as error:
        module.fail_json(msg=converge_failure(error, [action.summary for action in result.applied]), step=error.step, changed=result.changed,
                         **common, **converge.summary(result.plan, result))
    plan = result.plan
    if module.check_mode:
        changed = result.would_install is not None or bool(plan and plan.actions)
        module.exit_json(changed=changed, diff=converge.diff(plan) if module._diff else [], **common,
                         **converge.summary(plan, result))
    out = converge.summary(plan, result)
    if result.verify is not None and not result.verify.ok:
        module.fail_json(msg="verification failed: " + "; ".join(result.verify.lines()), changed=result.changed,
                         **common, **out)
    # Only when asked (--diff): the diff travels back to the controller on every node's result.
    module.exit_json(changed=result.changed, diff=converge.diff(plan) if module._diff and result.applied else [],
                     **common, **out)


if __name__ == "__main__":
    main()
