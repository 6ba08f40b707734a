"""`perfgroup-node`: the node-side entry point, installed by setup as /usr/local/sbin/perfgroup-node.

Standard library only, Python 3.8+: it runs with the node's own python3 from boot units, package
hooks, NHC and the textfile timer. Same engine, same lock, same findings and exit codes as the CLI;
no second implementation:

  audit --group G [--dest P] [--format text|json|nagios|prometheus] [--textfile-dir DIR]
  heal  --group G [--if-source-changed]     re-converge from the setup record
"""

from __future__ import annotations

import grp
import os
import sys

from . import errors
from .desired import NodeArtifact
from .errors import PerfgroupError, RefusedError
from .finding import OK
from .options import BY_NAME
from .report_formats import escape

TYPE_CHECKING = False  # as typing.TYPE_CHECKING (mypy knows the name), without importing typing at run time
if TYPE_CHECKING:
    import argparse

FORMATS = BY_NAME["format"].choices  # one definition: the options table


def parser(command: str) -> argparse.ArgumentParser:
    import argparse  # only when plain_audit_args cannot read the arguments

    class _Parser(argparse.ArgumentParser):
        """Bad arguments: one stderr line and the command's documented code (audit: UNKNOWN, 3)."""

        def error(self, message: str) -> None:  # type: ignore[override]
            sys.stderr.write(f"perfgroup-node: {escape(message)}\n")
            sys.exit(errors.exit_code(command, errors.REFUSED))

    top = _Parser(prog="perfgroup-node", description=__doc__.split("\n\n")[0])
    sub = top.add_subparsers(dest="command", parser_class=_Parser)
    sub.required = True
    audit = sub.add_parser("audit", help="check this node (or with --format prometheus, write the textfile)")
    audit.add_argument("--group", required=True)
    audit.add_argument("--dest")
    audit.add_argument("--format", choices=FORMATS, default="text")
    audit.add_argument("--textfile-dir", help="with --format prometheus: write GROUP's .prom file there, atomically")
    heal = sub.add_parser("heal", help="re-converge this node from the setup record")
    heal.add_argument("--group", required=True)
    heal.add_argument("--if-source-changed", action="store_true",
                      help="do nothing (exit 0) unless the source perf changed or the copy is stale or lacks capabilities")
    return top


def audit_output(group: str, dest: str | None, fmt: str, textfile_dir: str | None) -> tuple[str, str]:
    """(what to print, status) of a static audit in any format: the one sequence behind
    perfgroup-node audit and the CLI's click-free audit (with --textfile-dir, prometheus text is
    written there and nothing is printed)."""
    from . import facts as facts_mod
    from . import findings as findings_mod

    desired = facts_mod.audit_target(group, dest)
    facts = facts_mod.read(desired)
    found = findings_mod.audit(facts, desired)
    report = findings_mod.report(facts, desired, found)
    if fmt == "text":
        from .report_formats import text

        return text(report), findings_mod.worst(found)
    import time

    from .report_formats import machine_output

    return machine_output(fmt, report, desired.group, textfile_dir, time.time()), findings_mod.worst(found)


def run_audit(group: str, dest: str | None, fmt: str, textfile_dir: str | None) -> int:
    printed, status = audit_output(group, dest, fmt, textfile_dir)
    sys.stdout.write(printed)
    return errors.exit_code("audit", status)


def recorded_artifacts(state: object) -> tuple[NodeArtifact, ...]:
    """The rendered artifacts setup recorded, as they are now, when still what setup wrote: heal
    cannot render (no jinja2 on nodes) but keeps them in the record. The entry point is re-made
    from this engine itself, and profile/sysctl from the engine's own renderers."""
    from . import node_files_rules
    from .host import read_text, sha256_text
    from .state import State

    assert isinstance(state, State)
    out = []
    for path, sha in state.files:
        if node_files_rules.is_entry_point(path) or not node_files_rules.owned(state.group, path):
            continue
        text = read_text(path, 16 << 20)
        if text is None or sha256_text(text) != sha:
            # Drifted or gone: heal cannot render it again (`perfgroup setup` does), but keeps it
            # in the record so audit goes on reporting it and remove still deletes it.
            out.append(NodeArtifact(path, "", kind="recorded", keep_sha256=sha))
            continue
        link = os.readlink(path) if os.path.islink(path) else ""
        out.append(NodeArtifact(path, text, 0o755 if os.access(path, os.X_OK) and not link else 0o644,
                                "recorded", link))
    return tuple(out)


