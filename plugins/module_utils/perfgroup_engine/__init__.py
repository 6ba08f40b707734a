"""The perfgroup engine: facts, decisions and host changes for a privileged perf users group.

Standard library only, with relative imports only: Ansible ships this package to nodes as
module_utils, so the CLI and the Ansible module run the very same files.

Layers, lowest first. A module imports only from its own or a lower layer, at the top of the
file, with no cycle (tests/unit/test_layers.py). Imports inside a function are only for heavy
standard-library modules on the audit path and for entry points choosing a subcommand, each with
a one-line reason. A concern keeps one name across layers: access_facts / access_rules /
access_plan, reach_*, node_files_*, intent_*, shell_*.

  core     types, paths, options, errors, severities, record schema, pure parsers
  read     facts: reading the node, no side effects
  rules    findings and policy: pure judgments of facts
  plan     actions, the plan and record building: pure decisions of what to change
  write    apply (the one writer of node state), the audit's textfile, syslog
  flows    setup (converge), audit, heal, remove, members, verify
  entry    node_main (perfgroup-node), image (requests from `--root`)
"""

from __future__ import annotations

VERSION = "0.1.0"

LAYERS = {
    "core": ("tuples", "errors", "finding", "paths", "desired", "options", "capabilities", "validate", "state",
             "sysctl", "fstab", "profile"),
    "read": ("host", "perfsource", "acl", "trust", "access_facts", "reach_facts", "node_files_facts", "intent_facts",
             "shell_facts", "job_facts", "facts"),
    "rules": ("policy", "job_rules", "access_rules", "reach_rules", "node_files_rules", "shell_rules", "findings"),
    "plan": ("actions", "access_plan", "reach_plan", "node_files_plan", "intent_plan", "shell_plan",
             "plan", "plan_diff"),
    "write": ("log", "apply", "report_formats"),
    "flows": ("verify", "converge", "audit", "jobs", "heal", "remove", "members"),
    "entry": ("node_main", "image"),
}
