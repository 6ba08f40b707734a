#!/usr/bin/python
"""Ansible module: the read-only perfgroup audit of a node, returned as facts in one round trip."""

from __future__ import annotations

DOCUMENTATION = r"""
module: perf_users_audit
short_description: Read-only audit of a privileged perf users group (perfgroup engine)
description:
  - The same findings as C(perfgroup audit) on the node, returned as C(ansible_facts.perf_users_audit).
options:
  group: {description: The perf group to audit., type: str, default: perf_users}
  dest: {description: Path of the privileged copy (default from the setup record)., type: str}
supports_check_mode: true
"""

import os
from typing import Any

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.perfgroup_engine import facts as facts_mod
from ansible.module_utils.perfgroup_engine import findings as findings_mod
from ansible.module_utils.perfgroup_engine.desired import Desired, default_dest, state_path
from ansible.module_utils.perfgroup_engine.errors import RefusedError
from ansible.module_utils.perfgroup_engine.validate import check_group


def main() -> None:
    module = AnsibleModule(
        argument_spec={"group": {"type": "str", "default": "perf_users"}, "dest": {"type": "str"}},
        supports_check_mode=True,
    )
    try:
        group = check_group(module.params["group"], allow_privileged=True)
    except RefusedError as error:
        module.fail_json(msg=str(error))
    dest = module.params["dest"]
    if not dest:
        state, _ = facts_mod.load_state(state_path(group))
        dest = state.dest if state is not None else default_dest(group)
    desired = Desired(group=group, dest=dest)
    node = facts_mod.read(desired)
    found = findings_mod.audit(node, desired)
    report: dict[str, Any] = {
        "group": group, "dest": dest, "status": findings_mod.worst(found),
        "exit_code": findings_mod.exit_code(found), "findings": [f.as_dict() for f in found],
        "gid": node.group.gid, "group_local": node.group.local, "members": list(node.group.members),
        "copy_sha256": node.copy.sha256, "caps": sorted(node.copy.caps.permitted) if node.copy.caps else [],
        "kernel_release": node.kernel_release, "cap_last_cap": node.cap_last_cap,
        "os": os.uname().sysname, "os_release": _os_id(node.os_release),
    }
    module.exit_json(changed=False, ansible_facts={"perf_users_audit": report})


def _os_id(text: str) -> str:
    values = dict(line.split("=", 1) for line in text.splitlines() if "=" in line)
    return f"{values.get('ID', '').strip(chr(34))}-{values.get('VERSION_ID', '').strip(chr(34))}"


if __name__ == "__main__":
    main()
