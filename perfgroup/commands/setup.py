"""perfgroup setup."""

from __future__ import annotations

from typing import Any

from .. import output
from ..engine.errors import ConvergeError, PerfgroupError, RefusedError, converge_failure
from ..engine.validate import check_job_options, desired_from_input
from .common import LOCK_WAIT, Exit, command, dry_run_option, engine_options, json_option, on_wait, require_root


def _print_plan(plan: Any, dry_run: bool) -> None:
    _print_plan_document({"caps_text": plan.caps.text(), "caps_reason": plan.caps.reason, "notes": plan.notes,
                          "plan": [a.as_dict() for a in plan.actions]}, dry_run, "node")


@command("setup")
@engine_options("setup")
@dry_run_option
@json_option
def setup(root: str | None, verify: bool, dry_run: bool, as_json: bool, textfile_dir: str | None, nhc: bool,
          job_feature: str | None, job_paranoid: int | None, **given: Any) -> None:
    """Create the group, install the privileged perf copy, set its capabilities, verify.

    \b
    What it changes (each only if needed; the plan is printed first):
      - group GROUP (created with groupadd, or adopted if getent knows it: LDAP/SSSD groups
        are never shadowed by a local copy)
      - /usr/local/libexec/perfgroup/GROUP/perf: root:GROUP 0750 with file capabilities
        (cap_perfmon,cap_syslog,cap_ipc_lock on kernels with CAP_PERFMON)
      - /etc/profile.d/perfgroup-GROUP.sh and .csh: members get that perf first on PATH (next login)
      - /usr/local/bin/perf: a wrapper running that perf for members in every shell (login or
        not, batch jobs), the stock perf for everyone else (never replaces a site's own file)
      - modulefiles perf/privileged (Lmod Lua and Tcl) under /etc/lmod/modules and
        /etc/environment-modules/modules
      - tracefs mount options gid=GROUP,mode=0750, live and in a systemd drop-in for
        sys-kernel-tracing.mount (unless --no-tracefs): members read tracepoints
      - kernel.perf_event_paranoid set to 2 (raised from below, or lowered from Debian's 3 or
        Ubuntu's 4, which block the group), persisted in /etc/sysctl.d/90-perfgroup-GROUP.conf
        (unless --keep-paranoid)
      - /usr/local/sbin/perfgroup-node (+ the engine under /usr/local/lib/perfgroup): audit and
        heal with the node's python3; perfgroup-heal-GROUP.service, enabled, re-applies the setup
        at every boot; an APT (or DNF) hook refreshes the copy when perf is upgraded
      - with --textfile-dir DIR: perfgroup-textfile-GROUP.timer (enabled) writes the audit to
        DIR/perfgroup_GROUP.prom for node_exporter every 5 minutes
      - with --shell: perf-shell for members (/usr/local/bin/perf-shell, a root-owned helper
        /usr/local/libexec/perfgroup/GROUP/perf-shell, /etc/sudoers.d/perfgroup-GROUP checked
        with visudo): sessions whose processes hold cap_perfmon (docs/perf-shell.md)
      - with --nhc: /etc/nhc/scripts/perfgroup.nhc (check_perfgroup, for LBNL NHC); add the line
        `* || check_perfgroup GROUP` to /etc/nhc/nhc.conf
      - with --job-feature F: Slurm prolog/epilog /etc/slurm/{prolog,epilog}.d/50-perfgroup-GROUP:
        exclusive jobs asking for F (`sbatch -C F --exclusive`) get the privileged perf for the
        job; with --job-paranoid N also perf_event_paranoid=N for the job (docs/slurm.md)
      - /var/lib/perfgroup/GROUP.json: what was done, for audit and remove
    The packaged perf is never modified. A second run on a converged node changes nothing.

    \b
    --root DIR prepares a node image instead (Warewulf 4 image, xCAT osimage rootimg): the same
    files inside DIR, the group in DIR's own /etc/group (--gid, or a free gid of the image), the
    copy from DIR's perf, run by DIR's python3 chrooted into DIR. Nothing live: no sysctl, no
    tracefs remount, no verify (the image's kernel is not running). cpio-packed images lose file
    capabilities; the enabled boot unit restores them on every node at every boot.
    """
    from ..engine import converge

    desired = desired_from_input(**given)
    check_job_options(job_feature, job_paranoid)
    image_dir = _image_dir(root)
    desired = desired._replace(artifacts=rendered_artifacts(desired, textfile_dir, nhc, job_feature, job_paranoid))
    require_root("setup")
    if image_dir is not None:
        _setup_image(image_dir, desired._replace(image=True), dry_run, as_json)
        return
    result = converge.SetupResult()
    try:
        converge.setup(desired, dry_run, run_checks=verify, lock_wait=LOCK_WAIT, result=result,
                       on_plan=None if as_json else _print_plan, on_wait=on_wait)
    except ConvergeError as error:
        message = converge_failure(error, [action.summary for action in result.applied])
        _report_failure(result, dry_run, as_json, message)
        raise Exit("failed", message) from None
    except PerfgroupError as error:
        _report_failure(result, dry_run, as_json, str(error))
        raise
    if dry_run and result.would_install:
        _report_would_install(result, as_json)
        return
    failure = None
    if result.verify is not None and not result.verify.ok:
        failure = "verification failed: " + "; ".join(result.verify.lines())
    if as_json:
        output.emit_json(_setup_json(result, dry_run, failure))
    elif not dry_run:
        _print_outcome(result)
    if failure:
        raise Exit("failed", failure)


