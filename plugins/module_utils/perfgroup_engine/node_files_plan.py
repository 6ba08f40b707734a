"""Planning the node files (entry point and rendered artifacts): writes, links, retirements, the
refusal to overwrite a site's file, and their lines of the record (plan layer).
"""

from __future__ import annotations

from .actions import Action, CreateSymlink, DeleteFile, WriteFile
from .desired import NodeArtifact
from .errors import RefusedError
from .host import sha256_text
from .node_files_facts import NodeFileFacts, wanted
from .node_files_rules import CHECKS, is_entry_point, is_ours
from .paths import optional_paths


def plan(facts: NodeFileFacts, artifacts: tuple[NodeArtifact, ...], node_entry: bool, group: str = "",
         recorded: tuple[tuple[str, str], ...] = ()) -> list[Action]:
    """`recorded`: (path, sha256) of the files the setup record says perfgroup wrote."""

    now = {path: (text, link) for path, text, link in facts.present}
    actions: list[Action] = []
    for item in wanted(artifacts, facts.engine_sources, node_entry):
        text, link = now.get(item.path, (None, None))
        if item.keep_sha256:
            continue
        if item.link:
            if link != item.link:
                actions.append(CreateSymlink(item.path, f"{item.kind}: enable it", link_to=item.link,
                                             old=link or ("a file" if text is not None else None)))
        elif text != item.content or link is not None or item.path in facts.loose:
            why = "others could change it: written again, root's" if text == item.content and link is None else ""
            actions.append(WriteFile(item.path, why or f"{item.kind} artifact", content=item.content, old=text,
                                     step=f"write_{item.kind}", mode=item.mode, check=CHECKS.get(item.kind, ())))
    written = {item.path for item in wanted(artifacts, facts.engine_sources, node_entry)}
    actions += [DeleteFile(path, "bytecode someone other than root could change: python writes it again",
                           step="delete_file:bytecode") for path in sorted(facts.loose - written)]
    if artifacts and group:  # a full render without the optional kinds: retire what this group's setup installed
        paths = {item.path for item in artifacts}
        for path in optional_paths(group):
            text, link = now.get(path, (None, None))
            if path not in paths and path in dict(recorded) and (text is not None or link is not None) \
                    and perfgroups(path, text, group, recorded):
                actions.append(DeleteFile(path, "no longer asked for (setup without --textfile-dir/--nhc, "
                                                "role variable unset)", step="delete_file:retired"))
    return actions


def perfgroups(path: str, text: str | None, group: str, recorded: tuple[tuple[str, str], ...]) -> bool:
    """What is at `path` now (its text, None: nothing readable) is perfgroup's to replace or retire:
    the very content the record says setup wrote there, or a file marked as this group's. A path
    being in the record is not enough: a site may have put its own file there since (review finding 6)."""
    return text is None or sha256_text(text) == dict(recorded).get(path) or is_ours(text, group)


def refuse_foreign(facts: NodeFileFacts, artifacts: tuple[NodeArtifact, ...], group: str,
                   recorded: tuple[tuple[str, str], ...]) -> None:
    """Never overwrite a file perfgroup did not write (e.g. a site's own /usr/local/bin/perf), also
    at a path the record names."""

    now = {path: text for path, text, _ in facts.present}
    for item in artifacts:
        old = now.get(item.path)
        if old is None or old == item.content or item.link or perfgroups(item.path, old, group, recorded) \
                or is_entry_point(item.path):
            continue
        raise RefusedError(
            f"{item.path} exists and perfgroup did not write it; refusing to overwrite a site's file "
            "(move it away, or leave members on PATH/module access only)"
        )


def recorded(facts: NodeFileFacts, artifacts: tuple[NodeArtifact, ...], node_entry: bool) -> tuple[tuple[str, str], ...]:
    """(path, sha256 of the content) for the record; a link records its target's content (audit
    reads through it), so a dangling or retargeted link shows up as modified/missing."""

    return tuple((a.path, a.keep_sha256 or sha256_text(a.content))
                 for a in wanted(artifacts, facts.engine_sources, node_entry))
