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
options:
  group: {description: Group whose members may run the privileged perf., type: str, default: perf_users}
  gid: {description: Numeric gid for a new group., type: int}
  members: {description: Users to add to the group., type: list, elements: str, default: []}
  dest: {description: Path of the privileged copy (default under /usr/local/libexec/perfgroup)., type: str}
  caps: {description: C(auto) or a capability list such as C(cap_perfmon,cap_ipc_lock)., type: str, default: auto}
  keep_paranoid: {description: Leave kernel.perf_event_paranoid alone., type: bool, default: false}
  install_perf: {description: Install the distribution perf package if perf is missing., type: bool, default: false}
  verify: {description: Run perf as a member and a non-member after converging., type: bool, default: true}
supports_check_mode: true
"""

from typing import Any

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.perfgroup_engine import converge
from ansible.module_utils.perfgroup_engine.desired import Desired
from ansible.module_utils.perfgroup_engine.errors import ConvergeError, LockedError, RefusedError
from ansible.module_utils.perfgroup_engine.validate import desired_from_input

ARGUMENT_SPEC: dict[str, Any] = {
    "group": {"type": "str", "default": "perf_users"},
    "gid": {"type": "int"},
    "members": {"type": "list", "elements": "str", "default": []},
    "dest": {"type": "str"},
    "caps": {"type": "str", "default": "auto"},
    "keep_paranoid": {"type": "bool", "default": False},
    "install_perf": {"type": "bool", "default": False},
    "verify": {"type": "bool", "default": True},
}


def desired_from(params: dict[str, Any]) -> Desired:
    return desired_from_input(
        params["group"], params["dest"] or None, tuple(params["members"]), params["gid"], None, params["caps"],
        params["keep_paranoid"], params["install_perf"],
    )


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
    }


def main() -> None:
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    result = converge.SetupResult()
    try:
        desired = desired_from(module.params)
        converge.setup(desired, dry_run=module.check_mode, run_checks=module.params["verify"], lock_wait=120.0,
                       result=result)
    except RefusedError as error:
        module.fail_json(msg=str(error), refused=True, changed=False)
    except LockedError as error:
        module.fail_json(msg=str(error), changed=False)
    except ConvergeError as error:
        module.fail_json(msg=f"could not converge at step {error}", step=error.step, changed=result.changed,
                         **summary(result.plan, result))
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
