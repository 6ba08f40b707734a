#!/usr/bin/python
"""Ansible module: converge one node with the perfgroup engine (the very files the CLI runs)."""

from __future__ import annotations

DOCUMENTATION = r"""
module: perf_users
short_description: Privileged perf users group on a node (perfgroup engine)
description:
  - Creates or adopts the group, installs a dedicated copy of perf (root:GROUP 0750) with the least
    file capabilities this kernel needs, keeps kernel.perf_event_paranoid >= 2, records what it did
    in /var/lib/perfgroup, and verifies by running perf as a member and as a non-member.
  - Same decisions and capability encoding as C(perfgroup setup): the engine is shipped as module_utils.
# BEGIN generated options
options:
  group:
    description: "Group whose members may run the privileged perf."
    type: str
    default: "perf_users"
  members:
    description: "Users to add to the group (repeatable on the command line)."
    type: list
    elements: str
    default: []
  gid:
    description: "Numeric gid for a new group; keep it the same on every node."
    type: int
  source:
    description: "perf to copy (default: the system perf; wrapper scripts are followed to the ELF)."
    type: str
  dest:
    description: "Path of the privileged copy [default: from the setup record, else /usr/local/libexec/perfgroup/GROUP/perf]."
    type: str
  caps:
    description: "auto (least set for this kernel) or a list such as cap_perfmon,cap_syslog,cap_ipc_lock. On the command line an explicit list is remembered until --caps auto."
    type: str
    default: "auto"
  keep_paranoid:
    description: "Leave kernel.perf_event_paranoid as it is, live and at boot."
    type: bool
    default: false
  install_perf:
    description: "Install the distribution's perf package if perf is missing."
    type: bool
    default: false
  allow_privileged_group:
    description: "Allow a group such as wheel or sudo: ALL its members get kernel profiling rights."
    type: bool
    default: false
  allow_root_equivalent:
    description: "Allow capabilities that let members become root (cap_sys_admin, cap_sys_ptrace, cap_setuid, ...), by --caps or because the kernel lacks CAP_PERFMON. Every member can then become root."
    type: bool
    default: false
  verify:
    description: "Run perf as a member and as a non-member after converging."
    type: bool
    default: true
# END generated options
supports_check_mode: true
"""

from typing import Any

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.perfgroup_engine import converge, options
from ansible.module_utils.perfgroup_engine.desired import Desired
from ansible.module_utils.perfgroup_engine.errors import ConvergeError, LockedError, RefusedError
from ansible.module_utils.perfgroup_engine.validate import desired_from_input

ARGUMENT_SPEC = options.argument_spec("main")


def desired_from(params: dict[str, Any]) -> Desired:
    return desired_from_input(**options.desired_kwargs(params, "main"))


def diff_of(plan: Any) -> list[dict[str, str]]:
    return [
        {"before_header": f"{a.target} ({a.kind})", "after_header": f"{a.target} ({a.kind})",
         "before": (a.before or "") + "\n", "after": (a.after or "") + "\n"}
        for a in plan.actions
    ]


def summary(plan: Any, result: Any) -> dict[str, Any]:
    return {
        "caps": sorted(plan.caps.caps) if plan else None,
        "caps_reason": plan.caps.reason if plan else None,
        "group_origin": plan.group_origin if plan else None,
        "plan": [a.summary for a in plan.actions] if plan else [],
        "notes": list(plan.notes) if plan else [],
        "verify": result.verify.as_dict() if result.verify else None,
        "verified": bool(result.verify and result.verify.ok),
        "applied": [a.summary for a in result.applied],
        "failed_step": result.failed_step,
    }


def main() -> None:
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    result = converge.SetupResult()
    try:
        desired = desired_from(module.params)
        converge.setup(desired, dry_run=module.check_mode, run_checks=module.params["verify"],
                       lock_wait=options.LOCK_WAIT_SECONDS, result=result)
    except RefusedError as error:
        module.fail_json(msg=str(error), refused=True, changed=False)
    except LockedError as error:
        module.fail_json(msg=str(error), changed=False)
    except ConvergeError as error:
        applied = f" (applied before it: {result.applied_summary()})" if result.applied else ""
        module.fail_json(msg=f"could not converge at step {error}{applied}", step=error.step,
                         changed=result.changed, **summary(result.plan, result))
    plan = result.plan
    if module.check_mode:
        changed = result.would_install is not None or bool(plan and plan.actions)
        module.exit_json(changed=changed, diff=diff_of(plan) if plan else [], **summary(plan, result))
    out = summary(plan, result)
    if result.verify is not None and not result.verify.ok:
        module.fail_json(msg="verification failed: " + "; ".join(result.verify.lines()), changed=result.changed, **out)
    module.exit_json(changed=result.changed, diff=diff_of(plan) if result.applied else [], **out)


if __name__ == "__main__":
    main()
