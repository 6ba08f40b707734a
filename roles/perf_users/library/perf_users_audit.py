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

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.perfgroup_engine import facts as facts_mod
from ansible.module_utils.perfgroup_engine import findings as findings_mod
from ansible.module_utils.perfgroup_engine.errors import RefusedError


def main() -> None:
    module = AnsibleModule(
        argument_spec={"group": {"type": "str", "default": "perf_users"}, "dest": {"type": "str"}},
        supports_check_mode=True,
    )
    try:
        desired = facts_mod.audit_target(module.params["group"], module.params["dest"] or None)
    except RefusedError as error:
        module.fail_json(msg=str(error))
    node = facts_mod.read(desired)
    report = findings_mod.report(node, desired, findings_mod.audit(node, desired))
    module.exit_json(changed=False, ansible_facts={"perf_users_audit": report})


if __name__ == "__main__":
    main()
