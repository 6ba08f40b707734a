"""The record setup leaves under /var/lib/perfgroup: what it made, so audit sees drift and remove
can undo exactly that and nothing else.

The record evolves: optional fields take the type's defaults, and records written by older
versions are migrated (MIGRATIONS), never rejected. tests/unit/data/ keeps a frozen record of
every schema, and a test loads each.
"""

from __future__ import annotations

from .capabilities import ROOT_EQUIVALENT_CAPS, sort_caps
from .tuples import NamedTuple

TYPE_CHECKING = False  # as typing.TYPE_CHECKING (mypy knows the name), without importing typing at run time
if TYPE_CHECKING:
    from typing import Any, Callable

SCHEMA = 2


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
    dest: str
    source: str
    source_sha256: str
    copy_sha256: str
    caps: tuple[str, ...]
    group_created: bool = False
    source_stat: StatKey | None = None
    copy_stat: StatKey | None = None
    copies: tuple[str, ...] = ()  # every copy path setup ever installed (dest changes leave none behind)
    created_dirs: tuple[str, ...] = ()
    caps_override: bool = False
    keep_paranoid: bool = False
    paranoid_before: int | None = None
    files: tuple[tuple[str, str], ...] = ()  # (path, sha256) of every file setup wrote
    members_added: tuple[str, ...] = ()
    updated_at: str = ""
    schema: int = SCHEMA
    tracefs_before: tuple[tuple[str, int, int], ...] = ()  # (mount point, mode, gid) before setup remounted it
    tracefs_kept: bool = False  # setup --no-tracefs: tracefs left as it was
    fstab_edits: tuple[tuple[str, str], ...] = ()  # (tracefs line in /etc/fstab before setup, line setup wrote)
    # (path, sha256, stat) of recorded files whose content had that sha256 when setup stat'ed
    # them: an audit re-reads and re-hashes only files whose stat changed since (as for the copy)
    file_stats: tuple[tuple[str, str, StatKey], ...] = ()
    # The root-equivalent capabilities this setup granted with --allow-root-equivalent (a set, not a
    # flag: audit reports any other root-equivalent capability on the copy as critical). Each setup
    # run decides it anew from its own input; it is never inherited from an earlier run.
    root_equivalent_caps: tuple[str, ...] = ()
    shell: bool = False  # setup --shell: perf-shell installed (its files are in `files`)
    shell_caps: tuple[str, ...] = ()  # --shell-caps: what sessions hold besides cap_perfmon

    def file_sha(self, path: str) -> str | None:
        return dict(self.files).get(path)

    def as_dict(self) -> dict[str, Any]:
        data = self._asdict()
        for key in ("source_stat", "copy_stat"):
            value = data[key]
            data[key] = value._asdict() if value is not None else None
        data["files"] = dict(self.files)
        data["file_stats"] = {path: {"sha256": sha, **key._asdict()} for path, sha, key in self.file_stats}
        return data

    def to_json(self) -> str:
        import json  # writing a record: setup's path, never the audit's

        return json.dumps(self.as_dict(), indent=2, sort_keys=True) + "\n"

    def same_as(self, other: State | None) -> bool:
        """Equal in everything but the time stamp (so a no-op run does not rewrite it)."""
        if other is None:
            return False
        return self._replace(updated_at="") == other._replace(updated_at="")


class StateError(ValueError):
    pass


_WHITESPACE = " \t\n\r"


class _Decoding:
    """What CPython's C JSON scanner reads from its context: json.JSONDecoder's defaults."""

    strict = True
    object_hook = None
    object_pairs_hook = None
    parse_float = float
    parse_int = int
    parse_constant = {"-Infinity": float("-inf"), "Infinity": float("inf"), "NaN": float("nan")}.__getitem__


def loads(text: str) -> Any:
    """json.loads(text), through the C scanner json.loads itself uses when there is one: the json
    package imports re (and enum), a quarter of a node audit's time. Anything but a clean parse
    is handed to json.loads, which raises its usual JSONDecodeError."""
    try:
        import _json  # the C scanner alone, without the json package (see above)
    except ImportError:
        _json = None  # type: ignore[assignment]
    if _json is not None:
        start = len(text) - len(text.lstrip(_WHITESPACE))
        try:
            value, end = _json.make_scanner(_Decoding())(text, start)  # type: ignore[arg-type]
        except Exception:
            # Any failure goes to json.loads: the scanner reports some syntax errors through
            # json.decoder, and where that is not imported yet (3.11) it fails with SystemError.
            pass
        else:
            if not text[end:].strip(_WHITESPACE):
                return value
    import json  # only for a record the C scanner refused (or none): to raise json's own error

    return json.loads(text)


