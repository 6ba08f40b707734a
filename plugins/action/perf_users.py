"""Action plugin for perfgroup.hpc.perf_users: renders the node artifacts on the controller.

The boot unit, package hooks, perf wrapper, csh snippet, modulefiles and (when asked) the
Prometheus textfile timer and the NHC check are rendered here with jinja2 from the collection's
templates/ by the very function `perfgroup setup` uses (plugin_utils/artifacts.py is
perfgroup/artifacts.py), and handed to the module with the node entry point's files; the module's
engine picks those the node takes (node_files.select), writes and records them. Nodes need no
jinja2 and the engine never renders.
"""

from __future__ import annotations

from typing import Any

from ansible.module_utils.parsing.convert_bool import boolean
from ansible.plugins.action import ActionBase
from ansible_collections.perfgroup.hpc.plugins.module_utils.perfgroup_engine import node_files_facts
from ansible_collections.perfgroup.hpc.plugins.module_utils.perfgroup_engine.paths import default_dest
from ansible_collections.perfgroup.hpc.plugins.plugin_utils.artifacts import setup_artifacts

FIELDS = ("path", "content", "mode", "kind", "link", "requires")


def rendered(args: dict[str, Any]) -> list[dict[str, Any]]:
    """The module's `artifacts`: every candidate of a setup, then the entry point. ValueError for a
    value the templates do not take."""
    group = str(args.get("group") or "perf_users")
    dest = str(args.get("dest") or default_dest(group))
    items: list[Any] = list(setup_artifacts(group, dest, args.get("source") or None, args.get("textfile_dir") or None,
                                            boolean(args.get("nhc", False), strict=False),
                                            perf_shell=boolean(args.get("shell", False), strict=False),
                                            shell_caps=args.get("shell_caps") or None,
                                            job_feature=args.get("job_feature") or None,
                                            job_paranoid=None if args.get("job_paranoid") in (None, "")
                                            else int(args["job_paranoid"])))
    items += node_files_facts.entry_point(node_files_facts.read_engine_sources())
    return [{name: getattr(item, name) for name in FIELDS} for item in items]


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _supports_check_mode = True
    _supports_async = False

    def run(self, tmp: Any = None, task_vars: dict[str, Any] | None = None) -> dict[str, Any]:
        result = super().run(tmp, task_vars)
        args = dict(self._task.args)
        if "artifacts" in args or "artifacts_error" in args:
            result.update(failed=True, changed=False, perfgroup_result_kind="converge",
                          msg="artifacts and artifacts_error are set by the action plugin, not by a task")
            return result
        try:
            args["artifacts"] = rendered(args)
        except ValueError as error:
            # The module refuses with it, after the engine's own checks of the same values (whose
            # message names the option the administrator set).
            args["artifacts_error"] = str(error)
        result.update(self._execute_module(module_name="perfgroup.hpc.perf_users", module_args=args,
                                           task_vars=task_vars))
        # The echoed arguments would carry every rendered file (and the engine's sources) into
        # every result and log line.
        result.pop("invocation", None)
        return result
