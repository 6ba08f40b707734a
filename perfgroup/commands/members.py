"""perfgroup members."""

from __future__ import annotations

import click

from .. import output
from ..engine.errors import ConvergeError, LockedError, RefusedError
from .common import (
    EXIT_BUSY,
    EXIT_FAILED,
    EXIT_REFUSED,
    LOCK_WAIT,
    fail,
    on_wait,
    require_root,
)


@click.group()
def members() -> None:
    """List, add or remove members of the perf group (local groups; directory groups are read-only)."""


@members.command("list")
@click.option("--group", default="perf_users", show_default=True)
@click.option("--json", "as_json", is_flag=True)
def members_list(group: str, as_json: bool) -> None:
    """Members of the group (explicit and by primary gid)."""
    from ..engine import members as members_mod

    try:
        data = members_mod.listing(group)
    except RefusedError as error:
        fail(EXIT_REFUSED, str(error))
    if as_json:
        output.emit_json(data)
        return
    output.say(f"{group} (gid {data['gid']}, {data['source']}):")
    for name in data["members"]:  # type: ignore[attr-defined]
        output.say(f"  {name}")
    for name in data["primary_members"]:  # type: ignore[attr-defined]
        output.say(f"  {name} (primary group)")


def _change_members(group: str, users: tuple[str, ...], add: bool) -> None:
    from ..engine import members as members_mod
    from ..engine.apply import node_lock

    require_root("members")
    try:
        members_mod.check(group, list(users))  # refuse before taking the lock
        with node_lock(LOCK_WAIT, on_wait):
            changed = members_mod.change(group, list(users), add)
    except LockedError as error:
        fail(EXIT_BUSY, str(error))
    except RefusedError as error:
        fail(EXIT_REFUSED, str(error))
    except ConvergeError as error:
        fail(EXIT_FAILED, str(error))
    verb = "added" if add else "removed"
    output.say(f"{verb}: {', '.join(changed)}" if changed else "unchanged")
    if add and changed:
        output.say("note: a membership applies from the member's next login (or `newgrp`)")


@members.command("add")
@click.option("--group", default="perf_users", show_default=True)
@click.argument("users", nargs=-1, required=True)
def members_add(group: str, users: tuple[str, ...]) -> None:
    """Add USERS to the group."""
    _change_members(group, users, add=True)


@members.command("remove")
@click.option("--group", default="perf_users", show_default=True)
@click.argument("users", nargs=-1, required=True)
def members_remove(group: str, users: tuple[str, ...]) -> None:
    """Remove USERS from the group."""
    _change_members(group, users, add=False)

