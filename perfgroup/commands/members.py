"""perfgroup members."""

from __future__ import annotations

from typing import Any, Callable

import click

from .. import output
from .common import (
    LOCK_WAIT,
    PerfgroupCommand,
    dry_run_option,
    engine_options,
    json_option,
    on_wait,
    require_root,
)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def members() -> None:
    """List, add or remove members of the perf group (local groups; directory groups are read-only).

    A new membership applies from the member's next login, or in a shell started with
    `newgrp perf_users`.
    """


def subcommand(name: str) -> Callable[[Callable[..., Any]], click.Command]:
    return members.command(name, cls=PerfgroupCommand, exit_table="members")


@subcommand("list")
@engine_options("members")
@json_option
def members_list(group: str, as_json: bool) -> None:
    """Members of the group (explicit and by primary gid)."""
    from ..engine import members as members_mod

    data = members_mod.listing(group)
    if as_json:
        output.emit_json(data)
        return
    output.say(f"{output.escape(group)} (gid {data['gid']}, {data['source']}):")
    for name in data["members"]:  # type: ignore[attr-defined]
        output.say(f"  {output.escape(name)}")
    for name in data["primary_members"]:  # type: ignore[attr-defined]
        output.say(f"  {output.escape(name)} (primary group)")


def _change_members(group: str, users: tuple[str, ...], add: bool, dry_run: bool) -> None:
    from ..engine import apply
    from ..engine import members as members_mod

    require_root("members")
    planned = members_mod.read_and_plan(group, list(users), add)  # refuse before taking the lock
    if dry_run:
        for action in planned:
            output.say(f"  would {output.escape(action.summary)}")
        if not planned:
            output.say("nothing to change")
        return
    changed: list[str] = []
    if planned:
        with apply.node_lock(LOCK_WAIT, on_wait):
            changed = members_mod.change(group, list(users), add)
    verb = "added" if add else "removed"
    output.say(f"{verb}: {output.escape(', '.join(changed))}" if changed else "unchanged")
    if add and changed:
        output.say("note: a membership applies from the member's next login (or `newgrp`)")
    if not add:
        for note in members_mod.remaining(group, list(users)):
            output.say(f"note: {output.escape(note)}")


@subcommand("add")
@engine_options("members")
@dry_run_option
@click.argument("users", nargs=-1, required=True)
def members_add(group: str, users: tuple[str, ...], dry_run: bool) -> None:
    """Add USERS to the group."""
    _change_members(group, users, add=True, dry_run=dry_run)


@subcommand("remove")
@engine_options("members")
@dry_run_option
@click.argument("users", nargs=-1, required=True)
def members_remove(group: str, users: tuple[str, ...], dry_run: bool) -> None:
    """Remove USERS from the group."""
    _change_members(group, users, add=False, dry_run=dry_run)
