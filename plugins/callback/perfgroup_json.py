"""stdout callback: one JSON document at the end, {"plays": [...], "stats": {...}}.

ansible-core ships no JSON callback of its own (it lives in ansible.posix); `perfgroup deploy`
and the tests need a machine-readable result without pulling in another collection. Use it as
ANSIBLE_STDOUT_CALLBACK=perfgroup.hpc.perfgroup_json.
"""

from __future__ import annotations

DOCUMENTATION = r"""
name: perfgroup_json
type: stdout
short_description: JSON result of a playbook run, with a progress line per host on stderr
description:
  - Prints one JSON document with every task's per-host results and the play stats; a play that
    matched no host is marked C(no_hosts_matched).
author:
  - perfgroup maintainers (@perfgroup)
"""

import json
import sys
from typing import Any

from ansible.plugins.callback import CallbackBase


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "stdout"
    CALLBACK_NAME = "perfgroup_json"

    def __init__(self) -> None:
        super().__init__()
        self.plays: list[dict[str, Any]] = []

    def v2_playbook_on_play_start(self, play: Any) -> None:
        self.plays.append({"play": {"name": play.get_name()}, "tasks": []})

    def v2_playbook_on_task_start(self, task: Any, is_conditional: bool) -> None:
        self.plays[-1]["tasks"].append({"task": {"name": task.get_name()}, "hosts": {}})

    def v2_playbook_on_no_hosts_matched(self) -> None:
        # `perfgroup deploy` turns a play that targets nothing into one clear error.
        self.plays[-1]["no_hosts_matched"] = True

    def v2_playbook_on_handler_task_start(self, task: Any) -> None:
        self.plays[-1]["tasks"].append({"task": {"name": task.get_name(), "handler": True}, "hosts": {}})

    def _record(self, result: Any, **extra: Any) -> None:
        data = dict(result._result)
        data.update(extra)
        data.pop("invocation", None)
        host = result._host.get_name()
        self.plays[-1]["tasks"][-1]["hosts"][host] = data
        state = "unreachable" if extra.get("unreachable") else "failed" if data.get("failed") else (
            "changed" if data.get("changed") else "ok")
        sys.stderr.write(f"{host}: {state} ({result._task.get_name()})\n")
        sys.stderr.flush()

    def v2_runner_on_ok(self, result: Any) -> None:
        self._record(result)

    def v2_runner_on_failed(self, result: Any, ignore_errors: bool = False) -> None:
        self._record(result, failed=True)

    def v2_runner_on_unreachable(self, result: Any) -> None:
        self._record(result, unreachable=True, failed=True)

    def v2_runner_on_skipped(self, result: Any) -> None:
        self._record(result, skipped=True)

    def v2_playbook_on_stats(self, stats: Any) -> None:
        summary = {host: stats.summarize(host) for host in sorted(stats.processed)}
        sys.stdout.write(json.dumps({"plays": self.plays, "stats": summary}, default=str) + "\n")
