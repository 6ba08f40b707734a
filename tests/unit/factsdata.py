"""Plain-data NodeFacts for unit tests: a converged node, and helpers to bend it."""

from __future__ import annotations

from typing import Any

from perfgroup.engine import profile, sysctl
from perfgroup.engine.access_facts import AccessFacts
from perfgroup.engine.acl import GROUP_OBJ, MASK, OTHER, USER_OBJ, Acl, AclEntry
from perfgroup.engine.capabilities import decode, encode
from perfgroup.engine.desired import Desired
from perfgroup.engine.facts import CopyFacts, GroupFacts, NodeFacts, PathFacts, SourceFacts, TextFacts
from perfgroup.engine.paths import default_dest
from perfgroup.engine.plan import planned_files
from perfgroup.engine.reach_facts import ReachFacts
from perfgroup.engine.reach_plan import render_dropin
from perfgroup.engine.state import State, StatKey

GID = 995
SHA = "5" * 64
DEST = default_dest("perf_users")
KEY = StatKey(1, 2, 3, 4, 5)


def replace(value: Any, **changes: Any) -> Any:
    """dataclasses.replace for the engine's NamedTuples."""
    return value._replace(**changes)


def desired(**changes: Any) -> Desired:
    return replace(Desired(group="perf_users", dest=DEST), **changes)


def dirs(**overrides: PathFacts) -> tuple[PathFacts, ...]:
    chain = []
    for path in ("/usr/local/libexec/perfgroup/perf_users", "/usr/local/libexec/perfgroup",
                 "/usr/local/libexec", "/usr/local", "/usr", "/"):
        chain.append(overrides.get(path, PathFacts(path, "dir", 0, 0, 0o755, 2)))
    return tuple(chain)


CAPS = ("cap_ipc_lock", "cap_perfmon", "cap_syslog")


def state(**changes: Any) -> State:
    want = desired()
    base = State(
        group="perf_users", gid=GID, group_created=True, dest=DEST, copies=(DEST,),
        created_dirs=("/usr/local/libexec/perfgroup", "/usr/local/libexec/perfgroup/perf_users"),
        source="/usr/bin/perf", source_sha256=SHA, source_stat=KEY, copy_sha256=SHA, copy_stat=KEY,
        caps=CAPS, caps_override=False, keep_paranoid=False, paranoid_before=2,
        files=tuple(sorted(planned_files(want))),
    )
    return replace(base, **changes)


def converged(**changes: Any) -> NodeFacts:
    want = desired()
    base = NodeFacts(
        kernel_release="6.1.0-18-amd64", cap_last_cap=40, paranoid=2, kptr_restrict=0, lockdown=None, selinux=None,
        group=GroupFacts("perf_users", GID, ("alice",), local=True),
        copy=CopyFacts(
            node=PathFacts(DEST, "file", 0, GID, 0o750, 1, KEY), is_elf=True,
            caps=decode(encode(frozenset(CAPS))), sha256=SHA,
        ),
        dirs=dirs(), nosuid=False,
        source=SourceFacts(requested="/usr/bin/perf", path="/usr/bin/perf", sha256=SHA, key=KEY),
        profile=TextFacts(want.profile_path, profile.render("perf_users", want.dest_dir)),
        sysctl_dropin=TextFacts(want.sysctl_path, sysctl.render_dropin("perf_users", 2)),
        persisted_paranoid=2, persisted_in=want.sysctl_path, state=state(), state_error=None,
        users={"alice": True, "bob": True},
        recorded_files=tuple((path, sha) for path, sha in sorted(planned_files(want))),
    )
    return replace(base, **changes)


def with_copy(facts: NodeFacts, **changes: Any) -> NodeFacts:
    node_changes = {k: v for k, v in changes.items() if k in {"kind", "uid", "gid", "mode", "nlink"}}
    copy_changes = {k: v for k, v in changes.items() if k not in node_changes}
    node = replace(facts.copy.node, **node_changes)
    return replace(facts, copy=replace(facts.copy, node=node, **copy_changes))


def caps(*names: str, effective: bool = True) -> Any:
    return decode(encode(frozenset(names), effective=effective))


def fresh() -> NodeFacts:
    return replace(
        with_copy(converged(), kind="missing"), group=GroupFacts("perf_users", None), state=None, state_error="missing",
        dirs=tuple(d if d.path in ("/usr/local", "/usr", "/") else PathFacts(d.path, "missing") for d in dirs()),
        profile=TextFacts("p", None), sysctl_dropin=TextFacts("s", None), persisted_paranoid=None,
    )


# -- access (test_access_*.py) ---------------------------------------------------------------------

def want() -> Desired:
    return Desired(group="perf_users", dest=default_dest("perf_users"))


def acl(path: str, kind: str, *named: AclEntry, mask: int = 7) -> Acl:
    return Acl(path, kind, (AclEntry(USER_OBJ, 7), *named, AclEntry(GROUP_OBJ, 5), AclEntry(MASK, mask),
                            AclEntry(OTHER, 0)))


def with_access(**changes: object) -> object:
    return converged(access=AccessFacts(**changes))  # type: ignore[arg-type]


# -- reach (test_reach_*.py) ----------------------------------------------------------------------
TRACING = "/sys/kernel/tracing"
CLOSED = ReachFacts(tracefs=((TRACING, 0o700, 0),), systemd=True, mlock_kb=516, cpus=2)
OPENED = CLOSED._replace(tracefs=((TRACING, 0o750, GID),), dropin=render_dropin("perf_users", GID))
