"""The audit flow, once: read the node, judge it, render the report. perfgroup-node audit, the
CLI (plain and click), an image request and the Ansible audit module all run this sequence.

On the audit path (NHC and the textfile timer run it every few minutes on every node): nothing
here or below it imports dataclasses, json, argparse, subprocess or typing at import time.
"""

from __future__ import annotations

import time

from . import facts as facts_mod
from . import findings, report_formats
from .desired import Desired
from .finding import Finding

TYPE_CHECKING = False  # as typing.TYPE_CHECKING (mypy knows the name), without importing typing at run time
if TYPE_CHECKING:
    from typing import Callable, List

    Extra = Callable[[Desired], List[Finding]]


def report(group: str, dest: str | None = None, image: bool = False,
           extra: Extra | None = None) -> tuple[dict[str, object], str]:
    """(the audit document `audit --json` prints, its status). `extra` adds findings the static
    audit cannot make (--functional runs perf: the caller passes converge.functional_findings)."""
    desired = facts_mod.audit_target(group, dest)
    if image:
        desired = desired._replace(image=True)
    facts = facts_mod.read(desired)
    found = findings.audit(facts, desired)
    if extra is not None:
        found.extend(extra(desired))
    return findings.report(facts, desired, found), findings.worst(found)


def output(group: str, dest: str | None, fmt: str, textfile_dir: str | None) -> tuple[str, str]:
    """(what to print, status) of a static audit in any format (with --textfile-dir, prometheus
    text is written there and nothing is printed)."""
    document, status = report(group, dest)
    if fmt == "text":
        return report_formats.text(document), status
    return report_formats.machine_output(fmt, document, group, textfile_dir, time.time()), status
