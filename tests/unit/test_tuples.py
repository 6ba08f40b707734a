"""engine/tuples.NamedTuple builds the same tuple classes as typing.NamedTuple (the engine's
records, facts and findings are such tuples), without compiling every annotation at import."""

from __future__ import annotations

import pickle
import typing
from typing import Any

import pytest

from perfgroup.engine import tuples
from perfgroup.engine.facts import PathFacts


def make(base: Any) -> Any:
    class Point(base):  # type: ignore[misc, valid-type]
        """A point."""

        x: int
        y: int | None = None
        tags: tuple[str, ...] = ()

        @property
        def both(self) -> tuple[int, int | None]:
            return (self.x, self.y)

        def moved(self, dx: int) -> Any:
            return self._replace(x=self.x + dx)

    return Point


FAST, TYPED = make(tuples.NamedTuple), make(typing.NamedTuple)


@pytest.mark.parametrize("probe", [
    lambda c: c._fields,
    lambda c: c._field_defaults,
    lambda c: c.__doc__,
    lambda c: c.__name__,
    lambda c: sorted(c.__annotations__),
    lambda c: repr(c(1)),
    lambda c: c(1, 2)._asdict(),
    lambda c: c(1).both,
    lambda c: c(1).moved(2),
    lambda c: c._make([3, 4, ("a",)]),
    lambda c: c(x=5) == (5, None, ()),
    lambda c: isinstance(c(1), tuple),
    lambda c: c.__mro__[1:],
    lambda c: hash(c(1, 2)) == hash((1, 2, ())),
])
def test_same_class_as_typing_namedtuple(probe: Any) -> None:
    assert probe(FAST) == probe(TYPED)


@pytest.mark.parametrize("body, error", [
    ("a: int = 0\n    b: int", TypeError),  # a field without default after one with
    ("a: int\n    def _asdict(self): return {}", AttributeError),  # a namedtuple method redefined
])
def test_refuses_what_typing_refuses(body: str, error: type[Exception]) -> None:
    for base in (tuples.NamedTuple, typing.NamedTuple):
        with pytest.raises(error):
            exec(f"class Bad(NamedTuple):\n    {body}\n", {"NamedTuple": base})


def test_engine_tuples_pickle_and_keep_their_module() -> None:
    facts = PathFacts("/x", "file", 0, 0, 0o750, 1)
    assert PathFacts.__module__ == "perfgroup.engine.facts" and PathFacts.__qualname__ == "PathFacts"
    assert pickle.loads(pickle.dumps(facts)) == facts and facts.exists
