"""Setup, audit and remove in a node image (`perfgroup setup|audit|remove --root DIR`), run INSIDE the image.

The controller (perfgroup/image_root.py) stages this engine in the image and starts the image's
own python3 chrooted into it, in a private mount namespace without /proc. So the group goes into
the image's /etc/group through the image's groupadd and NSS, the source perf is the image's, and
nothing of the build host is read or changed. The request (what `Desired` to reach) comes as JSON
on stdin, the answer goes as one JSON document to stdout: the same document `setup --json` and
`audit --json` print, plus an "error" the controller turns back into the same exit code.
"""

from __future__ import annotations

import json
import sys
from typing import Any, Dict

from .desired import Desired, NodeArtifact
from .errors import FAILED, PerfgroupError

Document = Dict[str, Any]


def desired_to_dict(desired: Desired) -> Document:
    data = desired._asdict()
    data["members"] = list(desired.members)
    data["caps_override"] = sorted(desired.caps_override) if desired.caps_override is not None else None
    data["artifacts"] = [artifact._asdict() for artifact in desired.artifacts]
    data["shell_extra_caps"] = sorted(desired.shell_extra_caps)
    return data


def desired_from_dict(data: Document) -> Desired:
    fields = dict(data)
    fields["members"] = tuple(fields.get("members") or ())
    caps = fields.get("caps_override")
    fields["caps_override"] = frozenset(caps) if caps is not None else None
    fields["artifacts"] = tuple(NodeArtifact(**artifact) for artifact in fields.get("artifacts") or ())
    fields["shell_extra_caps"] = frozenset(fields.get("shell_extra_caps") or ())
    fields["image"] = True
    return Desired(**{name: value for name, value in fields.items() if name in Desired._fields})


def run_setup(desired: Desired, dry_run: bool, lock_wait: float) -> Document:
    from . import converge  # the setup request: an audit's would not need it

    result = converge.SetupResult()
    try:
        converge.setup(desired, dry_run, run_checks=False, lock_wait=lock_wait, result=result)
    except PerfgroupError as error:
        return {**converge.setup_document(result, dry_run, str(error)), "outcome": error.outcome}
    return {**converge.setup_document(result, dry_run, None), "outcome": "ok"}


def run_audit(group: str, dest: str | None) -> Document:
    """The image's own record says where the copy is (audit_target reads it inside the chroot)."""
    from . import audit  # the audit request: setup's would pull converge in

    document, _ = audit.report(group, dest, image=True)
    document["outcome"] = "ok"
    return document


def run_remove(group: str, dry_run: bool, lock_wait: float) -> Document:
    from . import remove  # the remove request: setup's and audit's would not need it

    steps, done, notes = remove.run(group, dry_run, lock_wait)
    return {**remove.document(steps, done, notes, dry_run), "outcome": "ok"}


def handle(request: Document) -> Document:
    if request["command"] == "setup":
        return run_setup(desired_from_dict(request["desired"]), bool(request.get("dry_run")),
                         float(request.get("lock_wait", 0)))
    if request["command"] == "audit":
        return run_audit(str(request["group"]), request.get("dest"))
    if request["command"] == "remove":
        return run_remove(str(request["group"]), bool(request.get("dry_run")), float(request.get("lock_wait", 0)))
    raise ValueError(f"unknown command {request['command']!r}")


def main() -> int:
    try:
        document = handle(json.load(sys.stdin))
    except PerfgroupError as error:
        document = {"outcome": error.outcome, "error": str(error)}
    except (ValueError, KeyError, TypeError) as error:
        document = {"outcome": FAILED, "error": f"bad request from the controller: {error}"}
    sys.stdout.write(json.dumps(document) + "\n")
    return 0
