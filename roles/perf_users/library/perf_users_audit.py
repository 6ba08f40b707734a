#!/usr/bin/python
"""Ansible module: the read-only perfgroup audit of a node, returned as facts in one round trip."""

from __future__ import annotations

DOCUMENTATION = r"""
module: perf_users_audit
short_description: Read-only audit of a privileged perf users group (perfgroup engine)
description:
  - The same findings as C(perfgroup audit) on the node, returned as C(ansible_facts.perf_users_audit).
# BEGIN generated options
options:
  group:
    description: "Group whose members may run the privileged perf."
    type: str
    default: "perf_users"
  dest:
    description: "Path of the privileged copy [default: from the setup record, else /usr/local/libexec/perfgroup/GROUP/perf]."
    type: str
  functional:
    description: "Also run perf as a member and as a non-member (needs root)."
    type: bool
    default: false
# END generated options
supports_check_mode: true
"""

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.perfgroup_engine import converge, options
from ansible.module_utils.perfgroup_engine import facts as facts_mod
from ansible.module_utils.perfgroup_engine import findings as findings_mod
from ansible.module_utils.perfgroup_engine.errors import RefusedError


def main() -> None:
    module = AnsibleModule(argument_spec=options.argument_spec("audit"), supports_check_mode=True)
    try:
        desired = facts_mod.audit_target(module.params["group"], module.params["dest"] or None)
    except RefusedError as error:
        module.fail_json(msg=str(error))
    node = facts_mod.read(desired)
    found = findings_mod.audit(node, desired)
    if module.params["functional"]:
        found += converge.functional_findings(desired)
    report = findings_mod.report(node, desired, found)
    module.exit_json(changed=False, ansible_facts={"perf_users_audit": report})


if __name__ == "__main__":
    main()