def rendered_artifacts(desired: Any, textfile_dir: str | None, nhc: bool, job_feature: str | None = None,
                       job_paranoid: int | None = None) -> tuple[Any, ...]:
    """Render every candidate node artifact (jinja2, here in the CLI: the engine stays standard
    library; the role's action plugin calls the same function) and hand them to the engine, which
    picks those this node takes (node_files.select), writes and records them."""
    from .. import artifacts
    from ..engine.desired import NodeArtifact

    try:
        rendered = artifacts.setup_artifacts(desired.group, desired.dest, desired.source, textfile_dir, nhc,
                                             perf_shell=desired.shell, shell_caps=",".join(sorted(desired.shell_extra_caps)),
                                             job_feature=job_feature, job_paranoid=job_paranoid)
    except ValueError as error:
        raise RefusedError(str(error)) from None
    return tuple(NodeArtifact(**item._asdict()) for item in rendered)


def _image_dir(root: str | None) -> str | None:
    if root is None:
        return None
    from ..image_root import check_root

    return check_root(root)


def _setup_image(image_dir: str, desired: Any, dry_run: bool, as_json: bool) -> None:
    """Setup inside a node image: the engine runs chrooted there and answers with setup's JSON."""
    from .. import image_root
    from ..engine.image import desired_to_dict

    answer = image_root.run(image_dir, {"command": "setup", "desired": desired_to_dict(desired),
                                        "dry_run": dry_run, "lock_wait": LOCK_WAIT})
    error = answer.get("error")
    if answer.get("failed_step"):
        error = converge_failure(error, [a["summary"] for a in answer.get("applied") or ()])
    if as_json:
        output.emit_json({k: v for k, v in answer.items() if k != "outcome"} | {"error": error, "image": image_dir})
    elif answer.get("plan") is not None and answer.get("caps_text"):
        _print_plan_document(answer, dry_run)
        if not dry_run and not error:
            applied = answer.get("applied") or []
            output.say(output.paint(f"changed: {len(applied)} steps applied", "yellow") if applied
                       else "changed: setup record written" if answer.get("state_written") else "unchanged")
            output.say(f"image {output.escape(image_dir)} prepared (no verify: its kernel is not running here)")
    image_root.raise_for(answer, error or "failed")


def _print_plan_document(answer: dict[str, Any], dry_run: bool, what: str = "image") -> None:
    from ..engine.plan import machine_wide

    actions = answer.get("plan") or []
    wide = machine_wide(actions)
    if wide:  # first: what changes for everyone, not only for members
        output.say(output.paint(f"machine-wide (for everyone on this {what}, not only members):", "yellow"))
        for line in wide:
            output.say(f"  - {output.escape(line)}")
    output.say(f"capabilities: {answer['caps_text']}  ({answer['caps_reason']})")
    for note in answer.get("notes") or []:
        output.say(f"note: {output.escape(note)}")
    if not actions:
        output.say(output.paint(f"nothing to change: the {what} is converged", "green"))
        return
    shown = _with_entry_point_as_one(actions)
    output.say(("would change" if dry_run else "plan") + f" ({len(actions)} steps):")
    for number, action in enumerate(shown, 1):
        output.say(f"  {number}. {output.escape(action['summary'])}")
        output.say(f"     why: {output.escape(action['why'])}")


def _with_entry_point_as_one(actions: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The node entry point's files (the engine copy and its launcher, ~40) as one line where the
    first of them stands: an administrator reads what changes, not the engine's file list."""
    from ..engine.node_files_rules import is_entry_point

    files = [a for a in actions if a.get("kind") == "write_file" and is_entry_point(str(a.get("target")))]
    if len(files) < 2:
        return actions
    first = actions.index(files[0])
    one = {**files[0], "summary": f"node entry point: {len(files)} files (perfgroup-node and its engine copy "
                                  "under /usr/local/lib/perfgroup)", "why": files[0]["why"]}
    rest = [a for a in actions if a not in files]
    return [*rest[:first], one, *rest[first:]]


def _report_failure(result: Any, dry_run: bool, as_json: bool, error: str) -> None:
    """A failed step after others were applied is still a change: say what was done."""
    if as_json:
        output.emit_json(_setup_json(result, dry_run, error))
    elif result.applied:
        output.say(output.paint(f"changed: {len(result.applied)} steps applied before the failure: "
                                f"{output.escape(result.applied_summary())}", "yellow"))


def _report_would_install(result: Any, as_json: bool) -> None:
    text = " ".join(result.would_install)
    if as_json:
        output.emit_json({"changed": False, "dry_run": True, "would_install_perf": text})
    else:
        output.say(f"would install perf with: {text}, then plan the rest")


def _setup_json(result: Any, dry_run: bool, error: str | None) -> dict[str, Any]:
    from ..engine.converge import setup_document

    return setup_document(result, dry_run, error)


def _print_outcome(result: Any) -> None:
    if result.installed_perf:
        output.say(f"installed perf: {' '.join(result.installed_perf)}")
    if result.applied:
        output.say(output.paint(f"changed: {len(result.applied)} steps applied", "yellow"))
    elif result.state_written:
        output.say("changed: setup record written")
    else:
        output.say("unchanged")
    if result.verify is not None:
        for line in result.verify.lines():
            output.say(f"verify: {output.escape(line)}")
        for line in result.verify.matrix():
            output.say(f"verify: {output.escape(line)}")
        if result.verify.ok:
            output.say(output.paint("verified", "green", bold=True))