def _from_schema_1(raw: dict[str, Any]) -> dict[str, Any]:
    """Schema 1 (perfgroup 0.1): profile/sysctl paths and hashes as fields, no copy history."""
    files = {raw.get("profile_path"): raw.get("profile_sha256"), raw.get("sysctl_path"): raw.get("sysctl_sha256")}
    out = {k: v for k, v in raw.items() if k not in (
        "profile_path", "profile_sha256", "sysctl_path", "sysctl_sha256", "caps_reason", "group_source", "notes")}
    out["files"] = {path: sha for path, sha in files.items() if path and sha}
    out["copies"] = [raw["dest"]] if raw.get("dest") else []
    # perfgroup 0.1 granted the pre-5.8 set without asking: nobody opted in to it.
    out["root_equivalent_caps"] = []
    out["schema"] = 2
    return out


MIGRATIONS: dict[int, Callable[[dict[str, Any]], dict[str, Any]]] = {1: _from_schema_1}


def _from_opt_in_flag(raw: dict[str, Any]) -> dict[str, Any]:
    """Schema 2 records written before root_equivalent_caps carry the opt-in as a flag: what it
    granted is the root-equivalent part of the recorded caps."""

    flag = raw.pop("root_equivalent_allowed", False)
    if "root_equivalent_caps" not in raw:
        raw["root_equivalent_caps"] = sort_caps(set(raw.get("caps") or ()) & ROOT_EQUIVALENT_CAPS) if flag is True else []
    return raw


def _stat_key(value: object) -> StatKey | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        raise StateError("stat entry is not an object")
    return StatKey(**{k: int(value[k]) for k in StatKey._fields})


def _migrate(raw: dict[str, Any]) -> dict[str, Any]:
    schema = raw.get("schema")
    while schema != SCHEMA:
        if not isinstance(schema, int) or schema not in MIGRATIONS:
            raise StateError(f"unknown schema {schema!r}")
        raw = MIGRATIONS[schema](raw)
        schema = raw.get("schema")
    return raw


def _typed(values: dict[str, Any]) -> dict[str, Any]:
    for key in ("created_dirs", "caps", "members_added", "copies", "root_equivalent_caps", "shell_caps"):
        if key in values:
            values[key] = tuple(str(item) for item in values[key])
    if "files" in values:
        if not isinstance(values["files"], dict):
            raise StateError("files is not an object")
        values["files"] = tuple(sorted((str(k), str(v)) for k, v in values["files"].items()))
    for key in ("source_stat", "copy_stat"):
        values[key] = _stat_key(values.get(key))
    if "file_stats" in values:
        if not isinstance(values["file_stats"], dict):
            raise StateError("file_stats is not an object")
        values["file_stats"] = tuple(sorted(
            (str(path), str(entry["sha256"]), _stat_key({k: entry[k] for k in StatKey._fields}))
            for path, entry in values["file_stats"].items()
        ))
    if "tracefs_before" in values:
        values["tracefs_before"] = tuple((str(p), int(m), int(g)) for p, m, g in values["tracefs_before"])
    if "fstab_edits" in values:
        values["fstab_edits"] = tuple((str(before), str(written)) for before, written in values["fstab_edits"])
    return values


REQUIRED = tuple(name for name in State._fields if name not in State._field_defaults)


def parse(text: str) -> State:
    """Parse state JSON; raise StateError with a short reason when it is not a valid record."""
    try:
        raw = loads(text)
    except ValueError as error:  # json.JSONDecodeError
        msg, line = getattr(error, "msg", str(error)), getattr(error, "lineno", "?")
        raise StateError(f"not JSON ({msg} at line {line})") from None
    if not isinstance(raw, dict):
        raise StateError("not a JSON object")
    raw = _from_opt_in_flag(_migrate(raw))
    missing = [name for name in REQUIRED if name not in raw]
    if missing:
        raise StateError(f"missing {', '.join(missing)}")
    try:
        values = _typed({k: v for k, v in raw.items() if k in State._fields})
        state = State(**values)
    except (TypeError, KeyError, ValueError, AttributeError) as error:
        raise StateError(f"malformed record ({error})") from None
    if not isinstance(state.gid, int) or not isinstance(state.dest, str) or not isinstance(state.group, str):
        raise StateError("malformed record (group, gid or dest)")
    return state
