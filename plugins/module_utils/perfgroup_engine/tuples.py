"""`NamedTuple` for the engine: typing.NamedTuple's class syntax at collections.namedtuple's cost.

With `from __future__ import annotations` every field annotation is a string, and
typing.NamedTuple turns each one into a ForwardRef, which compiles it: about 70 us per field,
some 10 ms for the engine's tuples on every `audit`, more than all the audit's checks. The
annotations are only for mypy, which sees typing.NamedTuple itself; at runtime this builds the
same tuple class (fields, defaults, methods, properties, docstring, __annotations__ as strings).
"""

from __future__ import annotations

TYPE_CHECKING = False  # as typing.TYPE_CHECKING (mypy knows the name), without importing typing at run time
if TYPE_CHECKING:
    from typing import NamedTuple as NamedTuple
else:
    from collections import namedtuple

    # As typing.NamedTuple: what a class body may not redefine, and what is not copied onto it.
    _PROHIBITED = frozenset({"__new__", "__init__", "__slots__", "__getnewargs__", "_fields", "_field_defaults",
                             "_make", "_replace", "_asdict", "_source"})
    _SPECIAL = frozenset({"__module__", "__name__", "__qualname__", "__annotations__", "_root"})

    class _NamedTupleMeta(type):
        def __new__(mcs, typename, bases, ns):
            if ns.get("_root"):
                return super().__new__(mcs, typename, bases, ns)
            annotations = ns.get("__annotations__", {})
            fields = list(annotations)
            defaults = []
            for name in fields:
                if name in ns:
                    defaults.append(ns[name])
                elif defaults:
                    raise TypeError(f"Non-default namedtuple field {name} cannot follow default field")
            cls = namedtuple(typename, fields, defaults=defaults, module=ns.get("__module__"))
            cls.__annotations__ = dict(annotations)
            cls.__qualname__ = ns.get("__qualname__", typename)
            for key, value in ns.items():
                if key in _PROHIBITED:
                    raise AttributeError("Cannot overwrite NamedTuple attribute " + key)
                if key not in _SPECIAL and key not in fields:
                    setattr(cls, key, value)
            return cls

    class NamedTuple(metaclass=_NamedTupleMeta):
        _root = True
