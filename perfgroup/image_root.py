"""`--root DIR`: run the engine inside a node image (Warewulf image, xCAT rootimg, any Linux root).

The engine is staged in the image and run by the image's own /usr/bin/python3, chrooted into
DIR, in a private mount namespace where only /dev is bound in (groupadd and friends want
/dev/null) and /proc is not: the engine reads the image's /etc/group, perf and files, never the
build host's kernel. It answers with one JSON document (perfgroup/engine/image.py).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from typing import Any

from .engine import errors, node_files_facts
from .engine.errors import ConvergeError, LockedError, PerfgroupError, RefusedError
from .engine.finding import OK

IMAGE_PYTHON = "/usr/bin/python3"
# Runs in the image: refuse an interpreter older than the node floor with the same one-line answer.
BOOTSTRAP = """\
import json, sys
if sys.version_info < (3, 8):
    sys.stdout.write(json.dumps({"outcome": "refused", "error": "the image's python3 is %d.%d; perfgroup needs 3.8 or later on nodes" % sys.version_info[:2]}) + "\\n")
    sys.exit(0)
sys.path.insert(0, sys.argv[1])
from perfgroup_engine.image import main
sys.exit(main())
"""
# In the new mount namespace: /dev bound in when the image has a /dev, then chroot.
NAMESPACE_SCRIPT = 'if [ -d "$1/dev" ]; then mount --rbind /dev "$1/dev"; fi; root=$1; shift; exec chroot "$root" "$@"'
ERRORS = {errors.REFUSED: RefusedError, errors.BUSY: LockedError}


def check_root(root: str) -> str:
    """The image directory, absolute and real; RefusedError (exit 2, nothing touched) otherwise."""
    if not os.path.isabs(root):
        raise RefusedError(f"--root {root}: give an absolute path")
    real = os.path.realpath(root)
    if real == "/":
        raise RefusedError("--root /: that is this machine; run setup without --root")
    if not os.path.isdir(real):
        raise RefusedError(f"--root {root}: no such directory")
    if not os.path.isdir(os.path.join(real, "etc")):
        raise RefusedError(f"--root {root} has no etc/: not a Linux root")
    if not os.path.lexists(os.path.join(real, IMAGE_PYTHON.lstrip("/"))):
        raise RefusedError(f"--root {root} has no {IMAGE_PYTHON}: the boot unit and perfgroup-node need the image's "
                           "python3 (3.8 or later); install it in the image first")
    return real


def run(root: str, request: dict[str, Any]) -> dict[str, Any]:
    """Send one request to the engine inside the image; its JSON answer (error outcomes included)."""
    real = check_root(root)
    sources = node_files_facts.read_engine_sources()
    if not sources:
        raise ConvergeError("stage_engine", "cannot read this engine's sources to stage them in the image")
    stage = tempfile.mkdtemp(prefix=".perfgroup-stage-", dir=real)
    try:
        os.mkdir(os.path.join(stage, "perfgroup_engine"), 0o700)
        for name, text in sources:
            with open(os.path.join(stage, "perfgroup_engine", name), "w", encoding="utf-8") as handle:
                handle.write(text)
        inside = "/" + os.path.relpath(stage, real)
        argv = ["unshare", "--mount", "--propagation", "private", "sh", "-c", NAMESPACE_SCRIPT, "sh", real,
                IMAGE_PYTHON, "-I", "-c", BOOTSTRAP, inside]
        env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8",
               **{k: v for k, v in os.environ.items() if k.startswith("PERFGROUP_TEST_")}}
        try:
            done = subprocess.run(argv, input=json.dumps(request), capture_output=True, text=True, env=env,
                                  check=False)
        except OSError as error:
            raise ConvergeError("enter_image", f"cannot run {argv[0]}: {error.strerror}") from None
    finally:
        shutil.rmtree(stage, ignore_errors=True)
    lines = done.stdout.strip().splitlines()
    try:
        answer = json.loads(lines[-1]) if lines else None
    except ValueError:
        answer = None
    if done.returncode != 0 or not isinstance(answer, dict):
        detail = (done.stderr.strip().splitlines() or [f"exit {done.returncode}"])[-1]
        raise ConvergeError("enter_image", f"the engine did not run in {root}: {detail}")
    return answer


def raise_for(answer: dict[str, Any], message: str) -> None:
    """The error class behind an answer's outcome, so the command's exit table applies unchanged."""
    outcome = answer.get("outcome", errors.FAILED)
    if outcome == OK:
        return
    error: PerfgroupError = ERRORS.get(outcome, PerfgroupError)(message)
    raise error
