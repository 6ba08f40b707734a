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


def _change_members(group: str, users: tuple[str, ...], mode: str, dry_run: bool) -> None:
    from ..engine import apply
    from ..engine import members as members_mod

    require_root("members")
    planned = members_mod.read_and_plan(group, list(users), mode)  # refuse before taking the lock
    if dry_run:
        for action in planned:
            output.say(f"  would {output.escape(action.summary)}")
        if not planned:
            output.say("nothing to change")
        return
    added: list[str] = []
    removed: list[str] = []
    if planned:
        with apply.node_lock(LOCK_WAIT, on_wait):
            added, removed = members_mod.change(group, list(users), mode)
    for verb, names in (("added", added), ("removed", removed)):
        if names:
            output.say(f"{verb}: {output.escape(', '.join(names))}")
    if not added and not removed:
        output.say("unchanged")
    notes = ["a membership applies from the member's next login (or `newgrp`)"] if added else []
    if mode == "remove" or removed:  # sessions of people asked out keep the group until they end
        notes += members_mod.remaining(group, list(users) if mode == "remove" else removed)
    notes += members_mod.image_note(bool(added or removed))
    for note in notes:
        output.say(f"note: {output.escape(note)}")


@subcommand("add")
@engine_options("members")
@dry_run_option
@click.argument("users", nargs=-1, required=True)
def members_add(group: str, users: tuple[str, ...], dry_run: bool) -> None:
    """Add USERS to the group."""
    _change_members(group, users, "add", dry_run)


@subcommand("remove")
@engine_options("members")
@dry_run_option
@click.argument("users", nargs=-1, required=True)
def members_remove(group: str, users: tuple[str, ...], dry_run: bool) -> None:
    """Remove USERS from the group."""
    _change_members(group, users, "remove", dry_run)


@subcommand("sync")
@engine_options("members")
@dry_run_option
@click.argument("users", nargs=-1, required=True)
def members_sync(group: str, users: tuple[str, ...], dry_run: bool) -> None:
    """Make USERS the whole member list: add those missing, remove everyone else.

    The role's equivalent is perf_users_members with perf_users_members_exclusive: true (the
    default only ever adds). Removed members keep the group in sessions already running: the
    command names them.
    """
    _change_members(group, users, "sync", dry_run)
