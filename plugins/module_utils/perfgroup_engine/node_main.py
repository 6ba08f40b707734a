"""`perfgroup-node`: the node-side entry point, installed by setup as /usr/local/sbin/perfgroup-node.

Standard library only, Python 3.8+: it runs with the node's own python3 from boot units, package
hooks, NHC and the textfile timer. Same engine, same lock, same findings and exit codes as the CLI;
no second implementation:

  audit [--group G] [--dest P] [--format text|json|nagios|prometheus] [--textfile-dir DIR]
  heal  [--group G] [--if-source-changed]   re-converge from the setup record
  job-grant --group G --feature F [--paranoid N]   Slurm prolog: grant the job's user (jobs.py)
  job-revoke --group G (--job ID | --gone | --all)  Slurm epilog: revoke from the grant record
(G defaults to perf_users, as for the perfgroup command.)
"""

from __future__ import annotations

import os
import sys

from . import audit, errors
from .errors import PerfgroupError, RefusedError
from .finding import OK
from .options import BY_NAME, JOB_PARANOID_VALUES, OPTIONS, plain_args
from .report_formats import escape

TYPE_CHECKING = False  # as typing.TYPE_CHECKING (mypy knows the name), without importing typing at run time
if TYPE_CHECKING:
    import argparse

DEFAULT_GROUP = str(BY_NAME["group"].default)


def parser(command: str) -> argparse.ArgumentParser:
    import argparse  # the unusual argument forms only: plain_audit_args reads what NHC and the timer pass

    class _Parser(argparse.ArgumentParser):
        """Bad arguments: one stderr line and the command's documented code (audit: UNKNOWN, 3)."""

        def error(self, message: str) -> None:  # type: ignore[override]
            sys.stderr.write(f"perfgroup-node: {escape(message)}\n")
            sys.exit(errors.exit_code(command, errors.REFUSED))

    top = _Parser(prog="perfgroup-node", description=__doc__.split("\n\n")[0])
    sub = top.add_subparsers(dest="command", parser_class=_Parser)
    sub.required = True
    audit = sub.add_parser("audit", help="check this node (or with --format prometheus, write the textfile)")
    for option in OPTIONS:
        if "audit" in option.plain:
            audit.add_argument(option.cli_flag, default=option.default, choices=option.choices or None, help=option.help)
    heal = sub.add_parser("heal", help="re-converge this node from the setup record")
    heal.add_argument("--group", default=DEFAULT_GROUP, help=BY_NAME["group"].help)
    heal.add_argument("--if-source-changed", action="store_true",
                      help="do nothing (exit 0) unless the source perf changed or the copy is stale or lacks capabilities")
    return top


def run_audit(group: str, dest: str | None, fmt: str, textfile_dir: str | None) -> int:
    printed, status = audit.output(group, dest, fmt, textfile_dir)
    sys.stdout.write(printed)
    return errors.exit_code("audit", status)


def _say_err(message: str) -> None:
    sys.stderr.write(escape(message) + "\n")


def run_heal(group: str, if_source_changed: bool) -> int:
    from . import heal  # the heal subcommand: converge pulls in apply, subprocess and dataclasses

    done = heal.run(group, if_source_changed, on_wait=_say_err)
    if done:
        sys.stdout.write(f"perfgroup-node heal {escape(group)}: {escape(done)}\n")
    return errors.exit_code("heal", OK)


def job_parser(command: str) -> argparse.ArgumentParser:
    import argparse  # the job subcommands only: the prolog reaches Python only for jobs that asked

    class _Parser(argparse.ArgumentParser):
        def error(self, message: str) -> None:  # type: ignore[override]
            sys.stderr.write(f"perfgroup-node {command}: {escape(message)}\n")
            sys.exit(errors.exit_code(command, errors.REFUSED))

    top = _Parser(prog=f"perfgroup-node {command}")
    top.add_argument("--group", default=DEFAULT_GROUP, help=BY_NAME["group"].help)
    if command == "job-grant":
        top.add_argument("--feature", required=True, help=BY_NAME["job_feature"].help)
        top.add_argument("--paranoid", type=int, choices=JOB_PARANOID_VALUES, default=None,
                         help=BY_NAME["job_paranoid"].help)
    else:
        which = top.add_mutually_exclusive_group(required=True)
        which.add_argument("--job", help="the job whose grant record to revoke (the epilog's SLURM_JOB_ID)")
        which.add_argument("--gone", action="store_true",
                           help="every grant whose job has no process here or whose revoke did not finish")
        which.add_argument("--all", action="store_true", help="every grant of the group")
    return top


def run_job(command: str, args_list: list[str]) -> int:
    from . import jobs  # the job subcommands: apply, subprocess

    args = job_parser(command).parse_args(args_list)
    try:
        if command == "job-grant":
            lines = [jobs.grant(args.group, os.environ, args.feature, args.paranoid)]
        elif args.job is not None:
            lines = [jobs.revoke(args.group, args.job)]
        else:
            lines = jobs.revoke_all(args.group, gone_only=args.gone)
    except (PerfgroupError, OSError) as error:
        return refused(command, error)
    for line in lines:
        sys.stdout.write(f"perfgroup-node {command}: {escape(line)}\n")
    return errors.exit_code(command, OK)


def refused(command: str, error: Exception) -> int:
    """One line on stderr and the command's exit code: the outcome a PerfgroupError carries, or
    FAILED for an OSError."""
    sys.stderr.write(f"perfgroup-node {command}: {escape(str(error))}\n")
    outcome = error.outcome if isinstance(error, PerfgroupError) else errors.FAILED
    return errors.exit_code(command, outcome)


def main(argv: list[str] | None = None) -> int:
    args_list = sys.argv[1:] if argv is None else argv
    if args_list[:1] in (["job-grant"], ["job-revoke"]):
        return run_job(args_list[0], args_list[1:])
    plain = plain_args(args_list, "audit")
    if plain is not None:
        command, group, if_source_changed = "audit", plain.get("--group", DEFAULT_GROUP), False
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
    except (PerfgroupError, OSError) as error:
        return refused(command, error)


if __name__ == "__main__":
    sys.exit(main())
