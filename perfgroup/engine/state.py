"""The record setup leaves under /var/lib/perfgroup: what it made, so audit sees drift and remove
can undo exactly that and nothing else."""


import json
from typing import NamedTuple

SCHEMA = 1


class StatKey(NamedTuple):
    """Identity of a file's content without reading it: any write or chmod changes ctime."""

    dev: int
    ino: int
    size: int
    mtime_ns: int
    ctime_ns: int


class State(NamedTuple):
    group: str
    gid: int
    group_created: bool
    group_source: str  # "local" or "directory"
    dest: str
    created_dirs: tuple[str, ...]
    source: str
    source_sha256: str
    source_stat: StatKey | None
    copy_sha256: str
    copy_stat: StatKey | None
    caps: tuple[str, ...]
    caps_reason: str
    caps_override: bool
    keep_paranoid: bool
    paranoid_before: int | None
    profile_path: str
    profile_sha256: str
    sysctl_path: str | None
    sysctl_sha256: str | None
    members_added: tuple[str, ...] = ()
    updated_at: str = ""
    schema: int = SCHEMA
    notes: tuple[str, ...] = ()

    def as_dict(self) -> dict[str, object]:
        data = self._asdict()
        for key in ("source_stat", "copy_stat"):
            value = data[key]
            data[key] = value._asdict() if value is not None else None
        return data

    def to_json(self) -> str:
        return json.dumps(self.as_dict(), indent=2, sort_keys=True) + "\n"

    def same_as(self, other: "State | None") -> bool:
        """Equal in everything but the time stamp (so a no-op run does not rewrite it)."""
        if other is None:
            return False
        return self._replace(updated_at="") == other._replace(updated_at="")


class StateError(ValueError):
    pass


def _stat_key(value: object) -> StatKey | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        raise StateError("stat entry is not an object")
    return StatKey(**{k: int(value[k]) for k in ("dev", "ino", "size", "mtime_ns", "ctime_ns")})


def parse(text: str) -> State:
    """Parse state JSON; raise StateError with a short reason when it is not a valid record."""
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as error:
        raise StateError(f"not JSON ({error.msg} at line {error.lineno})") from None
    if not isinstance(raw, dict):
        raise StateError("not a JSON object")
    if raw.get("schema") != SCHEMA:
        raise StateError(f"unknown schema {raw.get('schema')!r}")
    known = set(State._fields)
    missing = sorted(name for name in known if name not in raw and name not in ("members_added", "notes", "updated_at"))
    if missing:
        raise StateError(f"missing {', '.join(missing)}")
    try:
        values = {k: v for k, v in raw.items() if k in known}
        for key in ("created_dirs", "caps", "members_added", "notes"):
            values[key] = tuple(str(item) for item in values.get(key, ()))
        values["source_stat"] = _stat_key(values["source_stat"])
        values["copy_stat"] = _stat_key(values["copy_stat"])
        state = State(**values)
    except (TypeError, KeyError, ValueError) as error:
        raise StateError(f"malformed record ({error})") from None
    if not isinstance(state.gid, int) or not isinstance(state.dest, str):
        raise StateError("malformed record (gid or dest)")
    return state