def heal_target(group: str) -> object:
    """Desired from the setup record: what `perfgroup setup` was last asked for."""
    from .desired import Desired
    from .host import load_state
    from .paths import state_path
    from .validate import check_dest_path, check_name

    check_name("group", group)
    state, problem = load_state(state_path(group))
    if state is None:
        raise RefusedError(f"no usable setup record for group {group} ({state_path(group)} is {problem}): "
                           f"run `perfgroup setup --group {group}` first")
    if state.group != group:
        raise RefusedError(f"{state_path(group)} records group {state.group!r}, not {group!r}; refusing")
    check_dest_path(state.dest)
    try:
        grp.getgrnam(group)
        gid = None
    except KeyError:  # a stateless image without the group: recreate it with the recorded gid
        gid = state.gid if state.gid > 0 else None
    return Desired(
        group=group, dest=state.dest, gid=gid,
        caps_override=frozenset(state.caps) if state.caps_override else None,
        keep_paranoid=state.keep_paranoid, allow_privileged_group=True,
        allow_root_equivalent=bool(state.root_equivalent_caps),
        artifacts=recorded_artifacts(state), node_entry=True,
    )


def source_changed(desired: object) -> bool:
    """Whether an upgrade left work: the source perf is another file or other bytes than the record
    says, or the copy is not what setup installed, or lost its capabilities."""
    from . import facts as facts_mod
    from .desired import Desired

    assert isinstance(desired, Desired)
    facts = facts_mod.read(desired._replace(artifacts=(), node_entry=False))
    state = facts.state
    if state is None:
        return True
    return (
        facts.source.path != state.source or facts.source.sha256 != state.source_sha256
        or facts.copy.sha256 != state.copy_sha256 or facts.copy.caps is None
    )


def _say_err(message: str) -> None:
    sys.stderr.write(escape(message) + "\n")


def run_heal(group: str, if_source_changed: bool) -> int:
    from . import converge
    from .desired import Desired
    from .options import LOCK_WAIT_SECONDS

    if os.geteuid() != 0:
        raise RefusedError("heal changes groups and file capabilities: run it as root")
    desired = heal_target(group)
    assert isinstance(desired, Desired)
    if if_source_changed and not source_changed(desired):
        return errors.exit_code("heal", OK)
    result = converge.SetupResult()
    try:
        converge.setup(desired, dry_run=False, run_checks=False, lock_wait=LOCK_WAIT_SECONDS, result=result,
                       on_wait=_say_err)
    except errors.ConvergeError as error:
        done = f" (applied before it: {result.applied_summary()})" if result.applied else ""
        raise errors.ConvergeError(error.step, f"{str(error).split(': ', 1)[-1]}{done}") from None
    if result.applied:
        sys.stdout.write(f"perfgroup-node heal {escape(group)}: {escape(result.applied_summary())}\n")
    else:
        sys.stdout.write(f"perfgroup-node heal {escape(group)}: converged, nothing to change\n")
    return errors.exit_code("heal", OK)


AUDIT_OPTIONS = ("--group", "--dest", "--format", "--textfile-dir")


def plain_audit_args(argv: list[str]) -> dict[str, str] | None:
    """The options of `audit --group G [--dest P] [--format F] [--textfile-dir D]` written out in
    full (as NHC, the timer and the hooks write them), else None: anything else (abbreviations,
    --help, errors) goes to argparse. NHC and the textfile timer run this every few minutes on
    every node, and argparse with the gettext, locale and shutil it loads costs more than the
    checks themselves."""
    if argv[:1] != ["audit"] or len(argv) % 2 == 0:
        return None
    found: dict[str, str] = {}
    for option, value in zip(argv[1::2], argv[2::2]):
        if option not in AUDIT_OPTIONS or option in found or value.startswith("-"):
            return None
        found[option] = value
    if "--group" not in found or found.get("--format", "text") not in FORMATS:
        return None
    return found


def main(argv: list[str] | None = None) -> int:
    args_list = sys.argv[1:] if argv is None else argv
    plain = plain_audit_args(args_list)
    if plain is not None:
        command, group, if_source_changed = "audit", plain["--group"], False
        dest, fmt, textfile_dir = plain.get("--dest"), plain.get("--format", "text"), plain.get("--textfile-dir")
    else:
        args = parser("audit" if args_list[:1] == ["audit"] else "heal").parse_args(args_list)
        command, group = str(args.command), args.group
        if command == "audit":
            dest, fmt, textfile_dir = args.dest, args.format, args.textfile_dir
        else:
            if_source_changed = args.if_source_changed
    try:
        if command == "audit":
            if textfile_dir and fmt != "prometheus":
                raise RefusedError("--textfile-dir goes with --format prometheus")
            code = run_audit(group, dest, fmt, textfile_dir)
            if argv is None:  # the program itself (the launcher), not a caller that continues
                errors.exit_now(code)
            return code
        return run_heal(group, if_source_changed)
    except PerfgroupError as error:
        sys.stderr.write(f"perfgroup-node {command}: {escape(str(error))}\n")
        return errors.exit_code(command, error.outcome)
    except OSError as error:
        sys.stderr.write(f"perfgroup-node {command}: {escape(str(error))}\n")
        return errors.exit_code(command, errors.FAILED)


if __name__ == "__main__":
    sys.exit(main())
