#!/usr/bin/python
"""Ansible module: the read-only perfgroup audit of a node, returned as facts in one round trip."""

from __future__ import annotations

DOCUMENTATION = r"""
module: perf_users_audit
short_description: Read-only audit of a privileged perf users group (perfgroup engine)
version_added: "0.1.0"
description:
  - The same findings as C(perfgroup audit) on the node, returned as C(ansible_facts.perf_users_audit)
    (the document C(perfgroup audit --json) prints).
  - Never changes the node. Without O(functional) it starts no process.
author:
  - perfgroup maintainers (@perfgroup)
# BEGIN generated options
options:
  group:
    description: >-
      Group whose members may run the privileged perf.
    type: str
    default: "perf_users"
  dest:
    description: >-
      Path of the privileged copy [default: from the setup record, else
      /usr/local/libexec/perfgroup/GROUP/perf].
    type: str
  functional:
    description: >-
      Also run perf as a member and as a non-member (needs root).
    type: bool
    default: false
# END generated options
attributes:
  check_mode:
    description: Can run in check_mode and return changed status prediction without modifying target.
    support: full
  diff_mode:
    description: Will return details on what has changed (or possibly needs changing in check_mode), when in diff mode.
    support: none
  facts:
    description: Action returns an C(ansible_facts) dictionary that will update existing host facts.
    support: full
  platform:
    description: Target OS/families that can be operated against.
    support: N/A
    platforms: posix
seealso:
  - module: perfgroup.hpc.perf_users
"""

EXAMPLES = r"""
- name: Read the perfgroup audit of this node
  perfgroup.hpc.perf_users_audit:
    group: perf_users

- name: Fail on anything critical, proving it with a real perf run
  perfgroup.hpc.perf_users_audit:
    group: perf_users
    functional: true
  register: audit
  failed_when: audit.ansible_facts.perf_users_audit.status == 'critical'
"""

RETURN = r"""
perfgroup_result_kind:
  description: Always C(audit); C(perfgroup audit -i) selects this module's results by it.
  returned: always
  type: str
  sample: audit
ansible_facts:
  description: Facts set on the host.
  returned: success
  type: complex
  contains:
    perf_users_audit:
      description:
        - The audit document, as C(perfgroup audit --json) prints it - group, dest, status
          (ok, warning, critical, unknown), exit_code (Nagios), findings (id, severity, message, fix),
          gid, group_local, members, copy_sha256, caps, kernel_release, cap_last_cap, os_release.
      returned: success
      type: dict
      sample: {"group": "perf_users", "status": "ok", "exit_code": 0, "findings": [], "gid": 2950}
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.perfgroup.hpc.plugins.module_utils.perfgroup_engine import audit, converge, options
from ansible_collections.perfgroup.hpc.plugins.module_utils.perfgroup_engine.errors import RefusedError

# Every result carries it: `perfgroup audit -i` selects results by it, not by task names.
KIND = "audit"


def main() -> None:
    module = AnsibleModule(argument_spec=options.argument_spec("audit"), supports_check_mode=True)
    extra = converge.functional_findings if module.params["functional"] else None
    try:
        report, _ = audit.report(module.params["group"], module.params["dest"] or None, extra=extra)
    except RefusedError as error:
        module.fail_json(msg=str(error), perfgroup_result_kind=KIND)
    module.exit_json(changed=False, ansible_facts={"perf_users_audit": report}, perfgroup_result_kind=KIND)


if __name__ == "__main__":
    main()
