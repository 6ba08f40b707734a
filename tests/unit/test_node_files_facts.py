"""node_files_facts.py: the engine reads its own sources for the node entry point; host's sha256."""

from __future__ import annotations

from perfgroup.engine import node_files_facts
from perfgroup.engine.host import sha256_text


def test_engine_reads_its_own_sources_including_the_entry_point() -> None:
    sources = dict(node_files_facts.read_engine_sources() or ())
    assert "node_main.py" in sources and "facts.py" in sources
    assert "import click" not in "".join(sources.values()) and "import jinja2" not in "".join(sources.values())


def test_sha256_text_is_hashlib_sha256() -> None:
    import hashlib

    for text in ("", "x", "é" * 5000):
        assert sha256_text(text) == hashlib.sha256(text.encode()).hexdigest()
